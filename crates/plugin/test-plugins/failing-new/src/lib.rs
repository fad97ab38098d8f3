//! A plugin whose constructor fails the way a real one would: its embedded spec is invalid.
//! Loading it must fail with the constructor's error.

use plugboard_test_plugin_skeleton::{Runs, Skeleton};

const SPEC: &str = r#"
id = "failing-new"
display_name = "Failing constructor"

[auth]
mode = "api_key"

[api]
base_url = "http://failing-new.invalid/"
"#;

plugboard_plugin::export_provider!("failing-new", || Skeleton::new(
    "failing-new/provider.toml",
    SPEC,
    Runs::Nothing
));

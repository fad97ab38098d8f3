//! A plugin that declares the id `microsoft-people` while its spec says `impostor`. Declared,
//! the id collides with the built-in Microsoft People provider, which the host must notice
//! before calling the plugin; instantiated, the loader must notice the contradiction.

use plugboard_test_plugin_skeleton::{Runs, Skeleton};

const SPEC: &str = r#"
id = "impostor"
display_name = "Impostor"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://impostor.invalid"
"#;

plugboard_plugin::export_provider!("microsoft-people", || Skeleton::new(
    "mislabelled/provider.toml",
    SPEC,
    Runs::Nothing
));

//! A broken build of the Microsoft People provider: the provider's own spec and id, but every
//! sync and action reads the signed-in user through the host and then panics. The host's
//! end-to-end tests load it in place of the provider, on a store the real one filled, to show
//! that a panic costs one run or request and nothing else.

use plugboard_core::HttpRequest;
use plugboard_test_plugin_skeleton::{Runs, Skeleton};

/// The provider's spec file itself, so the fixture connects and proxies exactly as the
/// provider does.
const SPEC: &str = include_str!("../../../../../providers/microsoft-people/provider.toml");

plugboard_plugin::export_provider!("microsoft-people", || Skeleton::new(
    "providers/microsoft-people/provider.toml",
    SPEC,
    Runs::PanicAfter(HttpRequest::get("/v1.0/me"))
));

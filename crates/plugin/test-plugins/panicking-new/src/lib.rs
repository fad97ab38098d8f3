//! A plugin whose constructor panics. Loading it must fail with the panic's message, and the
//! host must go on.

use std::convert::Infallible;

use plugboard_test_plugin_skeleton::Skeleton;

fn new() -> Result<Skeleton, Infallible> {
    panic!("panicking-new panics in its constructor, on purpose")
}

plugboard_plugin::export_provider!("panicking-new", new);

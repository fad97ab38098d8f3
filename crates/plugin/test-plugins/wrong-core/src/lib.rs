//! A plugin built against another plugboard-core. Its `init` aborts the process, so a loader
//! that called it instead of refusing the plugin first would end the test run.

#![allow(unsafe_code)] // the loader finds the declaration by its unmangled name

use plugboard_plugin::abi::{DeclarationHeader, InitResult, PluginDeclaration, RSlice};

extern "C" fn init() -> InitResult {
    std::process::abort()
}

#[unsafe(no_mangle)]
pub static PLUGBOARD_PLUGIN_DECLARATION: PluginDeclaration = PluginDeclaration {
    header: DeclarationHeader {
        core_version: RSlice::text("0.0.0-elsewhere"),
        ..DeclarationHeader::current("wrong-core")
    },
    init,
};

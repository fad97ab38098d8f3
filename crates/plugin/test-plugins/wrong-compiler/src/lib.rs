//! A plugin built with another compiler. Its `init` aborts the process, so a loader that called
//! it instead of refusing the plugin first would end the test run.

#![allow(unsafe_code)] // the loader finds the declaration by its unmangled name

use plugboard_plugin::abi::{DeclarationHeader, InitResult, PluginDeclaration, RSlice};

extern "C" fn init() -> InitResult {
    std::process::abort()
}

#[unsafe(no_mangle)]
pub static PLUGBOARD_PLUGIN_DECLARATION: PluginDeclaration = PluginDeclaration {
    header: DeclarationHeader {
        compiler: RSlice::text(
            "rustc 1.0.0 (a59807616 2015-05-15) for x86_64-unknown-linux-gnu, panic=unwind",
        ),
        ..DeclarationHeader::current("wrong-compiler")
    },
    init,
};

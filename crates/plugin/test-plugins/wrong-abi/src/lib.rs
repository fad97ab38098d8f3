//! A plugin from a future ABI version: its header says so, and what follows the header in that
//! version is unknown — here, nothing does. The loader must refuse it from the header alone.

#![allow(unsafe_code)] // the loader finds the declaration by its unmangled name

use plugboard_plugin::abi::DeclarationHeader;

#[unsafe(no_mangle)]
pub static PLUGBOARD_PLUGIN_DECLARATION: DeclarationHeader = DeclarationHeader {
    abi_version: plugboard_plugin::ABI_VERSION + 1,
    ..DeclarationHeader::current("wrong-abi")
};

//! A working dynamic library that exports a function but no Plugboard declaration: the loader
//! must open it and then refuse it as "not a Plugboard plugin".

#![allow(unsafe_code)] // an unmangled export is what makes this a usable C library

/// Something for a C caller to find.
#[unsafe(no_mangle)]
pub extern "C" fn plugboard_test_answer() -> u32 {
    42
}

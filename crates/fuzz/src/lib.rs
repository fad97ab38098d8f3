//! The fuzz driver: what reads bytes from outside (the config file, provider specs, OAuth
//! callbacks and token responses, Graph pages, plugin batches) is fed mutated valid inputs and
//! raw bytes, and must neither panic nor answer anything but a well-formed result or a clear
//! error.
//!
//! A target is a test named `fuzz_<target>` in the crate that owns the parser:
//!
//! ```no_run
//! use plugboard_fuzz::{Target, inputs};
//!
//! Target::new(env!("CARGO_MANIFEST_DIR"), "callback_query").run(
//!     inputs::text(inputs::mixed(&["code=c&state=s"], &["&", "=", "%"])),
//!     |query: &String| if query.len() < 1 << 20 { Ok(()) } else { Err("huge".into()) },
//! );
//! ```
//!
//! It runs on stable Rust, driven by proptest: cheap by default (a few hundred cases from a
//! fixed seed, so `cargo test --workspace` runs every target and cannot flake), and for
//! `PLUGBOARD_FUZZ_SECONDS` seconds with fresh seeds under `cargo xtask fuzz`. An input that
//! fails is shrunk, kept as a file under `fuzz-regressions/<target>/` in the crate, and
//! replayed first on every run after, so a bug once found stays found.

mod case;
pub mod inputs;
mod target;

pub use case::Case;
/// Re-exported, so a crate's targets build their strategies without a dependency of their own.
pub use proptest;
pub use target::{SECONDS_VAR, Target};

//! The emulator against the reference documents, over HTTP, as clients see it.
//!
//! One test binary (modules per area) keeps linking cheap; each test starts its own emulator
//! on a random port, so tests are independent and run in parallel.

mod apim;
mod binary;
mod certificates;
mod code_flow;
mod control;
mod faults;
mod graph;
mod harness;
mod refresh_rotation;
mod secrets;
mod throttling;
mod token_errors;

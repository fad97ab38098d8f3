//! Plugboard's core runtime.
//!
//! - [`spec`]: a provider's auth and API facts as data, parsed from its `provider.toml`.
//! - [`Provider`]: what provider crates implement; [`SpecOnlyProvider`]: a provider that is
//!   only its spec (auth + proxy, no code); [`Context`]: the only way their code reaches
//!   the world; [`Pager`]: pagination driven by the spec.
//! - `runtime` feature: the host-side pieces every host shares — HTTP execution with retries
//!   (`http`) and the OAuth engine (`oauth`).
//! - `testkit` feature: a context that does real HTTP and keeps records in memory, so a provider
//!   crate tests its syncs against the emulator without the host.
//!
//! Provider crates depend on this crate without features, which keeps tokio and reqwest out of
//! provider code by construction.

pub mod context;
mod encoded_records;
pub mod error;
#[cfg(feature = "runtime")]
pub mod http;
#[cfg(feature = "runtime")]
pub mod oauth;
pub mod pagination;
pub mod provider;
pub mod spec;
pub mod spec_only;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;

pub use context::{
    Context, EncodedRecords, HttpRequest, HttpResponse, LogLevel, PreviousRun, RawRecord, Record,
    RecordSpan, RunInfo, SyncMode,
};
pub use error::{ErrorKind, ProviderError};
pub use pagination::{Page, Pager};
pub use provider::Provider;
pub use spec::ProviderSpec;
pub use spec_only::SpecOnlyProvider;

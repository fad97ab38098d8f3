//! Dynamic provider plugins: a provider crate built as a `cdylib`, loaded by the host at run
//! time and used like a built-in provider.
//!
//! Two sides, one crate, so both always agree on the boundary:
//! - **plugin side**: [`export_provider!`] in the provider crate, behind its `plugin` feature,
//!   exports the declaration ([`abi::PluginDeclaration`]) and the `extern "C"` shims that run
//!   the provider and give it the host's context;
//! - **host side**: [`open`] / [`load`] check a plugin's declaration before any call into it,
//!   then wrap it in a [`LoadedProvider`], which implements [`plugboard_core::Provider`] so the
//!   host's registry treats built-in and dynamic providers the same.
//!
//! [`abi`] describes the layout. In short: a fixed header with the versions; `#[repr(C)]`
//! function tables for the provider and for the host's context; JSON in byte buffers freed by
//! the side that allocated them; `async_ffi` futures polled by the host's runtime, so provider
//! code never touches tokio; every entry point catches panics; libraries are never unloaded.
//!
//! **API boundary:** changing [`abi`], the encodings or the `Context`/`Provider` methods the
//! tables carry means bumping [`ABI_VERSION`]. The header's layout never changes.

// The FFI modules need `unsafe`; each block says why it is sound. The rest of the crate, and
// every provider crate, stays under the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
pub mod abi;
mod error;
#[allow(unsafe_code)]
mod export;
#[allow(unsafe_code)]
mod host_context;
#[allow(unsafe_code)]
mod loader;
mod panic;
mod wire;

pub use abi::{ABI_VERSION, DECLARATION_SYMBOL};
pub use error::PluginError;
pub use loader::{LoadedProvider, Plugin, load, open};

/// The `plugboard-core` version plugins and host are built against; they must match exactly,
/// because the core types cross the boundary as their serde encoding.
///
/// This crate is versioned with the workspace, as `plugboard-core` is (a test checks that).
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The compiler, target and panic strategy this crate was built with (see `build.rs`).
pub const COMPILER: &str = env!("PLUGBOARD_PLUGIN_COMPILER");

/// What `export_provider!` expands to; not for direct use.
#[doc(hidden)]
pub mod __export {
    pub use crate::export::init;
}

/// Exports a provider from a provider crate built as a `cdylib`.
///
/// The first argument is the provider id, which must equal the spec's `id`: the host reads it
/// before calling the plugin, to refuse a duplicate without running any of its code. The second
/// is the constructor, called once per load: anything callable without arguments that returns
/// `Result<P, E>` with `P: Provider` and `E: Display`, such as `MicrosoftPeople::new`. An error
/// (or a panic) makes the load fail with its message. An infallible constructor is written
/// `|| Ok::<_, Infallible>(P::new())`.
///
/// The expansion defines an unmangled static, so invoke it in one crate per library and keep
/// it behind the provider crate's `plugin` feature (`#[cfg(feature = "plugin")]`): a binary that
/// links several providers statically never enables it, and never sees two declarations.
///
/// ```
/// use async_trait::async_trait;
/// use plugboard_core::provider::unknown;
/// use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
/// use serde_json::Value;
///
/// const SPEC: &str = r#"
/// id = "hello"
/// display_name = "Hello"
/// auth = { mode = "api_key", header = "X-Api-Key" }
/// api = { base_url = "https://hello.example" }
/// "#;
///
/// struct Hello {
///     spec: ProviderSpec,
/// }
///
/// #[async_trait]
/// impl Provider for Hello {
///     fn spec(&self) -> &ProviderSpec {
///         &self.spec
///     }
///
///     async fn run_sync(&self, name: &str, _ctx: &dyn Context) -> Result<(), ProviderError> {
///         Err(unknown("sync", name, &self.spec))
///     }
///
///     async fn run_action(
///         &self,
///         name: &str,
///         _input: Value,
///         _ctx: &dyn Context,
///     ) -> Result<Value, ProviderError> {
///         Err(unknown("action", name, &self.spec))
///     }
/// }
///
/// plugboard_plugin::export_provider!("hello", || {
///     ProviderSpec::parse("hello/provider.toml", SPEC).map(|spec| Hello { spec })
/// });
/// ```
#[macro_export]
macro_rules! export_provider {
    ($id:expr, $constructor:expr $(,)?) => {
        /// The plugin declaration Plugboard's loader reads before anything else.
        // An unmangled name is what lets the loader find it; the static only holds
        // pointers to read-only data and to the `init` function below.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static PLUGBOARD_PLUGIN_DECLARATION: $crate::abi::PluginDeclaration = {
            extern "C" fn init() -> $crate::abi::InitResult {
                $crate::__export::init($constructor)
            }
            $crate::abi::PluginDeclaration::current($id, init)
        };
    };
}

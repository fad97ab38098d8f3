//! The host side: opening a plugin, checking its declaration, and the provider it exports as
//! a [`Provider`] like any built-in one.
//!
//! Libraries are never unloaded, not even refused ones: a Rust library registers thread-local
//! destructors and hands out function pointers (wakers, buffer deallocators) that may outlive
//! any handle, so unloading one can never be proven safe.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use libloading::Library;
use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

use crate::abi::{
    ABI_VERSION, DECLARATION_SYMBOL, DeclarationHeader, MAGIC, PluginDeclaration, ProviderVTable,
    RSlice,
};
use crate::error::PluginError;
use crate::{COMPILER, CORE_VERSION, host_context, panic, wire};

/// A plugin whose declaration was accepted, before any of its code ran.
///
/// The host reads [`Plugin::id`] to refuse a provider id it already has, then calls
/// [`Plugin::instantiate`].
pub struct Plugin {
    path: PathBuf,
    id: String,
    declaration: &'static PluginDeclaration,
}

/// Opens the plugin at `path` and checks its declaration — that it is a Plugboard plugin, of
/// this ABI version, built against this `plugboard-core` with this compiler — without calling
/// any function of the library. (Loading a library does run its static initialisers, as for
/// any library; Rust code has none of its own.)
pub fn open(path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
    let path = path.as_ref().to_path_buf();
    // An absolute path: the system loader searches its library path for a bare file name.
    let file = match std::fs::canonicalize(&path) {
        Ok(file) if file.is_dir() => {
            return Err(PluginError::NotALibrary {
                path,
                reason: "it is a directory".to_owned(),
            });
        }
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PluginError::NotFound { path });
        }
        Err(e) => {
            return Err(PluginError::NotALibrary {
                path,
                reason: e.to_string(),
            });
        }
    };
    // SAFETY: loading runs the library's initialisers. A plugin is code the operator chose to
    // run inside Plugboard; what this function guards against is a mismatched build, not a
    // hostile one.
    let library = unsafe { Library::new(&file) }.map_err(|e| PluginError::NotALibrary {
        path: path.clone(),
        reason: describe(&e),
    })?;
    let library: &'static Library = Box::leak(Box::new(library));
    let not_a_plugin = |reason: String| PluginError::NotAPlugin {
        path: path.clone(),
        reason,
    };
    // SAFETY: the symbol is only taken as an address here; what it points at is checked below.
    let symbol = unsafe { library.get::<*const DeclarationHeader>(DECLARATION_SYMBOL) }
        .map_err(|_| not_a_plugin(format!("it exports no `{DECLARATION_SYMBOL}`")))?;
    let header_ptr: *const DeclarationHeader = *symbol;
    if header_ptr.is_null() {
        return Err(not_a_plugin(format!("its `{DECLARATION_SYMBOL}` is null")));
    }
    // SAFETY: a data symbol of the library, which stays loaded; every declaration starts with
    // the 16 bytes of `MAGIC`, read alone before the rest is trusted.
    let magic = unsafe { header_ptr.cast::<[u8; 16]>().read_unaligned() };
    if magic != MAGIC {
        return Err(not_a_plugin(format!(
            "its `{DECLARATION_SYMBOL}` is not a Plugboard declaration"
        )));
    }
    // SAFETY: the magic says this is a `DeclarationHeader`, whose layout is the same in every
    // ABI version; it is a static of a library that is never unloaded.
    let header: &'static DeclarationHeader = unsafe { &*header_ptr };
    if header.abi_version != ABI_VERSION {
        return Err(PluginError::AbiMismatch {
            path,
            found: header.abi_version,
            expected: ABI_VERSION,
        });
    }
    let text = |field: RSlice<'static>, what: &str| {
        field
            .to_str()
            .map_err(|_| not_a_plugin(format!("its declared {what} is not UTF-8")))
    };
    let core_version = text(header.core_version, "plugboard-core version")?;
    if core_version != CORE_VERSION {
        return Err(PluginError::CoreMismatch {
            path,
            found: core_version.to_owned(),
            expected: CORE_VERSION.to_owned(),
        });
    }
    let compiler = text(header.compiler, "compiler")?;
    if compiler != COMPILER {
        return Err(PluginError::CompilerMismatch {
            path,
            found: compiler.to_owned(),
            expected: COMPILER.to_owned(),
        });
    }
    let id = text(header.provider_id, "provider id")?.to_owned();
    // SAFETY: the header carries this crate's ABI version, so the whole static is this
    // version's `PluginDeclaration`, with the header as its first field.
    let declaration: &'static PluginDeclaration = unsafe { &*header_ptr.cast() };
    Ok(Plugin {
        path,
        id,
        declaration,
    })
}

/// An error with its sources: libloading's own message is only "dlopen failed".
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// [`open`], then [`Plugin::instantiate`].
pub fn load(path: impl AsRef<Path>) -> Result<LoadedProvider, PluginError> {
    open(path)?.instantiate()
}

impl Plugin {
    /// The provider id the plugin declares.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The path the plugin was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the provider's constructor and reads its spec, whose id must be the declared one.
    pub fn instantiate(self) -> Result<LoadedProvider, PluginError> {
        let failed = |reason: String| PluginError::StartFailed {
            path: self.path.clone(),
            id: self.id.clone(),
            reason,
        };
        // SAFETY: `open` accepted the declaration: same ABI, same core, same compiler. `init`
        // catches panics in the provider's constructor.
        let result = unsafe { (self.declaration.init)() };
        if result.instance.is_null() {
            return Err(failed(
                String::from_utf8_lossy(result.error.as_bytes()).into_owned(),
            ));
        }
        let instance = Instance {
            ptr: result.instance,
            vtable: result.vtable,
        };
        // SAFETY: a live instance of this vtable's provider.
        let spec = unsafe { (instance.vtable.spec)(instance.ptr) };
        let spec: ProviderSpec = wire::decode_result(spec.as_bytes(), "the provider spec")
            .map_err(|e| failed(e.message))?;
        if spec.id != self.id {
            return Err(PluginError::IdMismatch {
                path: self.path,
                declared: self.id,
                spec: spec.id,
            });
        }
        Ok(LoadedProvider {
            path: self.path,
            spec,
            instance,
        })
    }
}

/// A provider from a plugin: a [`Provider`] like any built-in one.
pub struct LoadedProvider {
    path: PathBuf,
    spec: ProviderSpec,
    instance: Instance,
}

impl LoadedProvider {
    /// The file the provider was loaded from, e.g. for `plugboard providers list`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The plugin's provider object, dropped through the plugin when the host lets go of it.
struct Instance {
    ptr: *const c_void,
    vtable: &'static ProviderVTable,
}

// SAFETY: `ptr` is a `P: Provider` of the plugin, and `Provider: Send + Sync`.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: dropping needs `&mut`, so no call borrowing the instance is running; the
        // plugin's `drop` catches panics of the provider's `Drop`.
        unsafe { (self.vtable.drop)(self.ptr) }
    }
}

#[async_trait]
impl Provider for LoadedProvider {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        // `ctx` lives in this future's frame, which outlives the plugin's future below.
        let handle = host_context::handle(&ctx);
        // SAFETY: the instance is borrowed by `&self` and the context by this frame until the
        // plugin's future is done or dropped; `name` is read before the call returns.
        let run = unsafe {
            (self.instance.vtable.run_sync)(self.instance.ptr, RSlice::text(name), handle)
        };
        let output = panic::catch_future(run)
            .await
            .map_err(|panic| self.broken(&panic))?;
        wire::decode_result(output.as_bytes(), "the sync's outcome")
    }

    async fn run_action(
        &self,
        name: &str,
        input: Value,
        ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        let input = wire::encode(&input, "the action input")?;
        let handle = host_context::handle(&ctx);
        // SAFETY: as in `run_sync`; `input` too is read before the call returns.
        let run = unsafe {
            (self.instance.vtable.run_action)(
                self.instance.ptr,
                RSlice::text(name),
                RSlice::new(&input),
                handle,
            )
        };
        let output = panic::catch_future(run)
            .await
            .map_err(|panic| self.broken(&panic))?;
        wire::decode_result(output.as_bytes(), "the action's output")
    }
}

impl LoadedProvider {
    /// The plugin's shims catch the provider's panics, so a panic reaching the host means the
    /// plugin's future machinery itself failed (async-ffi reports it by panicking here).
    fn broken(&self, panic: &str) -> ProviderError {
        ProviderError::internal(format!(
            "plugin {} (provider `{}`) failed outside the provider's code: {panic}",
            self.path.display(),
            self.spec.id
        ))
    }
}

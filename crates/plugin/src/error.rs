//! Why a plugin was refused. Each message names the file and says what to do about it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {}: no such file", path.display())]
    NotFound { path: PathBuf },

    #[error("plugin {}: not a dynamic library the system can load: {reason}", path.display())]
    NotALibrary { path: PathBuf, reason: String },

    #[error(
        "plugin {}: not a Plugboard plugin: {reason}; build the provider crate as a cdylib with \
         its `plugin` feature, which exports the declaration through \
         `plugboard_plugin::export_provider!`",
        path.display()
    )]
    NotAPlugin { path: PathBuf, reason: String },

    #[error(
        "plugin {}: built for plugin ABI version {found}, but this Plugboard loads version \
         {expected}; rebuild the plugin against this Plugboard's sources",
        path.display()
    )]
    AbiMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    #[error(
        "plugin {}: built against plugboard-core {found}, but this Plugboard has plugboard-core \
         {expected}; rebuild the plugin against plugboard-core {expected}",
        path.display()
    )]
    CoreMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error(
        "plugin {}: built with `{found}`, but this Plugboard was built with `{expected}`; Rust \
         has no stable ABI, so rebuild the plugin with the same compiler and settings",
        path.display()
    )]
    CompilerMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    /// For the host's registry, which knows every provider: the loader sees one plugin at a
    /// time. `other` says where the first provider with this id came from.
    #[error(
        "plugin {}: provider id `{id}` is already taken by {other}; remove one of the two",
        path.display()
    )]
    DuplicateId {
        path: PathBuf,
        id: String,
        other: String,
    },

    #[error("plugin {}: provider `{id}` failed to start: {reason}", path.display())]
    StartFailed {
        path: PathBuf,
        id: String,
        reason: String,
    },

    #[error(
        "plugin {}: declares provider `{declared}`, but its spec says `{spec}`; the id passed to \
         `export_provider!` must be the spec's `id`",
        path.display()
    )]
    IdMismatch {
        path: PathBuf,
        declared: String,
        spec: String,
    },
}

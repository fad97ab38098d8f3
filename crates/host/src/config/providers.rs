//! `[[providers]]`: which providers the configuration enables — built in, plugins loaded from
//! their libraries, spec-only providers from a directory — each refused by its key and file
//! before any of its code runs when it cannot be used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plugboard_core::Provider;
use plugboard_plugin::{LoadedProvider, PluginError};

use super::read::{self, Ctx, Table};
use crate::registry::{Registry, Source};

/// `[[providers]]`: the providers integrations may use, each built in (`builtin = "<id>"`), a
/// plugin (`path = "<library>"`) or every `*.toml` spec file of a directory
/// (`spec_dir = "<dir>"`). The first provider with an id wins; a later one is refused.
pub(super) fn read_providers(
    ctx: &mut Ctx<'_>,
    root: &mut Table,
    registry: &Registry,
    dir: &Path,
) -> Registry {
    let mut enabled = Enabled {
        registry: Registry::empty(),
        keys: BTreeMap::new(),
    };
    let Some(items) = root.take("providers").and_then(|f| ctx.array(f)) else {
        return enabled.registry;
    };
    for item in items {
        let Some(mut t) = ctx.table(item) else {
            continue;
        };
        match (t.take("builtin"), t.take("path"), t.take("spec_dir")) {
            (None, Some(f), None) => {
                if let Some(plugin) = load_plugin(ctx, &f, dir, &enabled) {
                    let path = plugin.path().to_owned();
                    enabled.insert(&f, Arc::new(plugin), Source::Plugin { path });
                }
            }
            (Some(f), None, None) => enable_builtin(ctx, &f, registry, &mut enabled),
            (None, None, Some(f)) => load_spec_dir(ctx, &f, dir, &mut enabled),
            (None, None, None) => ctx.missing(
                &t.key_of("builtin"),
                "a built-in provider's id (or `path`, a plugin's library, or `spec_dir`, a \
                 directory of spec files)",
            ),
            (builtin, path, spec_dir) => {
                let f = spec_dir
                    .or(path)
                    .or(builtin)
                    .expect("two of the three are set");
                ctx.error(
                    &f,
                    "an entry is one of `builtin`, `path` or `spec_dir`; split it into one \
                     [[providers]] entry each",
                );
            }
        }
        t.finish(ctx);
    }
    enabled.registry
}

/// The providers enabled so far, and the key that enabled each, to name it when another
/// provider claims its id.
struct Enabled {
    registry: Registry,
    keys: BTreeMap<String, String>,
}

impl Enabled {
    fn insert(&mut self, field: &read::Field, provider: Arc<dyn Provider>, source: Source) {
        self.keys
            .insert(provider.spec().id.clone(), field.key.clone());
        self.registry.insert(provider, source);
    }

    /// The provider that has `id` already, described for a message.
    fn holder(&self, id: &str) -> Option<String> {
        let source = self.registry.source(id)?;
        let key = self.keys.get(id).map_or("", String::as_str);
        Some(match source {
            Source::BuiltIn => format!("the built-in provider ({key})"),
            Source::Plugin { path } => format!("plugin {} ({key})", path.display()),
            Source::Spec { path } => format!("spec {} ({key})", path.display()),
        })
    }
}

fn enable_builtin(ctx: &mut Ctx<'_>, f: &read::Field, registry: &Registry, enabled: &mut Enabled) {
    let Some(id) = ctx.string(f, "a provider id") else {
        return;
    };
    let Some(provider) = registry.get(&id) else {
        ctx.error(
            f,
            format!(
                "no built-in provider `{id}` (built in: {})",
                registry.ids().join(", ")
            ),
        );
        return;
    };
    match enabled.registry.source(&id) {
        None => enabled.insert(f, Arc::clone(provider), Source::BuiltIn),
        Some(Source::BuiltIn) => ctx.error(f, format!("provider `{id}` is listed twice")),
        Some(Source::Plugin { .. } | Source::Spec { .. }) => {
            let holder = enabled.holder(&id).unwrap_or_default();
            ctx.error(
                f,
                format!("provider id `{id}` is already taken by {holder}; remove one of the two"),
            );
        }
    }
}

/// Loads every `*.toml` file of the directory `f` names (relative to the config file's
/// directory, like a plugin's path) as a spec-only provider, in file-name order. A file that is
/// not a valid spec-only spec, or whose id is taken, is refused naming the file.
fn load_spec_dir(ctx: &mut Ctx<'_>, f: &read::Field, dir: &Path, enabled: &mut Enabled) {
    let Some(text) = ctx.string(f, "a directory of provider spec files") else {
        return;
    };
    if text.trim().is_empty() {
        ctx.error(f, "must not be empty");
        return;
    }
    let spec_dir = dir.join(&text);
    let entries = match std::fs::read_dir(&spec_dir) {
        Ok(entries) => entries,
        Err(e) => {
            let hint = match Path::new(&text).is_relative() {
                true => "; a relative path starts from the directory of the config file",
                false => "",
            };
            ctx.error(f, format!("cannot read {}: {e}{hint}", spec_dir.display()));
            return;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && path.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        ctx.warn(
            f,
            format!("{} holds no *.toml spec files", spec_dir.display()),
        );
    }
    for path in files {
        let source = path.display().to_string();
        let provider = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {source}: {e}"))
            .and_then(|text| {
                plugboard_core::SpecOnlyProvider::parse(&source, &text).map_err(|e| e.to_string())
            });
        let provider = match provider {
            Ok(provider) => provider,
            Err(message) => {
                ctx.error(f, message);
                continue;
            }
        };
        let id = provider.spec().id.clone();
        if let Some(holder) = enabled.holder(&id) {
            ctx.error(
                f,
                format!("spec {source}: provider id `{id}` is already taken by {holder}; remove one of the two"),
            );
            continue;
        }
        enabled.insert(f, Arc::new(provider), Source::Spec { path });
    }
}

/// Loads the plugin at the path `f` names. Its declaration is checked (a Plugboard plugin, of
/// this ABI, `plugboard-core` and compiler) and its id compared with the providers enabled
/// before it, all before any of its code runs; only then is the provider built.
fn load_plugin(
    ctx: &mut Ctx<'_>,
    f: &read::Field,
    dir: &Path,
    enabled: &Enabled,
) -> Option<LoadedProvider> {
    let text = ctx.string(f, "the path of a plugin's library")?;
    if text.trim().is_empty() {
        ctx.error(f, "must not be empty");
        return None;
    }
    // Relative to the config file, not to wherever the server happens to be started: the
    // same file must always load the same code.
    let relative = Path::new(&text).is_relative();
    let path = dir.join(&text);
    let mut refuse = |error: PluginError| {
        let hint = match error {
            PluginError::NotFound { .. } if relative => {
                "; a relative path starts from the directory of the config file"
            }
            _ => "",
        };
        ctx.error(f, format!("{error}{hint}"));
        None
    };
    let plugin = match plugboard_plugin::open(&path) {
        Ok(plugin) => plugin,
        Err(error) => return refuse(error),
    };
    if let Some(other) = enabled.holder(plugin.id()) {
        let id = plugin.id().to_owned();
        return refuse(PluginError::DuplicateId { path, id, other });
    }
    plugin.instantiate().map_or_else(refuse, Some)
}

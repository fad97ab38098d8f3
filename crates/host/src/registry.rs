//! Providers by id, each with where it came from: compiled into this binary, or loaded from a
//! plugin (`[[providers]] path = …`). Both are an `Arc<dyn Provider>`, so the rest of the host
//! never knows the difference.
//!
//! Two registries exist at start-up: [`Registry::builtin`], every provider this binary links,
//! from which the configuration picks; and the one the configuration builds
//! ([`crate::config::Loaded::providers`]) of the providers `[[providers]]` enables, which is the
//! one the server uses.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use plugboard_core::Provider;
use plugboard_core::spec::SpecError;
use plugboard_microsoft_people::MicrosoftPeople;

pub struct Registry {
    providers: BTreeMap<String, Registered>,
}

struct Registered {
    provider: Arc<dyn Provider>,
    source: Source,
}

/// Where a provider's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    /// The library as the configuration named it, resolved against the config file's directory.
    Plugin {
        path: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built in"),
            Source::Plugin { path } => write!(f, "plugin {}", path.display()),
        }
    }
}

impl Registry {
    /// Every provider compiled into this binary. Fails only when an embedded spec is broken,
    /// which the providers' own tests catch first.
    pub fn builtin() -> Result<Registry, SpecError> {
        let mut registry = Registry::empty();
        registry.insert(Arc::new(MicrosoftPeople::new()?), Source::BuiltIn);
        Ok(registry)
    }

    pub fn empty() -> Registry {
        Registry {
            providers: BTreeMap::new(),
        }
    }

    /// Adds a provider under its spec's id; the caller has checked that the id is free.
    pub fn insert(&mut self, provider: Arc<dyn Provider>, source: Source) {
        let id = provider.spec().id.clone();
        self.providers.insert(id, Registered { provider, source });
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(id).map(|r| &r.provider)
    }

    pub fn source(&self, id: &str) -> Option<&Source> {
        self.providers.get(id).map(|r| &r.source)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// Every provider with its source, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<dyn Provider>, &Source)> {
        self.providers.values().map(|r| (&r.provider, &r.source))
    }
}

/// What `plugboard providers list` prints: per provider its id and name, version, source, plugin
/// ABI version, syncs and actions.
///
/// Providers are versioned with Plugboard: a built-in one has this binary's version, and a
/// plugin the `plugboard-core` version it was built against, which the loader requires to be
/// this binary's too. A provider's spec carries no version of its own.
pub fn listing(registry: &Registry) -> String {
    let mut out = String::new();
    for (provider, source) in registry.iter() {
        if !out.is_empty() {
            out.push('\n');
        }
        let spec = provider.spec();
        let (version, abi) = match source {
            Source::BuiltIn => (
                env!("CARGO_PKG_VERSION"),
                "none (linked into this binary)".to_owned(),
            ),
            Source::Plugin { .. } => (
                plugboard_plugin::CORE_VERSION,
                plugboard_plugin::ABI_VERSION.to_string(),
            ),
        };
        let names = |names: Vec<&str>| match names.is_empty() {
            true => "none".to_owned(),
            false => names.join(", "),
        };
        let syncs = names(spec.syncs.iter().map(|s| s.name.as_str()).collect());
        let actions = names(spec.actions.iter().map(|a| a.name.as_str()).collect());
        // Writing to a `String` cannot fail.
        let _ = write!(
            out,
            "{id} ({name})\n  version:  {version}\n  source:   {source}\n  abi:      {abi}\n  \
             syncs:    {syncs}\n  actions:  {actions}\n",
            id = spec.id,
            name = spec.display_name,
        );
    }
    out
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.providers.iter().map(|(id, r)| (id, &r.source)))
            .finish()
    }
}

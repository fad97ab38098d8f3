//! Providers by id. Built-in providers are compiled in; dynamic ones (`[[providers]] path = …`)
//! will register through the same map, so the rest of the host never knows the difference.

use std::collections::BTreeMap;
use std::sync::Arc;

use plugboard_core::Provider;
use plugboard_core::spec::SpecError;
use plugboard_microsoft_people::MicrosoftPeople;

pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
}

impl Registry {
    /// Every provider compiled into this binary. Fails only when an embedded spec is broken,
    /// which the providers' own tests catch first.
    pub fn builtin() -> Result<Registry, SpecError> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let people: Arc<dyn Provider> = Arc::new(MicrosoftPeople::new()?);
        providers.insert(people.spec().id.clone(), people);
        Ok(Registry { providers })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(id)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}

//! The state every handler shares.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::apim::Subscriptions;
use crate::clock::Clock;
use crate::control::types::Settings;
use crate::counters::CounterSet;
use crate::directory::Directory;
use crate::faults::Faults;
use crate::identity::authorize::SignIn;
use crate::throttle::Throttle;
use crate::tokens::TokenStore;

/// Cheap to clone: every clone is the same emulator.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    /// Directory and tokens change together (a sign-in reads users and writes codes), so one
    /// lock guards both. Graph pages only read, so concurrent pages do not wait on each other.
    world: RwLock<World>,
    pub clock: Clock,
    settings: Mutex<Settings>,
    pub throttle: Throttle,
    pub faults: Faults,
    pub counters: CounterSet,
}

#[derive(Default)]
pub struct World {
    pub directory: Directory,
    pub tokens: TokenStore,
    /// Sign-ins waiting on a consent page, by the id the page posts back.
    pub consent_prompts: HashMap<String, SignIn>,
    /// API Management subscriptions, the API-key service's keys.
    pub subscriptions: Subscriptions,
}

impl AppState {
    pub fn new(settings: Settings) -> Self {
        AppState(Arc::new(Shared {
            world: RwLock::default(),
            clock: Clock::default(),
            settings: Mutex::new(settings),
            throttle: Throttle::default(),
            faults: Faults::default(),
            counters: CounterSet::default(),
        }))
    }

    // A panic while a lock is held leaves the data consistent enough for a test double: keep
    // serving rather than failing every later request.
    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn graph_latency(&self) -> Duration {
        Duration::from_millis(self.settings().graph_latency_ms)
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

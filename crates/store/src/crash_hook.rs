//! A test hook inside the store's writes: points where a test may stop the process in the
//! middle of a transaction, to show what a crash there leaves (nothing, since the transaction
//! rolls back, or a state the next run repairs).
//!
//! The store only calls the hook; the host installs it (its `crash_point` module, which kills
//! the process when `PLUGBOARD_CRASH_AT` names the point) and documents every point. Without
//! a hook, as in any process that did not install one, a point costs one atomic load.

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&'static str)> = OnceLock::new();

/// Has `hook` called with the point's name at each crash point of the store; the first hook
/// installed stays.
pub fn install_crash_hook(hook: fn(&'static str)) {
    let _ = HOOK.set(hook);
}

/// Reached the crash point `point`: calls the installed hook, if any.
pub(crate) fn reached(point: &'static str) {
    if let Some(hook) = HOOK.get() {
        hook(point);
    }
}

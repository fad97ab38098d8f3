//! The schema's version as a readiness check sees it.

use sqlx::migrate::Migrator;

/// The newest migration applied to the database and the newest this build carries. They differ
/// when a migration failed, or when a newer build's replica migrated the shared database; a
/// server is not ready to serve in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// None on a database no migration succeeded on.
    pub applied: Option<i64>,
    pub expected: i64,
}

impl SchemaVersion {
    pub(crate) fn of(applied: Option<i64>, migrator: &Migrator) -> Self {
        SchemaVersion {
            applied,
            expected: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        }
    }

    pub fn is_current(&self) -> bool {
        self.applied == Some(self.expected)
    }
}

/// The newest migration that succeeded, in sqlx's table (the same in both backends).
pub(crate) const APPLIED: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";

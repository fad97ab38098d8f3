//! Test support: a PostgreSQL database of its own for each test, and connections as the store
//! returns them, for tests of code that reads them.
//!
//! Tests reach PostgreSQL at `PLUGBOARD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, which every machine of ours runs). Each
//! [`TestDatabase`] creates a fresh database next to that one and drops it when the test is
//! done, so tests run in parallel without seeing each other. When PostgreSQL cannot be reached
//! the test fails saying so: a backend left untested must not look like a pass.

use std::str::FromStr;

use chrono::Utc;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection as _, Executor};

use crate::{Connection, ConnectionKey, ConnectionStatus, Tokens};

/// A working OAuth connection `connection_id` of `integration`, as read from the store: row
/// id `row-<connection_id>`, tokens `access` and `refresh` that never expire, version 1.
pub fn connection(integration: &str, connection_id: &str) -> Connection {
    let now = Utc::now();
    Connection {
        id: format!("row-{connection_id}"),
        key: ConnectionKey::new(integration, connection_id),
        provider: format!("{integration}-provider"),
        connection_config: Default::default(),
        account: None,
        status: ConnectionStatus::Ok,
        status_reason: None,
        tokens: Tokens {
            access_token: "access".to_owned().into(),
            refresh_token: Some("refresh".to_owned().into()),
            id_token: None,
            expires_at: None,
            scopes: Vec::new(),
        },
        token_version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Where tests find PostgreSQL.
pub const POSTGRES_URL_VARIABLE: &str = "PLUGBOARD_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server tests use, from [`POSTGRES_URL_VARIABLE`] or the default.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database created for one test; [`TestDatabase::drop_database`] removes it (a test that
/// panics first leaves it behind under its `plugboard_test_` name, to look at).
#[derive(Debug)]
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database. Panics, naming the URL and the variable, when PostgreSQL
    /// cannot be reached.
    pub async fn create() -> TestDatabase {
        let base = postgres_url();
        let admin = PgConnectOptions::from_str(&base).unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VARIABLE}=`{base}` is not a PostgreSQL URL: {e}")
        });
        let name = format!("plugboard_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at `{base}` ({e}); the store's PostgreSQL tests \
                 need it: start it, or point {POSTGRES_URL_VARIABLE} at one"
            )
        });
        connection
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("creating test database `{name}` failed: {e}"));
        connection.close().await.ok();
        let mut url = url::Url::parse(&base).expect("parsed above");
        url.set_path(&format!("/{name}"));
        TestDatabase {
            admin,
            name,
            url: url.to_string(),
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_database(self) {
        let mut connection = self
            .admin
            .connect()
            .await
            .expect("PostgreSQL was reachable when the database was created");
        connection
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap_or_else(|e| panic!("dropping test database `{}` failed: {e}", self.name));
        connection.close().await.ok();
    }
}

//! What every conformance test gets: a backend holding an empty store, opened as often as the
//! test likes (each [`Backend::open`] is another process's view of the same database, as a
//! replica's would be), and the few raw looks at the database that check what is at rest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use chrono::Utc;
use plugboard_store::Location;
pub use plugboard_store::crypto::KeyRing;
use plugboard_store::testing::TestDatabase;
pub use plugboard_store::{
    ConnectionKey, Flow, NewConnection, OAuthState, RecordCount, RecordJson, RecordQuery, Rotation,
    Store, TokenUpdate, Tokens,
};
use secrecy::{SecretBox, SecretString};
use sqlx::Connection;

pub enum Backend {
    Sqlite { dir: PathBuf },
    Postgres { database: Box<TestDatabase> },
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = std::env::temp_dir().join(format!("plugboard-store-{}", uuid::Uuid::new_v4()));
        Backend::Sqlite { dir }
    }

    pub async fn postgres() -> Backend {
        Backend::Postgres {
            database: Box::new(TestDatabase::create().await),
        }
    }

    pub fn location(&self) -> Location {
        match self {
            Backend::Sqlite { dir } => Location::Sqlite {
                path: dir.join("store.db"),
            },
            Backend::Postgres { database } => Location::Postgres {
                url: database.url().to_owned(),
                pool_size: 4,
            },
        }
    }

    /// The store, opened afresh with this key ring.
    pub async fn open(&self, keys: Arc<KeyRing>) -> Arc<dyn Store> {
        plugboard_store::open(&self.location(), keys, true)
            .await
            .unwrap()
    }

    pub async fn finish(self) {
        match self {
            Backend::Sqlite { dir } => std::fs::remove_dir_all(dir).unwrap(),
            Backend::Postgres { database } => database.drop_database().await,
        }
    }

    /// The stored payload of every record, as it is at rest.
    pub async fn raw_payloads(&self) -> Vec<String> {
        self.raw_strings("SELECT payload FROM records").await
    }

    /// How many rows a table holds.
    pub async fn rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self {
            Backend::Sqlite { .. } => {
                let mut db = self.sqlite_connection_for(false).await;
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut db)
                    .await
                    .unwrap()
            }
            Backend::Postgres { database } => {
                let mut db = sqlx::PgConnection::connect(database.url()).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut db)
                    .await
                    .unwrap()
            }
        }
    }

    /// Runs a statement as another program would (a newer build's migration, say).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Backend::Sqlite { .. } => {
                let mut db = self.sqlite_connection_for(true).await;
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
            Backend::Postgres { database } => {
                let mut db = sqlx::PgConnection::connect(database.url()).await.unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
        }
    }

    /// The connection's records counted row by row, live and deleted per model, by model: what
    /// `Store::record_counts` must answer from its counters.
    pub async fn counted_records(&self, connection: &str) -> Vec<RecordCount> {
        let sql = "SELECT model, COUNT(*) FILTER (WHERE deleted_at IS NULL), \
             COUNT(*) FILTER (WHERE deleted_at IS NOT NULL) FROM records \
             WHERE connection_row = $1 GROUP BY model ORDER BY model";
        let rows: Vec<(String, i64, i64)> = match self {
            Backend::Sqlite { .. } => {
                let mut db = self.sqlite_connection_for(false).await;
                sqlx::query_as(sql)
                    .bind(connection)
                    .fetch_all(&mut db)
                    .await
                    .unwrap()
            }
            Backend::Postgres { database } => {
                let mut db = sqlx::PgConnection::connect(database.url()).await.unwrap();
                sqlx::query_as(sql)
                    .bind(connection)
                    .fetch_all(&mut db)
                    .await
                    .unwrap()
            }
        };
        rows.into_iter()
            .map(|(model, live, deleted)| RecordCount {
                model,
                live: live as u64,
                deleted: deleted as u64,
            })
            .collect()
    }

    async fn raw_strings(&self, sql: &'static str) -> Vec<String> {
        match self {
            Backend::Sqlite { .. } => {
                let mut db = self.sqlite_connection_for(false).await;
                sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
            }
            Backend::Postgres { database } => {
                let mut db = sqlx::PgConnection::connect(database.url()).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
            }
        }
    }

    /// A connection of its own to the SQLite file: read-only unless `writes`.
    async fn sqlite_connection_for(&self, writes: bool) -> sqlx::SqliteConnection {
        let Backend::Sqlite { dir } = self else {
            unreachable!("called for SQLite only")
        };
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("store.db"))
            .read_only(!writes);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap()
    }
}

pub fn ring(ids: &[(&str, u8)], active: &str) -> Arc<KeyRing> {
    let keys: BTreeMap<String, SecretBox<[u8; 32]>> = ids
        .iter()
        .map(|(id, byte)| (id.to_string(), SecretBox::new(Box::new([*byte; 32]))))
        .collect();
    Arc::new(KeyRing::new(&keys, active).unwrap())
}

pub fn tokens(access: &str, refresh: Option<&str>) -> Tokens {
    Tokens {
        access_token: SecretString::from(access),
        refresh_token: refresh.map(SecretString::from),
        id_token: None,
        expires_at: chrono::DateTime::from_timestamp_millis(4_000_000_000_000),
        scopes: vec!["People.Read".into()],
    }
}

pub fn new_connection(id: &str, access: &str) -> NewConnection {
    NewConnection {
        key: ConnectionKey::new("microsoft", id),
        provider: "microsoft-people".into(),
        connection_config: BTreeMap::from([("tenant".into(), "common".into())]),
        account: Some(serde_json::json!({"id": "u1"})),
        tokens: tokens(access, Some("refresh-1")),
    }
}

/// A store with one connection; its row identity.
pub async fn with_connection(b: &Backend) -> (Arc<dyn Store>, String) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    let connection = store
        .save_connection(new_connection("c1", "a"), Utc::now())
        .await
        .unwrap();
    (store, connection.id)
}

pub fn rec(id: &str, n: i64) -> RecordJson<'static> {
    RecordJson::encode(plugboard_core::Record::new(
        id,
        serde_json::json!({ "id": id, "n": n }),
    ))
    .unwrap()
}

pub fn query(connection: &str) -> RecordQuery {
    RecordQuery {
        connection: connection.to_owned(),
        model: "Person".into(),
        after: None,
        limit: 100,
        modified_after: None,
        actions: vec![],
        ids: vec![],
        newest_first: false,
        scan_limit: None,
    }
}

pub async fn live_ids(store: &Arc<dyn Store>, connection: &str) -> Vec<String> {
    let page = store.records(&query(connection)).await.unwrap();
    let mut ids: Vec<String> = page
        .records
        .into_iter()
        .filter(|r| r.deleted_at.is_none())
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

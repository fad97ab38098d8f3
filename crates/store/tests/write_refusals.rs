//! The errors of a database that refuses writes, as real SQLite and real PostgreSQL give them,
//! become [`StoreError::WritesRefused`] with the reason, and other errors do not. (The host
//! running on a full or read-only store is `crates/host/tests/e2e/store_faults.rs`.)

use plugboard_store::StoreError;
use plugboard_store::testing::TestDatabase;
use sqlx::{Connection, Executor};

/// The store's error for what `sql` fails with.
async fn error_of<C>(connection: &mut C, sql: &'static str) -> StoreError
where
    for<'c> &'c mut C: Executor<'c>,
{
    match connection.execute(sql).await {
        Ok(_) => panic!("the database took `{sql}`"),
        Err(error) => StoreError::from(error),
    }
}

fn reason(error: &StoreError) -> Option<&'static str> {
    match error {
        StoreError::WritesRefused { reason } => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn sqlite_full_and_read_only_are_refused_writes() {
    let mut sqlite = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    sqlite
        .execute("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 8")
        .await
        .unwrap();
    // Past its page limit SQLite answers SQLITE_FULL, as to a disk without room.
    let full = error_of(
        &mut sqlite,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) \
         INSERT INTO t SELECT zeroblob(4096) FROM n",
    )
    .await;
    assert_eq!(reason(&full), Some("the disk is full"), "{full:?}");
    assert_eq!(
        full.to_string(),
        "the store refused a write: the disk is full"
    );
    // Nothing of the refused statement stayed.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut sqlite)
        .await
        .unwrap();
    assert_eq!(rows, 0);

    sqlite.execute("PRAGMA query_only = 1").await.unwrap();
    let read_only = error_of(&mut sqlite, "INSERT INTO t VALUES (x'00')").await;
    assert_eq!(
        reason(&read_only),
        Some("the database file is read-only"),
        "{read_only:?}"
    );

    // A mistake in the SQL is no refusal.
    let mistake = error_of(&mut sqlite, "SELECT nothing FROM nowhere").await;
    assert!(matches!(mistake, StoreError::Database(_)), "{mistake:?}");
}

#[tokio::test]
async fn a_read_only_postgres_database_is_a_refused_write() {
    let database = TestDatabase::create().await;
    let mut postgres = sqlx::PgConnection::connect(database.url()).await.unwrap();
    postgres
        .execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let read_only = error_of(&mut postgres, "CREATE TABLE t (x int)").await;
    assert_eq!(
        reason(&read_only),
        Some("the database is read-only (a standby, or set to read-only)"),
        "{read_only:?}"
    );
    let mistake = error_of(&mut postgres, "SELECT nothing FROM nowhere").await;
    assert!(matches!(mistake, StoreError::Database(_)), "{mistake:?}");
    postgres.close().await.unwrap();
    database.drop_database().await;
}

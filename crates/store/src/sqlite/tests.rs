//! Upgrades of stores written by earlier releases; what every backend does is in the
//! conformance suite (`tests/conformance`).

use std::collections::BTreeMap;

use secrecy::SecretBox;

use super::*;
use crate::columns::micros;
use crate::{RecordCursor, RecordQuery};

fn ring() -> Arc<KeyRing> {
    let keys = BTreeMap::from([("k1".to_owned(), SecretBox::new(Box::new([1u8; 32])))]);
    Arc::new(KeyRing::new(&keys, "k1").unwrap())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plugboard-store-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A database at migration `version` of `migrator()`, with one connection `c1`.
async fn database_at(path: &Path, version: usize) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let mut before = migrator();
    before.migrations = before.migrations[..version].to_vec().into();
    before.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO connections (id, integration, connection_id, provider, \
         connection_config, status, access_token, scopes, token_version, created_at, \
         updated_at) VALUES ('c1', 'microsoft', 'c1', 'microsoft-people', '{}', 'ok', \
         'sealed', '[]', 1, 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// A crawl in progress when the seen log replaced `records.seen_generation` (migration 4)
/// keeps what it had seen: ending it deletes only what it did not see.
#[tokio::test]
async fn a_crawl_in_progress_keeps_what_it_saw_across_the_move_to_the_seen_log() {
    let dir = temp_dir("seen-log");
    let path = dir.join("store.db");
    let pool = database_at(&path, 3).await;
    // The crawl in progress (generation 2) saw `a` and `c`; `b` was last seen by an older
    // one.
    for (id, seen) in [("a", 2), ("b", 1), ("c", 2)] {
        sqlx::query(
            "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
             first_seen_at, last_modified_at, last_action, seen_generation) \
             VALUES ('c1', 'Person', ?, '{}', 0, x'00', 1, 1, 'ADDED', ?)",
        )
        .bind(id)
        .bind(seen)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO crawls VALUES ('c1', 'Person', 2, 1)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&path, ring()).await.unwrap();
    let now = Utc::now();
    assert_eq!(store.end_crawl("c1", "Person", now).await.unwrap(), Some(1));
    let deleted: Vec<String> =
        sqlx::query_scalar("SELECT record_id FROM records WHERE deleted_at IS NOT NULL")
            .fetch_all(&store.reader)
            .await
            .unwrap();
    assert_eq!(deleted, ["b"]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Stamps issued by a process counter before the records clocks (migration 5) and the
/// cursors made of them stay valid: the clock starts past the stored stamps, so a record
/// written after the upgrade, even by a process whose clock is behind, is listed after a
/// cursor handed out before it.
#[tokio::test]
async fn cursors_handed_out_before_the_records_clocks_keep_working() {
    let dir = temp_dir("clocks");
    let path = dir.join("store.db");
    let pool = database_at(&path, 4).await;
    let future = micros(Utc::now()) + 3_600_000_000;
    for (id, stamp) in [("a", future - 1), ("b", future)] {
        sqlx::query(
            "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
             first_seen_at, last_modified_at, last_action) \
             VALUES ('c1', 'Person', ?, '{}', 0, x'00', 1, ?, 'ADDED')",
        )
        .bind(id)
        .bind(stamp)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let cursor = RecordCursor {
        modified: future - 1,
        id: "a".into(),
    }
    .encode();

    let store = SqliteStore::open(&path, ring()).await.unwrap();
    let written =
        vec![RecordJson::encode(plugboard_core::Record::new("c", serde_json::json!({}))).unwrap()];
    store
        .save_records("c1", "Person", written, Utc::now())
        .await
        .unwrap();
    let page = store
        .records(&RecordQuery {
            connection: "c1".into(),
            model: "Person".into(),
            after: RecordCursor::decode(&cursor),
            limit: 10,
            modified_after: None,
            actions: vec![],
            ids: vec![],
            newest_first: false,
            scan_limit: None,
        })
        .await
        .unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Health after the upgrade that keeps `sync_states.last_run_failed` (migration 6): the flag is
/// filled from the runs already stored, so a sync whose latest finished run failed shows as
/// failing at once, and one that recovered since a failure does not.
#[tokio::test]
async fn sync_health_is_read_from_the_runs_stored_before_the_upgrade() {
    use crate::{ConnectionFilter, ConnectionHealth};

    let dir = temp_dir("health");
    let path = dir.join("store.db");
    let pool = database_at(&path, 5).await;
    sqlx::query(
        "INSERT INTO connections (id, integration, connection_id, provider, \
         connection_config, status, access_token, scopes, token_version, created_at, \
         updated_at) VALUES ('c2', 'microsoft', 'c2', 'microsoft-people', '{}', 'ok', \
         'sealed', '[]', 1, 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // c1's people failed, then succeeded; c2's contacts succeeded, then failed, and run again.
    for (run, connection, sync, started, status) in [
        ("r1", "c1", "people", 1, "failed"),
        ("r2", "c1", "people", 2, "success"),
        ("r3", "c2", "contacts", 1, "success"),
        ("r4", "c2", "contacts", 2, "failed"),
        ("r5", "c2", "contacts", 3, "running"),
    ] {
        sqlx::query("INSERT OR IGNORE INTO sync_states (connection_row, sync_name) VALUES (?, ?)")
            .bind(connection)
            .bind(sync)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO sync_runs (id, connection_row, sync_name, mode, started_at, status) \
             VALUES (?, ?, ?, 'full', ?, ?)",
        )
        .bind(run)
        .bind(connection)
        .bind(sync)
        .bind(started)
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let store = SqliteStore::open(&path, ring()).await.unwrap();
    let page = store
        .connection_summaries(&ConnectionFilter {
            limit: 10,
            ..ConnectionFilter::default()
        })
        .await
        .unwrap();
    let health: Vec<(&str, ConnectionHealth)> = page
        .connections
        .iter()
        .map(|c| (c.row.as_str(), c.health))
        .collect();
    assert_eq!(
        health,
        [
            ("c1", ConnectionHealth::Healthy),
            ("c2", ConnectionHealth::SyncFailing)
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Record counts after the upgrade that keeps them on the clocks (migration 7): counted from
/// the records stored, per connection and model, live and deleted apart, a model's clock
/// keeping its stamp; writes after the upgrade move them on from there.
#[tokio::test]
async fn record_counts_are_counted_from_the_records_stored_before_the_upgrade() {
    use crate::RecordCount;

    let dir = temp_dir("counts");
    let path = dir.join("store.db");
    let pool = database_at(&path, 6).await;
    let future = micros(Utc::now()) + 3_600_000_000;
    for (model, id, deleted_at) in [
        ("Person", "a", None),
        ("Person", "b", Some(2)),
        ("Person", "c", None),
        ("Group", "g", Some(2)),
    ] {
        sqlx::query(
            "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
             first_seen_at, last_modified_at, last_action, deleted_at) \
             VALUES ('c1', ?, ?, '{}', 0, x'00', 1, ?, 'ADDED', ?)",
        )
        .bind(model)
        .bind(id)
        .bind(future)
        .bind(deleted_at)
        .execute(&pool)
        .await
        .unwrap();
    }
    // Person's clock, as writes left it; a clock without records (a deletion of ids never
    // stored) stays out of the counts.
    for (model, stamp) in [("Person", future), ("Nobody", 5)] {
        sqlx::query("INSERT INTO record_clocks (connection_row, model, stamp) VALUES ('c1', ?, ?)")
            .bind(model)
            .bind(stamp)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&path, ring()).await.unwrap();
    let count = |model: &str, live, deleted| RecordCount {
        model: model.into(),
        live,
        deleted,
    };
    assert_eq!(
        store.record_counts("c1").await.unwrap(),
        [count("Group", 0, 1), count("Person", 2, 1)]
    );
    let stamps: Vec<(String, i64)> =
        sqlx::query_as("SELECT model, stamp FROM record_clocks ORDER BY model")
            .fetch_all(&store.reader)
            .await
            .unwrap();
    let expected = [("Group", future), ("Nobody", 5), ("Person", future)];
    let expected: Vec<(String, i64)> = expected.map(|(m, s)| (m.to_owned(), s)).into();
    assert_eq!(stamps, expected);

    let saved = ["b", "d"].map(|id| {
        RecordJson::encode(plugboard_core::Record::new(id, serde_json::json!({}))).unwrap()
    });
    let now = Utc::now();
    store
        .save_records("c1", "Person", saved.into(), now)
        .await
        .unwrap();
    store
        .delete_records("c1", "Group", &["g".to_owned()], now)
        .await
        .unwrap();
    assert_eq!(
        store.record_counts("c1").await.unwrap(),
        [count("Group", 0, 1), count("Person", 4, 0)]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

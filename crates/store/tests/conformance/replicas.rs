//! Several processes on one database: each `Backend::open` is another replica's store.

use std::sync::Arc;

use chrono::Duration;
use futures::future::join_all;
use plugboard_store::{ConnectionChanges, RunCounts, RunStatus};

use crate::support::*;

/// Replicas started at the same moment on a new database all open it: the migrations are
/// applied once, not raced.
pub async fn replicas_opening_a_new_store_together_all_succeed(b: &Backend) {
    let keys = ring(&[("k1", 1)], "k1");
    let opened = join_all((0..4).map(|_| {
        let keys = keys.clone();
        let location = b.location();
        async move { plugboard_store::open(&location, keys, true).await }
    }))
    .await;
    for store in opened {
        let store = store.expect("every replica opens the store");
        store.close().await;
    }
}

/// The records cursor's order comes from the database: writes through two processes, with
/// clocks that disagree, are listed after a cursor taken between them.
pub async fn writes_from_two_replicas_keep_the_cursor_in_commit_order(b: &Backend) {
    let (a, c) = with_connection(b).await;
    let other = b.open(ring(&[("k1", 7)], "k1")).await;
    let now = Utc::now();
    a.save_records(&c, "Person", vec![rec("x", 1)], now)
        .await
        .unwrap();
    let first = a.records(&query(&c)).await.unwrap();
    let cursor = first.records.last().unwrap().cursor.clone();
    // The other replica's clock is an hour behind.
    other
        .save_records(&c, "Person", vec![rec("y", 1)], now - Duration::hours(1))
        .await
        .unwrap();
    a.save_records(&c, "Person", vec![rec("a", 1)], now)
        .await
        .unwrap();
    let after = a
        .records(&RecordQuery {
            after: Some(cursor),
            ..query(&c)
        })
        .await
        .unwrap();
    let ids: Vec<&str> = after.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["y", "a"], "written after the cursor, in commit order");
    assert!(after.records[0].cursor.modified < after.records[1].cursor.modified);
}

/// Replicas that each found a scheduled run due make it once between them, even when one
/// claims only after the other's run finished; a sync whose last run failed stays due.
pub async fn a_scheduled_run_is_made_once_between_replicas(b: &Backend) {
    let (a, c) = with_connection(b).await;
    let other = b.open(ring(&[("k1", 7)], "k1")).await;
    let now = Utc::now();
    let due_since = now - Duration::seconds(30);
    let lease = now + Duration::seconds(30);
    let run = a
        .start_run(&c, "people", "incremental", lease, now, Some(due_since))
        .await
        .unwrap()
        .expect("due, and the lease is free");
    assert_eq!(
        other
            .start_run(&c, "people", "incremental", lease, now, Some(due_since))
            .await
            .unwrap(),
        None,
        "held by the first replica's run"
    );
    a.finish_run(&run, RunStatus::Success, RunCounts::default(), None, now)
        .await
        .unwrap();
    let later = now + Duration::seconds(1);
    assert_eq!(
        other
            .start_run(&c, "people", "incremental", lease, later, Some(due_since))
            .await
            .unwrap(),
        None,
        "already made since it fell due"
    );
    let triggered = other
        .start_run(&c, "people", "full", lease, later, None)
        .await
        .unwrap()
        .expect("a triggered run is not a scheduled one: it runs");
    // It fails: the sync is due again at once, whatever succeeded before.
    other
        .finish_run(
            &triggered,
            RunStatus::Failed,
            RunCounts::default(),
            None,
            later,
        )
        .await
        .unwrap();
    assert!(
        a.start_run(&c, "people", "incremental", lease, later, Some(due_since))
            .await
            .unwrap()
            .is_some(),
        "the last run failed: due"
    );
    assert_eq!(a.runs(&c, "people", 10).await.unwrap().len(), 3);
}

/// Saving, marking for reconnect, pausing, re-timing and deleting a connection through one
/// replica shows in every other replica's change log, in order; checkpoints and token
/// refreshes do not.
pub async fn connection_changes_reach_other_replicas(b: &Backend) {
    let (a, c) = with_connection(b).await;
    let other = b.open(ring(&[("k1", 7)], "k1")).await;
    let start = other.connection_changes(0).await.unwrap();
    assert!(
        start.keys.is_empty(),
        "position 0 answers only where the log is"
    );
    let now = Utc::now();
    let key = ConnectionKey::new("microsoft", "c1");
    let second = ConnectionKey::new("microsoft", "c2");
    a.save_connection(new_connection("c2", "b"), now)
        .await
        .unwrap();
    a.set_checkpoint(&c, "people", Some(&serde_json::json!({"page": 2})))
        .await
        .unwrap();
    a.set_sync_paused(&c, "people", true).await.unwrap();
    a.set_sync_frequency(&c, "people", Some(60)).await.unwrap();
    let connection = a.connection(&key).await.unwrap().unwrap();
    assert!(a.mark_needs_reconnect(&key, 1, "gone", now).await.unwrap());
    let refreshed = TokenUpdate {
        access_token: "fresh".to_owned().into(),
        refresh_token: None,
        id_token: None,
        expires_at: None,
        scopes: vec![],
    };
    a.update_tokens(&connection, refreshed, now).await.unwrap();
    assert!(a.delete_connection(&second).await.unwrap());
    let changes = other.connection_changes(start.position).await.unwrap();
    assert_eq!(
        changes.keys,
        [
            second.clone(),
            key.clone(),
            key.clone(),
            key.clone(),
            second
        ]
    );
    assert_eq!(
        other.connection_changes(changes.position).await.unwrap(),
        ConnectionChanges {
            keys: vec![],
            position: changes.position
        }
    );
}

/// Reconnects racing through two replicas leave one connection with one row identity and
/// every credential version counted once.
pub async fn concurrent_saves_of_one_connection_keep_one_row(b: &Backend) {
    let a = b.open(ring(&[("k1", 1)], "k1")).await;
    let other = b.open(ring(&[("k1", 1)], "k1")).await;
    let stores: [&Arc<dyn Store>; 2] = [&a, &other];
    let saved = join_all((0..10).map(|i| {
        let store = stores[i % 2].clone();
        async move {
            store
                .save_connection(new_connection("c1", &format!("access-{i}")), Utc::now())
                .await
                .unwrap()
        }
    }))
    .await;
    let mut versions: Vec<i64> = saved.iter().map(|c| c.token_version).collect();
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    assert!(saved.iter().all(|c| c.id == saved[0].id));
    assert_eq!(a.connections(None).await.unwrap().len(), 1);
}

/// Of replicas racing for a free refresh lease, exactly one gets it.
pub async fn a_refresh_lease_has_one_winner_among_replicas(b: &Backend) {
    let (a, _) = with_connection(b).await;
    let other = b.open(ring(&[("k1", 7)], "k1")).await;
    let key = ConnectionKey::new("microsoft", "c1");
    let now = Utc::now();
    let until = now + Duration::seconds(45);
    let stores = [a, other];
    let won = join_all((0..20).map(|i| {
        let store = stores[i % 2].clone();
        let key = key.clone();
        async move {
            store
                .acquire_refresh_lease(&key, &format!("owner-{i}"), until, now)
                .await
                .unwrap()
                .taken()
        }
    }))
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1);
}

/// The readiness check's view: a store just opened has every migration this build carries;
/// once a newer build has migrated the database further, it is no longer current.
pub async fn an_open_store_has_a_current_schema(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let version = store.schema_version().await.unwrap();
    assert!(version.is_current(), "{version:?}");
    assert!(version.expected >= 1, "{version:?}");
    let checksum = match b {
        Backend::Postgres { .. } => "'\\x00'::bytea",
        _ => "X'00'",
    };
    b.execute(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({}, 'a newer build', TRUE, {checksum}, 0)",
        version.expected + 1
    ))
    .await;
    let newer = store.schema_version().await.unwrap();
    assert!(!newer.is_current(), "{newer:?}");
    assert_eq!(newer.applied, Some(version.expected + 1));
    store.close().await;
}

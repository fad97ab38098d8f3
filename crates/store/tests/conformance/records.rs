//! Records, crawls, sync state and runs.

use std::borrow::Cow;

use plugboard_core::{EncodedRecords, Record};
use plugboard_store::*;
use serde_json::{Value, json};

use crate::support::*;

pub async fn crawls_delete_only_unseen_records_and_unchanged_records_are_not_rewritten(
    b: &Backend,
) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let saved = store
        .save_records(
            &c,
            "Person",
            vec![rec("a", 1), rec("b", 1), rec("c", 1)],
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        saved,
        SaveOutcome {
            added: 3,
            updated: 0,
            unchanged: 0
        }
    );
    let before = store.records(&query(&c)).await.unwrap().records;

    // A crawl sees a (unchanged) and c (changed), across two batches, then ends.
    store.begin_crawl(&c, "Person").await.unwrap();
    let first = store
        .save_records(&c, "Person", vec![rec("a", 1)], now)
        .await
        .unwrap();
    assert_eq!(
        first,
        SaveOutcome {
            added: 0,
            updated: 0,
            unchanged: 1
        }
    );
    let second = store
        .save_records(&c, "Person", vec![rec("c", 2), rec("c", 3)], now)
        .await
        .unwrap();
    assert_eq!(
        second,
        SaveOutcome {
            added: 0,
            updated: 1,
            unchanged: 0
        },
        "last save wins"
    );
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(1));
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), None);

    let after = store.records(&query(&c)).await.unwrap().records;
    let get =
        |records: &[StoredRecord], id: &str| records.iter().find(|r| r.id == id).cloned().unwrap();
    assert_eq!(
        get(&after, "a"),
        get(&before, "a"),
        "unchanged: not rewritten"
    );
    let changed = get(&after, "c");
    assert_eq!(changed.last_action, RecordAction::Updated);
    assert_eq!(changed.data["n"], 3);
    assert!(changed.last_modified_at > get(&before, "c").last_modified_at);
    let deleted = get(&after, "b");
    assert_eq!(deleted.last_action, RecordAction::Deleted);
    assert!(deleted.deleted_at.is_some());
    assert_eq!(live_ids(&store, &c).await, ["a", "c"]);

    // A crawl that never ends deletes nothing; a deleted record saved again is ADDED.
    store.begin_crawl(&c, "Person").await.unwrap();
    store
        .save_records(&c, "Person", vec![rec("b", 1)], now)
        .await
        .unwrap();
    assert_eq!(live_ids(&store, &c).await, ["a", "b", "c"]);
    let again = store
        .records(&RecordQuery {
            ids: vec!["b".into()],
            ..query(&c)
        })
        .await
        .unwrap()
        .records;
    assert_eq!(again[0].last_action, RecordAction::Added);

    // Payloads are sealed at rest.
    for raw in b.raw_payloads().await {
        assert!(raw.starts_with("pb1:k1:"), "{raw}");
    }
}

/// Ids travel to the database in batches (as JSON in SQLite, as arrays of bytes in
/// PostgreSQL: the batch compared with stored hashes, the crawl's seen log), so any text a provider uses as an id must come back out of JSON byte for byte.
pub async fn ids_with_any_characters_are_compared_and_seen_exactly(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let ids = [
        "a\0b", "a", "é\"x\\", "AAMk+/=", "😀", " space ", "\u{7f}\n",
    ];
    let batch = || ids.iter().map(|id| rec(id, 1)).collect::<Vec<_>>();
    store.begin_crawl(&c, "Person").await.unwrap();
    let first = store
        .save_records(&c, "Person", batch(), now)
        .await
        .unwrap();
    assert_eq!(first.added, ids.len() as u64);
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(0));

    store.begin_crawl(&c, "Person").await.unwrap();
    let again = store
        .save_records(&c, "Person", batch(), now)
        .await
        .unwrap();
    assert_eq!(
        again,
        SaveOutcome {
            added: 0,
            updated: 0,
            unchanged: ids.len() as u64
        }
    );
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(0));
    let mut expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    expected.sort();
    assert_eq!(live_ids(&store, &c).await, expected);
}

/// The seen log is per crawl: a crawl begun again does not count what the abandoned one
/// saw, and an ended crawl leaves nothing behind.
pub async fn a_crawl_begun_again_forgets_what_the_abandoned_one_saw(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let all = vec![rec("a", 1), rec("b", 1)];
    store.save_records(&c, "Person", all, now).await.unwrap();
    store.begin_crawl(&c, "Person").await.unwrap();
    let seen_a = vec![rec("a", 1)];
    store.save_records(&c, "Person", seen_a, now).await.unwrap();
    store.begin_crawl(&c, "Person").await.unwrap();
    let seen_b = vec![rec("b", 1)];
    store.save_records(&c, "Person", seen_b, now).await.unwrap();
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(1));
    assert_eq!(live_ids(&store, &c).await, ["b"]);
    assert_eq!(b.rows("crawl_seen").await, 0);
}

/// A built-in provider's records are serialised by the host; a plugin's arrive as the JSON
/// its `serde_json` wrote. Both must hash alike, or switching a provider between built in
/// and plugin would report every record UPDATED.
pub async fn records_hash_the_same_from_a_value_and_from_a_plugins_json(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    // Keys out of order, nesting, escapes, floats and non-ASCII text: what serialisation
    // could disagree on.
    let records = vec![
        Record::new(
            "p\"1",
            json!({"zeta": 1, "alpha": {"y": [1.5, -0.0, 1e300], "b": null}, "text": "ü\n\u{1}"}),
        ),
        Record::new("p2", json!([{"b": true, "a": "x"}])),
    ];
    let built_in: Vec<RecordJson> = records
        .iter()
        .cloned()
        .map(|r| RecordJson::encode(r).unwrap())
        .collect();
    let added = store
        .save_records(&c, "Person", built_in, now)
        .await
        .unwrap();
    assert_eq!(added.added, 2);

    let encoded = EncodedRecords::encode(&records).unwrap();
    let raw = encoded.raw().unwrap();
    let from_plugin: Vec<RecordJson> = raw.into_iter().map(RecordJson::from).collect();
    assert!(
        from_plugin
            .iter()
            .all(|r| matches!(r.json, Cow::Borrowed(_))),
        "a plugin's record data is not copied"
    );
    let again = store
        .save_records(&c, "Person", from_plugin, now)
        .await
        .unwrap();
    assert_eq!(
        again,
        SaveOutcome {
            added: 0,
            updated: 0,
            unchanged: 2
        }
    );
    let stored = store.records(&query(&c)).await.unwrap().records;
    let data: Vec<&Value> = stored.iter().map(|r| &r.data).collect();
    assert_eq!(data, [&records[0].data, &records[1].data]);
}

pub async fn the_cursor_is_stable_while_records_are_written(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let first: Vec<RecordJson> = (0..10).map(|i| rec(&format!("r{i:02}"), 0)).collect();
    store.save_records(&c, "Person", first, now).await.unwrap();
    let page = store
        .records(&RecordQuery {
            limit: 4,
            ..query(&c)
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 4);
    let cursor = page.next.clone().unwrap();
    assert_eq!(RecordCursor::decode(&cursor.encode()), Some(cursor.clone()));

    // Written between two pages, with a clock that went backwards: still after the cursor.
    let earlier = now - chrono::Duration::hours(1);
    store
        .save_records(&c, "Person", vec![rec("r00", 9), rec("new", 0)], earlier)
        .await
        .unwrap();
    let mut seen: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
    let mut after = Some(cursor);
    while let Some(position) = after {
        let next = store
            .records(&RecordQuery {
                limit: 4,
                after: Some(position),
                ..query(&c)
            })
            .await
            .unwrap();
        seen.extend(next.records.iter().map(|r| r.id.clone()));
        after = next.next;
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert_eq!(&seen[10..], ["new", "r00"], "{seen:?}");

    let updated = store
        .records(&RecordQuery {
            actions: vec![RecordAction::Updated],
            ..query(&c)
        })
        .await
        .unwrap();
    assert_eq!(updated.records.len(), 1);
    let modified_after = store
        .records(&RecordQuery {
            modified_after: Some(
                updated.records[0].last_modified_at - chrono::Duration::microseconds(1),
            ),
            ..query(&c)
        })
        .await
        .unwrap();
    assert_eq!(modified_after.records.len(), 2);
}

pub async fn sync_state_runs_and_logs_round_trip(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    assert_eq!(
        store.sync_state(&c, "people").await.unwrap(),
        SyncState::default()
    );
    store
        .set_checkpoint(&c, "people", Some(&json!({"next": "x"})))
        .await
        .unwrap();
    store.set_sync_paused(&c, "people", true).await.unwrap();
    store
        .set_sync_frequency(&c, "people", Some(30))
        .await
        .unwrap();
    assert_eq!(
        store.sync_state(&c, "people").await.unwrap(),
        SyncState {
            checkpoint: Some(json!({"next": "x"})),
            paused: true,
            frequency_secs: Some(30)
        }
    );
    let lease = now + chrono::Duration::seconds(30);
    let run = store
        .start_run(&c, "people", "incremental", lease, now, None)
        .await
        .unwrap()
        .unwrap();
    store
        .append_run_logs(
            &run,
            &[RunLog {
                at: now,
                level: "info".into(),
                message: "hi".into(),
            }],
        )
        .await
        .unwrap();
    // Its lease is live: start-up recovery leaves it alone; once expired, it is failed.
    assert_eq!(store.fail_interrupted_runs(now).await.unwrap(), 0);
    assert_eq!(store.fail_interrupted_runs(lease).await.unwrap(), 1);
    let runs = store.runs(&c, "people", 5).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(runs[0].error.as_deref().unwrap().contains("host stopped"));
    let second = store
        .start_run(
            &c,
            "people",
            "full",
            lease + chrono::Duration::seconds(30),
            lease,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let counts = RunCounts {
        added: 1,
        updated: 2,
        deleted: 3,
    };
    store
        .finish_run(&second, RunStatus::Success, counts, None, now)
        .await
        .unwrap();
    let runs = store.runs(&c, "people", 5).await.unwrap();
    assert_eq!(
        (runs[0].status, runs[0].counts),
        (RunStatus::Success, counts)
    );
    assert_eq!(store.run_logs(&run).await.unwrap()[0].message, "hi");
}

pub async fn a_run_lease_admits_one_run_until_it_finishes_or_expires(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let secs = chrono::Duration::seconds;
    let first = store
        .start_run(&c, "people", "full", now + secs(30), now, None)
        .await
        .unwrap()
        .expect("a free lease is taken");
    // Held: no second run of the sync, but another sync of the connection may run.
    assert_eq!(
        store
            .start_run(&c, "people", "full", now + secs(30), now, None)
            .await
            .unwrap(),
        None
    );
    let other = store
        .start_run(&c, "contacts", "full", now + secs(30), now, None)
        .await
        .unwrap()
        .expect("leases are per sync");
    // Renewed past its first expiry, it still holds the sync there.
    assert!(store.renew_run_lease(&first, now + secs(60)).await.unwrap());
    let later = now + secs(45);
    assert_eq!(
        store
            .start_run(&c, "people", "full", later + secs(30), later, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.fail_interrupted_runs(later).await.unwrap(),
        1,
        "only the unrenewed one"
    );
    // Finishing releases the lease at once.
    store
        .finish_run(
            &first,
            RunStatus::Success,
            RunCounts::default(),
            None,
            later,
        )
        .await
        .unwrap();
    let second = store
        .start_run(&c, "people", "full", later + secs(30), later, None)
        .await
        .unwrap()
        .expect("released");
    // Its holder died: after expiry another run takes over and fails the dead one, whose
    // renewal then reports the loss.
    let after = later + secs(31);
    let third = store
        .start_run(&c, "people", "incremental", after + secs(30), after, None)
        .await
        .unwrap()
        .expect("expired");
    assert!(
        !store
            .renew_run_lease(&second, after + secs(30))
            .await
            .unwrap()
    );
    let runs = store.runs(&c, "people", 5).await.unwrap();
    let status = |id: &str| runs.iter().find(|r| r.id == id).unwrap().status;
    assert_eq!(
        (status(&first), status(&second), status(&third)),
        (RunStatus::Success, RunStatus::Failed, RunStatus::Running)
    );
    let contacts = store.runs(&c, "contacts", 5).await.unwrap();
    assert_eq!(
        (contacts[0].id.as_str(), contacts[0].status),
        (other.as_str(), RunStatus::Failed)
    );
}

pub async fn deleted_records_are_marked_once_and_listed_by_action(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let batch = vec![rec("a", 1), rec("b", 1), rec("c", 1)];
    store.save_records(&c, "Person", batch, now).await.unwrap();
    let ids = ["a".to_owned(), "c".to_owned(), "unknown".to_owned()];
    assert_eq!(
        store.delete_records(&c, "Person", &ids, now).await.unwrap(),
        2
    );
    assert_eq!(
        store.delete_records(&c, "Person", &ids, now).await.unwrap(),
        0,
        "already deleted"
    );
    let deleted = store
        .records(&RecordQuery {
            actions: vec![RecordAction::Deleted],
            ..query(&c)
        })
        .await
        .unwrap();
    let ids: Vec<&str> = deleted.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(live_ids(&store, &c).await, ["b"]);
}

pub async fn records_stored_plain_read_back_alike(b: &Backend) {
    let store = plugboard_store::open(&b.location(), ring(&[("k1", 7)], "k1"), false)
        .await
        .unwrap();
    let c = store
        .save_connection(new_connection("c1", "a"), Utc::now())
        .await
        .unwrap()
        .id;
    store
        .save_records(&c, "Person", vec![rec("a", 1)], Utc::now())
        .await
        .unwrap();
    assert_eq!(b.raw_payloads().await, [r#"{"id":"a","n":1}"#]);
    let page = store.records(&query(&c)).await.unwrap();
    assert_eq!(page.records[0].data, json!({"id": "a", "n": 1}));
}

pub async fn webhook_deliveries_are_updated_in_place_and_listed_newest_first(b: &Backend) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    // Stored to the microsecond.
    let now = chrono::DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let delivery = |id: &str, at: chrono::DateTime<Utc>| WebhookDelivery {
        id: id.into(),
        event_type: "sync.completed".into(),
        created_at: at,
        attempts: 1,
        status: None,
        error: Some("connection refused".into()),
        delivered: false,
        body: format!(r#"{{"id":"{id}","type":"sync.completed","data":{{"n":"é\u0000"}}}}"#),
    };
    let older = delivery("d1", now - chrono::Duration::seconds(5));
    store.save_webhook_delivery(&older).await.unwrap();
    store
        .save_webhook_delivery(&delivery("d2", now))
        .await
        .unwrap();
    let retried = WebhookDelivery {
        attempts: 2,
        status: Some(204),
        error: None,
        delivered: true,
        ..older
    };
    store.save_webhook_delivery(&retried).await.unwrap();
    let listed = store.webhook_deliveries(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, "d2");
    assert_eq!(listed[1], retried);
    assert_eq!(store.webhook_deliveries(1).await.unwrap().len(), 1);

    // One delivery, its body byte for byte, to send again; an attempt saved with another body
    // keeps the one first sent.
    assert_eq!(
        store.webhook_delivery("d1").await.unwrap(),
        Some(retried.clone())
    );
    assert!(
        retried.body.starts_with(r#"{"id":"d1""#),
        "{}",
        retried.body
    );
    let other = WebhookDelivery {
        attempts: 3,
        body: "{}".into(),
        ..retried.clone()
    };
    store.save_webhook_delivery(&other).await.unwrap();
    let kept = store.webhook_delivery("d1").await.unwrap().unwrap();
    assert_eq!((kept.attempts, kept.body), (3, retried.body));
    assert_eq!(store.webhook_delivery("unknown").await.unwrap(), None);
}

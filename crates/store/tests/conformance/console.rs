//! What the operator dashboard reads and writes: sign-ins, connections with their health,
//! record counts, newest-first records and the activity log.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration};
use plugboard_store::*;
use serde_json::{Value, json};

use crate::support::*;

/// Saves a connection of `integration`; its row identity.
async fn connect(
    store: &Arc<dyn Store>,
    integration: &str,
    id: &str,
    account: Option<Value>,
) -> String {
    let new = NewConnection {
        key: ConnectionKey::new(integration, id),
        account,
        ..new_connection(id, "access")
    };
    store.save_connection(new, Utc::now()).await.unwrap().id
}

/// The connections a filter lists, page after page of `limit`, as `integration/id`; checks on
/// the way that no page is longer than asked.
async fn listed(store: &Arc<dyn Store>, filter: ConnectionFilter) -> Vec<String> {
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .connection_summaries(&ConnectionFilter {
                after,
                ..filter.clone()
            })
            .await
            .unwrap();
        assert!(page.connections.len() <= filter.limit as usize);
        keys.extend(
            page.connections
                .iter()
                .map(|c| format!("{}/{}", c.key.integration, c.key.connection_id)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return keys,
        }
    }
}

fn all(limit: u32) -> ConnectionFilter {
    ConnectionFilter {
        limit,
        ..ConnectionFilter::default()
    }
}

/// Runs the sync once for the connection, ending as `status`.
async fn run(store: &Arc<dyn Store>, connection: &str, sync: &str, status: RunStatus) {
    let now = Utc::now();
    let id = store
        .start_run(
            connection,
            sync,
            "full",
            now + Duration::seconds(30),
            now,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    store
        .finish_run(&id, status, RunCounts::default(), None, now)
        .await
        .unwrap();
}

/// A time as the store keeps it (microseconds).
fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap()
}

/// A sign-in is known to every replica until it expires or is signed out on any of them.
pub async fn console_sessions_expire_and_end_at_sign_out(b: &Backend) {
    let keys = ring(&[("k1", 7)], "k1");
    let (one, two) = (b.open(keys.clone()).await, b.open(keys).await);
    let now = Utc::now();
    one.create_console_session("h1", now + Duration::hours(8), now)
        .await
        .unwrap();
    one.create_console_session("h2", now + Duration::minutes(1), now)
        .await
        .unwrap();
    for store in [&one, &two] {
        assert!(store.console_session_valid("h1", now).await.unwrap());
        assert!(store.console_session_valid("h2", now).await.unwrap());
        assert!(!store.console_session_valid("unknown", now).await.unwrap());
    }
    let later = now + Duration::minutes(2);
    assert!(
        !two.console_session_valid("h2", later).await.unwrap(),
        "expired"
    );
    assert!(two.console_session_valid("h1", later).await.unwrap());

    // Signing out on one replica ends the sign-in on the other; twice is harmless.
    two.delete_console_session("h1").await.unwrap();
    two.delete_console_session("h1").await.unwrap();
    assert!(!one.console_session_valid("h1", now).await.unwrap());

    // The expired one is purged (and counted); nothing else was left.
    assert_eq!(one.purge_expired(later).await.unwrap(), 1);
    assert_eq!(b.rows("console_sessions").await, 0);
}

/// Health is needing a reconnect, else a sync whose latest finished run failed, else a paused
/// sync, else healthy; the list filters on it and the overview counts it per integration.
pub async fn health_follows_reconnects_failed_runs_and_pauses(b: &Backend) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    let now = Utc::now();
    let mut rows = BTreeMap::new();
    for id in [
        "healthy",
        "reconnect",
        "failing",
        "paused",
        "recovered",
        "interrupted",
        "failing-and-paused",
        "failed-then-running",
        "taken-over",
    ] {
        rows.insert(id, connect(&store, "microsoft", id, None).await);
    }
    let other = connect(&store, "github", "g1", None).await;
    let row = |id: &str| rows[id].clone();

    run(&store, &row("healthy"), "people", RunStatus::Success).await;
    let reconnect = store
        .connection(&ConnectionKey::new("microsoft", "reconnect"))
        .await
        .unwrap()
        .unwrap();
    let key = reconnect.key.clone();
    assert!(
        store
            .mark_needs_reconnect(&key, reconnect.token_version, "invalid_grant", now)
            .await
            .unwrap()
    );
    run(&store, &row("reconnect"), "people", RunStatus::Failed).await;
    // One sync failing among others is enough.
    run(&store, &row("failing"), "people", RunStatus::Success).await;
    run(&store, &row("failing"), "contacts", RunStatus::Failed).await;
    store
        .set_sync_paused(&row("paused"), "people", true)
        .await
        .unwrap();
    // A failed run followed by a successful one: healthy again.
    run(&store, &row("recovered"), "people", RunStatus::Failed).await;
    run(&store, &row("recovered"), "people", RunStatus::Success).await;
    // A run whose process died is failed at start-up.
    let lease = now + Duration::seconds(30);
    store
        .start_run(&row("interrupted"), "people", "full", lease, now, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.fail_interrupted_runs(lease).await.unwrap(), 1);
    run(
        &store,
        &row("failing-and-paused"),
        "people",
        RunStatus::Failed,
    )
    .await;
    store
        .set_sync_paused(&row("failing-and-paused"), "contacts", true)
        .await
        .unwrap();
    // The latest finished run failed; the one running since has not finished.
    run(
        &store,
        &row("failed-then-running"),
        "people",
        RunStatus::Failed,
    )
    .await;
    store
        .start_run(
            &row("failed-then-running"),
            "people",
            "full",
            lease,
            now,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    // A run whose lease expired is failed by the run that takes the sync over.
    store
        .start_run(&row("taken-over"), "people", "full", lease, now, None)
        .await
        .unwrap()
        .unwrap();
    let over = lease + Duration::seconds(30);
    store
        .start_run(&row("taken-over"), "people", "full", over, lease, None)
        .await
        .unwrap()
        .unwrap();
    store.set_sync_paused(&other, "issues", true).await.unwrap();
    store
        .set_sync_paused(&other, "issues", false)
        .await
        .unwrap();

    let page = store.connection_summaries(&all(100)).await.unwrap();
    assert_eq!(page.next, None);
    let health: BTreeMap<String, ConnectionHealth> = page
        .connections
        .iter()
        .map(|c| (c.key.connection_id.clone(), c.health))
        .collect();
    use ConnectionHealth::*;
    let expected = BTreeMap::from([
        ("failed-then-running".to_owned(), SyncFailing),
        ("failing".to_owned(), SyncFailing),
        ("failing-and-paused".to_owned(), SyncFailing),
        ("g1".to_owned(), Healthy),
        ("healthy".to_owned(), Healthy),
        ("interrupted".to_owned(), SyncFailing),
        ("paused".to_owned(), Paused),
        ("reconnect".to_owned(), NeedsReconnect),
        ("recovered".to_owned(), Healthy),
        ("taken-over".to_owned(), SyncFailing),
    ]);
    assert_eq!(health, expected);
    let summary = page.connections.iter().find(|c| c.key == key).unwrap();
    assert_eq!(summary.row, reconnect.id);
    assert_eq!(summary.provider, "microsoft-people");
    assert_eq!(summary.status_reason.as_deref(), Some("invalid_grant"));
    assert_eq!(summary.expires_at, reconnect.tokens.expires_at);
    assert_eq!(summary.refresh_failed_at, None);
    assert_eq!(summary.account, reconnect.account);
    assert_eq!(summary.created_at, reconnect.created_at);

    // Each health filtered by the database.
    for health in [Healthy, NeedsReconnect, SyncFailing, Paused] {
        let ids = listed(
            &store,
            ConnectionFilter {
                health: Some(health),
                ..all(2)
            },
        )
        .await;
        let wanted: Vec<String> = expected
            .iter()
            .filter(|(_, h)| **h == health)
            .map(|(id, _)| {
                let integration = if id == "g1" { "github" } else { "microsoft" };
                format!("{integration}/{id}")
            })
            .collect();
        let mut sorted = wanted.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "{health:?}");
    }

    assert_eq!(
        store.connection_health_counts().await.unwrap(),
        [
            ("github".to_owned(), Healthy, 1),
            ("microsoft".to_owned(), Healthy, 2),
            ("microsoft".to_owned(), NeedsReconnect, 1),
            ("microsoft".to_owned(), Paused, 1),
            ("microsoft".to_owned(), SyncFailing, 5),
        ]
    );
}

/// A search is a substring of the connection id or of the account's name or email, ignoring
/// case; `%`, `_` and `\` in it match only themselves, and the account's keys are not searched.
pub async fn a_search_takes_wildcards_literally(b: &Backend) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    let account =
        |name: &str, email: &str| Some(json!({"id": "u", "display_name": name, "email": email}));
    connect(
        &store,
        "m",
        "alice",
        account("Alice Smith", "alice@example.com"),
    )
    .await;
    connect(&store, "m", "a_c", account("Bob", "bob@example.com")).await;
    connect(
        &store,
        "m",
        "abc",
        account("Carol 100%", "carol@example.com"),
    )
    .await;
    connect(&store, "m", r"x\y", None).await;
    connect(&store, "n", "XY", account("Dan", "DAN@Example.COM")).await;
    let search = |text: &str| ConnectionFilter {
        search: Some(text.to_owned()),
        ..all(10)
    };
    for (text, expected) in [
        ("a_c", vec!["m/a_c"]),
        ("%", vec!["m/abc"]),
        (r"\", vec![r"m/x\y"]),
        ("_", vec!["m/a_c"]),
        ("SMITH", vec!["m/alice"]),
        ("xy", vec!["n/XY"]),
        ("dan@example", vec!["n/XY"]),
        ("EXAMPLE.com", vec!["m/a_c", "m/abc", "m/alice", "n/XY"]),
        ("display", vec![]),
        ("", vec!["m/a_c", "m/abc", "m/alice", r"m/x\y", "n/XY"]),
    ] {
        assert_eq!(listed(&store, search(text)).await, expected, "{text:?}");
    }
}

/// Paging by (integration, connection id) lists every connection once, with or without
/// filters, whatever the page size.
pub async fn keyset_paging_lists_every_connection_once_with_filters_combined(b: &Backend) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    let mut everyone = Vec::new();
    for integration in ["github", "microsoft", "slack"] {
        for n in 0..9 {
            let id = format!("user-{n}");
            let row = connect(&store, integration, &id, None).await;
            if n % 3 == 0 {
                store.set_sync_paused(&row, "people", true).await.unwrap();
            }
            everyone.push(format!("{integration}/{id}"));
        }
    }
    for limit in [1, 4, 27, 100] {
        assert_eq!(listed(&store, all(limit)).await, everyone, "{limit}");
    }
    let first = store.connection_summaries(&all(4)).await.unwrap();
    assert_eq!(
        first.next,
        Some(ConnectionKey::new("github", "user-3")),
        "the last listed"
    );
    let combined = ConnectionFilter {
        integration: Some("microsoft".into()),
        health: Some(ConnectionHealth::Paused),
        search: Some("USER-".into()),
        ..all(1)
    };
    assert_eq!(
        listed(&store, combined.clone()).await,
        ["microsoft/user-0", "microsoft/user-3", "microsoft/user-6"]
    );
    let narrower = ConnectionFilter {
        search: Some("-6".into()),
        ..combined
    };
    assert_eq!(listed(&store, narrower).await, ["microsoft/user-6"]);
    let healthy_slack = ConnectionFilter {
        integration: Some("slack".into()),
        health: Some(ConnectionHealth::Healthy),
        ..all(5)
    };
    assert_eq!(listed(&store, healthy_slack).await.len(), 6);
}

/// Counts per model of one connection, live and deleted apart, by model.
pub async fn record_counts_split_live_and_deleted_per_model(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    assert_eq!(store.record_counts(&c).await.unwrap(), []);
    let people: Vec<RecordJson> = (0..10).map(|i| rec(&format!("p{i}"), i)).collect();
    store.save_records(&c, "Person", people, now).await.unwrap();
    let gone = ["p1".to_owned(), "p2".to_owned(), "p3".to_owned()];
    store
        .delete_records(&c, "Person", &gone, now)
        .await
        .unwrap();
    store
        .save_records(&c, "Group", vec![rec("g1", 1), rec("g2", 1)], now)
        .await
        .unwrap();
    let elsewhere = connect(&store, "microsoft", "c2", None).await;
    store
        .save_records(&elsewhere, "Person", vec![rec("x", 1)], now)
        .await
        .unwrap();
    let count = |model: &str, live, deleted| RecordCount {
        model: model.into(),
        live,
        deleted,
    };
    assert_eq!(
        store.record_counts(&c).await.unwrap(),
        [count("Group", 2, 0), count("Person", 7, 3)]
    );
}

/// Checks the connection's record counts against its records counted one by one, and against
/// what the test expects (model, live, deleted).
async fn counts_are(b: &Backend, store: &Arc<dyn Store>, c: &str, expected: &[(&str, u64, u64)]) {
    let counts = store.record_counts(c).await.unwrap();
    assert_eq!(
        counts,
        b.counted_records(c).await,
        "counters against the records"
    );
    let expected: Vec<RecordCount> = expected
        .iter()
        .map(|&(model, live, deleted)| RecordCount {
            model: model.into(),
            live,
            deleted,
        })
        .collect();
    assert_eq!(counts, expected);
}

/// The counts are kept by every write instead of counted, and match the records after each kind
/// of write, from two processes: adds, unchanged and changed saves, an id twice in a batch,
/// deletions (of unknown and repeated ids too, and over several statements), crawls deleting
/// what they did not see, records saved again after their deletion, an abandoned crawl, and a
/// connection deleted with its records.
pub async fn record_counts_follow_every_write_of_records(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let other = b.open(ring(&[("k1", 7)], "k1")).await;
    let now = Utc::now();
    let people = |ids: &[&str], n: i64| -> Vec<RecordJson<'static>> {
        ids.iter().map(|id| rec(id, n)).collect()
    };
    let first: Vec<String> = (0..10).map(|i| format!("p{i:02}")).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    store
        .save_records(&c, "Person", people(&first, 0), now)
        .await
        .unwrap();
    counts_are(b, &store, &c, &[("Person", 10, 0)]).await;

    let unchanged = other
        .save_records(&c, "Person", people(&first, 0), now)
        .await
        .unwrap();
    assert_eq!(unchanged.unchanged, 10);
    counts_are(b, &store, &c, &[("Person", 10, 0)]).await;

    // Two changed, two new, each new and one changed saved twice in the batch.
    let batch = vec![
        rec("p00", 1),
        rec("p10", 1),
        rec("p11", 1),
        rec("p01", 1),
        rec("p11", 2),
        rec("p01", 2),
    ];
    let saved = store.save_records(&c, "Person", batch, now).await.unwrap();
    assert_eq!((saved.added, saved.updated), (2, 2));
    counts_are(b, &store, &c, &[("Person", 12, 0)]).await;

    let gone: Vec<String> = ["p01", "p02", "p01", "unknown"].map(String::from).into();
    assert_eq!(
        other
            .delete_records(&c, "Person", &gone, now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .delete_records(&c, "Person", &gone, now)
            .await
            .unwrap(),
        0
    );
    // Deleting from a model without records leaves it out of the counts.
    assert_eq!(
        store
            .delete_records(&c, "Nobody", &gone, now)
            .await
            .unwrap(),
        0
    );
    counts_are(b, &store, &c, &[("Person", 10, 2)]).await;

    // A crawl sees five, p02 among them saved again after its deletion, and deletes the other
    // six live ones.
    store.begin_crawl(&c, "Person").await.unwrap();
    let revived = store
        .save_records(&c, "Person", people(&["p00", "p02", "p03"], 0), now)
        .await
        .unwrap();
    assert_eq!((revived.added, revived.updated), (1, 1));
    other
        .save_records(&c, "Person", people(&["p04", "p05"], 0), now)
        .await
        .unwrap();
    counts_are(b, &store, &c, &[("Person", 11, 1)]).await;
    assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(6));
    counts_are(b, &store, &c, &[("Person", 5, 7)]).await;

    // Records the crawl deleted come back, unchanged or not, next to a new one.
    let back = other
        .save_records(
            &c,
            "Person",
            vec![rec("p06", 0), rec("p07", 5), rec("p12", 0)],
            now,
        )
        .await
        .unwrap();
    assert_eq!(back.added, 3);
    counts_are(b, &store, &c, &[("Person", 8, 5)]).await;

    // A crawl abandoned by a new one: only what the new one saw survives its end.
    store.begin_crawl(&c, "Person").await.unwrap();
    store
        .save_records(&c, "Person", people(&["p00"], 0), now)
        .await
        .unwrap();
    other.begin_crawl(&c, "Person").await.unwrap();
    other
        .save_records(&c, "Person", people(&["p00", "p01"], 0), now)
        .await
        .unwrap();
    counts_are(b, &store, &c, &[("Person", 9, 4)]).await;
    assert_eq!(other.end_crawl(&c, "Person", now).await.unwrap(), Some(7));
    counts_are(b, &store, &c, &[("Person", 2, 11)]).await;

    // Enough records that deletions and a crawl's end take several statements (or
    // transactions) each.
    let groups: Vec<RecordJson> = (0..2100).map(|i| rec(&format!("g{i:04}"), 0)).collect();
    store.save_records(&c, "Group", groups, now).await.unwrap();
    let gone: Vec<String> = (0..1050).map(|i| format!("g{i:04}")).collect();
    assert_eq!(
        store.delete_records(&c, "Group", &gone, now).await.unwrap(),
        1050
    );
    store.begin_crawl(&c, "Group").await.unwrap();
    let seen: Vec<RecordJson> = (1050..1060).map(|i| rec(&format!("g{i:04}"), 0)).collect();
    store.save_records(&c, "Group", seen, now).await.unwrap();
    assert_eq!(store.end_crawl(&c, "Group", now).await.unwrap(), Some(1040));
    counts_are(b, &store, &c, &[("Group", 10, 2090), ("Person", 2, 11)]).await;

    // Another connection's records are its own, and go with it.
    let second = connect(&store, "microsoft", "c2", None).await;
    store
        .save_records(&second, "Person", people(&["x", "y"], 0), now)
        .await
        .unwrap();
    other
        .delete_records(&second, "Person", &["y".to_owned()], now)
        .await
        .unwrap();
    counts_are(b, &store, &second, &[("Person", 1, 1)]).await;
    assert!(
        other
            .delete_connection(&ConnectionKey::new("microsoft", "c2"))
            .await
            .unwrap()
    );
    counts_are(b, &store, &second, &[]).await;
    let again = connect(&store, "microsoft", "c2", None).await;
    store
        .save_records(&again, "Person", people(&["x"], 0), now)
        .await
        .unwrap();
    counts_are(b, &store, &again, &[("Person", 1, 0)]).await;
    counts_are(b, &store, &c, &[("Group", 10, 2090), ("Person", 2, 11)]).await;
}

/// Newest first pages backwards through the records cursor's order: records written between
/// pages (new ones, and ones already listed rewritten) are neither listed nor repeated, and
/// every other record is listed once.
pub async fn newest_first_pages_list_each_record_once_while_records_are_written(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let older: Vec<RecordJson> = (0..5).map(|i| rec(&format!("r{i:02}"), 0)).collect();
    store.save_records(&c, "Person", older, now).await.unwrap();
    let newer: Vec<RecordJson> = (5..10).map(|i| rec(&format!("r{i:02}"), 0)).collect();
    store.save_records(&c, "Person", newer, now).await.unwrap();
    let newest = |after: Option<RecordCursor>| RecordQuery {
        newest_first: true,
        scan_limit: None,
        limit: 4,
        after,
        ..query(&c)
    };
    let page = store.records(&newest(None)).await.unwrap();
    let mut seen: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(seen, ["r09", "r08", "r07", "r06"]);
    let mut after = page.next;
    let mut writes = 0;
    while let Some(position) = after {
        // Between pages: a new record, and one already listed rewritten.
        writes += 1;
        store
            .save_records(
                &c,
                "Person",
                vec![rec(&format!("new{writes}"), 0), rec("r09", writes)],
                now,
            )
            .await
            .unwrap();
        let next = store.records(&newest(Some(position))).await.unwrap();
        seen.extend(next.records.iter().map(|r| r.id.clone()));
        after = next.next;
    }
    let expected: Vec<String> = (0..10).rev().map(|i| format!("r{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(writes, 2);
    // Begun again, the listing starts with what was written last.
    let again = store.records(&newest(None)).await.unwrap();
    let ids: Vec<&str> = again.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r09", "new2", "new1", "r08"]);
    // The oldest-first order is untouched by the option.
    let oldest = store.records(&query(&c)).await.unwrap();
    assert_eq!(oldest.records[0].id, "r00");
}

/// A page examines at most its scan limit of records: a filter that matches few of them
/// comes back with fewer records (or none) and a cursor that goes on from the last record
/// examined, so paging on finds every match once, in order, whichever way the listing goes.
pub async fn a_scan_limit_bounds_each_page_and_paging_finds_every_match(b: &Backend) {
    let (store, c) = with_connection(b).await;
    let now = Utc::now();
    let first: Vec<RecordJson> = (0..100).map(|i| rec(&format!("r{i:03}"), 0)).collect();
    store.save_records(&c, "Person", first, now).await.unwrap();
    let gone = ["r010".to_owned(), "r020".to_owned(), "r030".to_owned()];
    store
        .delete_records(&c, "Person", &gone, now)
        .await
        .unwrap();
    let later: Vec<RecordJson> = (100..150).map(|i| rec(&format!("r{i:03}"), 0)).collect();
    store.save_records(&c, "Person", later, now).await.unwrap();

    for newest_first in [true, false] {
        let page = |after: Option<RecordCursor>| RecordQuery {
            newest_first,
            scan_limit: Some(20),
            limit: 2,
            actions: vec![RecordAction::Deleted],
            after,
            ..query(&c)
        };
        let (mut found, mut pages, mut after) = (Vec::new(), 0, None);
        loop {
            let listed = store.records(&page(after)).await.unwrap();
            pages += 1;
            assert!(listed.records.len() <= 2);
            found.extend(listed.records.iter().map(|r| r.id.clone()));
            match listed.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // The three deleted records sit between the older and the later ones.
        let mut expected = gone.to_vec();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(found, expected, "newest first: {newest_first}");
        // 150 records, 20 examined a page: every page but the last examines a full window.
        assert!(
            (8..=9).contains(&pages),
            "{pages} pages, newest first: {newest_first}"
        );
    }
    // Without a filter the window never cuts a page short.
    let unfiltered = store
        .records(&RecordQuery {
            newest_first: true,
            scan_limit: Some(20),
            limit: 5,
            ..query(&c)
        })
        .await
        .unwrap();
    assert_eq!(unfiltered.records.len(), 5);
    assert_eq!(unfiltered.records[0].id, "r149");
}

/// The activity log lists newest first, filtered by kind, outcome, integration, connection
/// and time window, and pages by id.
pub async fn activity_is_filtered_and_paged_newest_first(b: &Backend) {
    let keys = ring(&[("k1", 7)], "k1");
    let (one, two) = (b.open(keys.clone()).await, b.open(keys).await);
    let start = micros(Utc::now()) - Duration::hours(1);
    let kinds = [
        ActivityKind::TokenRefresh,
        ActivityKind::SyncRun,
        ActivityKind::Action,
        ActivityKind::WebhookDelivery,
        ActivityKind::ConnectionCreated,
        ActivityKind::ConnectionDeleted,
    ];
    let mut entries = Vec::new();
    for n in 0..12i64 {
        let entry = NewActivity {
            kind: kinds[n as usize % kinds.len()],
            succeeded: n % 4 != 0,
            integration: (n % 5 != 4).then(|| if n % 2 == 0 { "github" } else { "slack" }.into()),
            connection_id: Some(format!("c{}", n % 3)),
            summary: format!("entry {n}"),
            reference: (n % 2 == 0).then(|| format!("ref-{n}")),
            at: start + Duration::minutes(n),
        };
        // Written by either replica: one log.
        let store = if n % 2 == 0 { &one } else { &two };
        store.record_activity(&entry).await.unwrap();
        entries.push(entry);
    }
    let list = |filter: ActivityFilter| {
        let one = one.clone();
        async move {
            let found = one.activity(&filter).await.unwrap();
            found
                .into_iter()
                .map(|a| {
                    a.summary
                        .trim_start_matches("entry ")
                        .parse::<i64>()
                        .unwrap()
                })
                .collect::<Vec<i64>>()
        }
    };
    let everything = ActivityFilter {
        limit: 100,
        ..ActivityFilter::default()
    };
    assert_eq!(
        list(everything.clone()).await,
        (0..12).rev().collect::<Vec<_>>()
    );
    let newest = one
        .activity(&ActivityFilter {
            limit: 1,
            ..everything.clone()
        })
        .await
        .unwrap();
    let last = &entries[11];
    assert_eq!(
        (
            newest[0].kind,
            newest[0].succeeded,
            newest[0].integration.clone(),
            newest[0].connection_id.clone(),
            newest[0].reference.clone(),
            newest[0].at
        ),
        (
            last.kind,
            last.succeeded,
            last.integration.clone(),
            last.connection_id.clone(),
            last.reference.clone(),
            last.at
        )
    );

    // Keyset paging by id: every entry once, newest first.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = one
            .activity(&ActivityFilter {
                before,
                limit: 5,
                ..everything.clone()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        assert!(page.windows(2).all(|w| w[0].id > w[1].id));
        paged.extend(page.iter().map(|a| a.summary.clone()));
    }
    let summaries: Vec<String> = (0..12).rev().map(|n| format!("entry {n}")).collect();
    assert_eq!(paged, summaries);

    let filter = |f: ActivityFilter| ActivityFilter { limit: 100, ..f };
    assert_eq!(
        list(filter(ActivityFilter {
            kinds: vec![ActivityKind::SyncRun, ActivityKind::ConnectionDeleted],
            ..ActivityFilter::default()
        }))
        .await,
        [11, 7, 5, 1]
    );
    assert_eq!(
        list(filter(ActivityFilter {
            succeeded: Some(false),
            ..ActivityFilter::default()
        }))
        .await,
        [8, 4, 0]
    );
    assert_eq!(
        list(filter(ActivityFilter {
            integration: Some("github".into()),
            ..ActivityFilter::default()
        }))
        .await,
        [10, 8, 6, 2, 0]
    );
    assert_eq!(
        list(filter(ActivityFilter {
            connection_id: Some("c1".into()),
            ..ActivityFilter::default()
        }))
        .await,
        [10, 7, 4, 1]
    );
    // The window includes its start and excludes its end.
    assert_eq!(
        list(filter(ActivityFilter {
            since: Some(start + Duration::minutes(3)),
            until: Some(start + Duration::minutes(6)),
            ..ActivityFilter::default()
        }))
        .await,
        [5, 4, 3]
    );
    // Combined, and paged.
    let combined = ActivityFilter {
        succeeded: Some(true),
        integration: Some("slack".into()),
        since: Some(start + Duration::minutes(2)),
        ..ActivityFilter::default()
    };
    assert_eq!(list(filter(combined.clone())).await, [11, 7, 5, 3]);
    let first = one
        .activity(&ActivityFilter {
            limit: 2,
            ..combined.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        list(ActivityFilter {
            before: Some(first[1].id),
            limit: 2,
            ..combined
        })
        .await,
        [5, 3]
    );
}

/// Purging drops activity older than the kept window, and only that.
pub async fn purging_drops_activity_past_the_kept_window(b: &Backend) {
    let store = b.open(ring(&[("k1", 7)], "k1")).await;
    let now = Utc::now();
    for (summary, age) in [
        ("old", ACTIVITY_KEPT + Duration::minutes(1)),
        ("recent", ACTIVITY_KEPT - Duration::minutes(1)),
    ] {
        let entry = NewActivity {
            kind: ActivityKind::TokenRefresh,
            succeeded: true,
            integration: None,
            connection_id: None,
            summary: summary.into(),
            reference: None,
            at: now - age,
        };
        store.record_activity(&entry).await.unwrap();
    }
    assert_eq!(
        store.purge_expired(now).await.unwrap(),
        0,
        "no session or state"
    );
    let left = store
        .activity(&ActivityFilter {
            limit: 10,
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    let summaries: Vec<&str> = left.iter().map(|a| a.summary.as_str()).collect();
    assert_eq!(summaries, ["recent"]);
}

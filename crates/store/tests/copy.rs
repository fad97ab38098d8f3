//! Moving a store between backends: SQLite to PostgreSQL and back, every kind of row, read
//! back through the store's interface.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use plugboard_store::copy::{self, Progress};
use plugboard_store::crypto::KeyRing;
use plugboard_store::testing::TestDatabase;
use plugboard_store::{
    ActivityFilter, ActivityKind, ConnectSession, ConnectionFilter, ConnectionKey, Flow, Location,
    NewActivity, NewConnection, OAuthState, RecordCount, RecordJson, RecordQuery, RunCounts,
    RunLog, RunStatus, Store, TakenState, Tokens, WebhookDelivery,
};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::json;

fn ring() -> Arc<KeyRing> {
    let keys = BTreeMap::from([("k1".to_owned(), SecretBox::new(Box::new([3u8; 32])))]);
    Arc::new(KeyRing::new(&keys, "k1").unwrap())
}

fn temp_sqlite() -> Location {
    let dir = std::env::temp_dir().join(format!("plugboard-copy-{}", uuid::Uuid::new_v4()));
    Location::Sqlite {
        path: dir.join("store.db"),
    }
}

async fn open(location: &Location) -> Arc<dyn Store> {
    plugboard_store::open(location, ring(), true).await.unwrap()
}

fn rec(id: &str, n: i64) -> RecordJson<'static> {
    RecordJson::encode(plugboard_core::Record::new(id, json!({"id": id, "n": n}))).unwrap()
}

/// A store with something in every table: two connections, a connect session and an OAuth
/// flow, records (sealed and deleted ones, odd ids), a crawl in progress, sync state, runs
/// with logs (the second connection's last one failed), webhook deliveries with their bodies
/// and activity. The first connection's row identity.
async fn fill(store: &Arc<dyn Store>) -> String {
    let now = Utc::now();
    let mut ids = Vec::new();
    for (id, refresh) in [("c1", Some("refresh-1")), ("c2", None)] {
        let saved = store
            .save_connection(
                NewConnection {
                    key: ConnectionKey::new("microsoft", id),
                    provider: "microsoft-people".into(),
                    connection_config: BTreeMap::from([("tenant".into(), "common".into())]),
                    account: Some(json!({"mail": "a@example.com"})),
                    tokens: Tokens {
                        access_token: SecretString::from(format!("access-{id}")),
                        refresh_token: refresh.map(SecretString::from),
                        id_token: None,
                        expires_at: Some(now + Duration::hours(1)),
                        scopes: vec!["People.Read".into()],
                    },
                },
                now,
            )
            .await
            .unwrap();
        ids.push(saved.id);
    }
    let c = ids[0].clone();
    let later = now + Duration::minutes(30);
    store
        .create_connect_session(
            "session-hash",
            &ConnectSession {
                integration: "microsoft".into(),
                connection_id: "c3".into(),
                connection_config: BTreeMap::new(),
                return_url: Some("http://localhost:3000/done".into()),
                expires_at: later,
            },
        )
        .await
        .unwrap();
    store
        .create_oauth_state(
            "state-hash",
            &OAuthState {
                flow: Flow::Connect,
                integration: "microsoft".into(),
                connection_id: "c3".into(),
                connection_config: BTreeMap::new(),
                return_url: None,
                pkce_verifier: Some(SecretString::from("verifier")),
                browser_hash: "browser".into(),
                expires_at: later,
            },
            now,
        )
        .await
        .unwrap();
    let first: Vec<RecordJson> = (0..1200).map(|i| rec(&format!("p{i:04}"), i)).collect();
    store.save_records(&c, "Person", first, now).await.unwrap();
    store
        .save_records(&c, "Person", vec![rec("a\0b", 1), rec("😀", 2)], now)
        .await
        .unwrap();
    store
        .delete_records(&c, "Person", &["p0001".into()], now)
        .await
        .unwrap();
    store
        .save_records(&c, "Group", vec![rec("g", 1)], now)
        .await
        .unwrap();
    // A crawl in progress has seen some of the people, over two batches.
    store.begin_crawl(&c, "Person").await.unwrap();
    let seen: Vec<RecordJson> = (0..600).map(|i| rec(&format!("p{i:04}"), i)).collect();
    store.save_records(&c, "Person", seen, now).await.unwrap();
    store
        .save_records(&c, "Person", vec![rec("😀", 2)], now)
        .await
        .unwrap();
    store
        .set_checkpoint(&c, "people", Some(&json!({"next": "page-7"})))
        .await
        .unwrap();
    store.set_sync_paused(&c, "people", true).await.unwrap();
    store
        .set_sync_frequency(&c, "people", Some(90))
        .await
        .unwrap();
    let lease = now + Duration::seconds(30);
    let run = store
        .start_run(&c, "people", "full", lease, now, None)
        .await
        .unwrap()
        .unwrap();
    let logs = [RunLog {
        at: now,
        level: "info".into(),
        message: "page 1: 600 people".into(),
    }];
    store.append_run_logs(&run, &logs).await.unwrap();
    let counts = RunCounts {
        added: 1202,
        updated: 0,
        deleted: 1,
    };
    store
        .finish_run(&run, RunStatus::Success, counts, None, now)
        .await
        .unwrap();
    store
        .save_webhook_delivery(&WebhookDelivery {
            id: "event-1".into(),
            event_type: "sync.completed".into(),
            created_at: chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap(),
            attempts: 2,
            status: Some(204),
            error: None,
            delivered: true,
            body: r#"{"id":"event-1","type":"sync.completed"}"#.into(),
        })
        .await
        .unwrap();
    let notice = plugboard_store::CredentialNotice {
        integration: "microsoft".into(),
        credential: "integrations.microsoft.credentials[0]".into(),
        expires_on: "2027-05-01".parse().unwrap(),
        days_ahead: 30,
    };
    assert!(store.claim_credential_notice(&notice, now).await.unwrap());
    assert!(
        store
            .set_credential_failing("microsoft", Some(("AADSTS7000222", now)))
            .await
            .unwrap()
    );
    let failed = store
        .start_run(&ids[1], "people", "full", lease, now, None)
        .await
        .unwrap()
        .unwrap();
    store
        .finish_run(&failed, RunStatus::Failed, RunCounts::default(), None, now)
        .await
        .unwrap();
    for (n, kind) in [ActivityKind::ConnectionCreated, ActivityKind::SyncRun]
        .into_iter()
        .enumerate()
    {
        let entry = NewActivity {
            kind,
            succeeded: n == 0,
            integration: Some("microsoft".into()),
            connection_id: Some("c1".into()),
            summary: format!("entry {n}"),
            reference: Some(run.clone()),
            at: chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap(),
        };
        store.record_activity(&entry).await.unwrap();
    }
    c
}

/// Everything the interface shows of a filled store, as text to compare.
async fn view(store: &Arc<dyn Store>, c: &str) -> String {
    let mut out = String::new();
    for connection in store.connections(None).await.unwrap() {
        out += &format!(
            "{:?} {:?} {} {:?} {:?}\n",
            connection.key,
            connection.account,
            connection.tokens.access_token.expose_secret(),
            connection
                .tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            (connection.token_version, connection.created_at),
        );
    }
    for model in ["Person", "Group"] {
        let mut after = None;
        loop {
            let page = store
                .records(&RecordQuery {
                    connection: c.to_owned(),
                    model: model.into(),
                    after,
                    limit: 500,
                    modified_after: None,
                    actions: vec![],
                    ids: vec![],
                    newest_first: false,
                    scan_limit: None,
                })
                .await
                .unwrap();
            for record in &page.records {
                out += &format!("{record:?}\n");
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    out += &format!("{:?}\n", store.record_counts(c).await.unwrap());
    out += &format!("{:?}\n", store.sync_state(c, "people").await.unwrap());
    for run in store.runs(c, "people", 10).await.unwrap() {
        out += &format!("{run:?} {:?}\n", store.run_logs(&run.id).await.unwrap());
    }
    out += &format!("{:?}\n", store.webhook_deliveries(10).await.unwrap());
    out += &format!("{:?}\n", store.webhook_delivery("event-1").await.unwrap());
    out += &format!("{:?}\n", store.credential_failures().await.unwrap());
    let everything = ConnectionFilter {
        limit: 10,
        ..ConnectionFilter::default()
    };
    out += &format!(
        "{:?}\n",
        store.connection_summaries(&everything).await.unwrap()
    );
    let activity = ActivityFilter {
        limit: 10,
        ..ActivityFilter::default()
    };
    out += &format!("{:?}\n", store.activity(&activity).await.unwrap());
    out
}

fn count(model: &str, live: u64, deleted: u64) -> RecordCount {
    RecordCount {
        model: model.into(),
        live,
        deleted,
    }
}

/// Copies, reporting progress; the counts.
async fn copied(from: &Arc<dyn Store>, to: &Arc<dyn Store>) -> copy::Counts {
    let mut reported = Vec::new();
    let counts = copy::copy(from, to, |p: Progress<'_>| {
        reported.push((p.table.to_owned(), p.copied, p.total))
    })
    .await
    .unwrap();
    assert!(
        reported.contains(&("records".to_owned(), 1203, 1203)),
        "{reported:?}"
    );
    assert!(reported.iter().all(|(_, copied, total)| copied <= total));
    counts
}

#[tokio::test]
async fn a_store_moves_to_postgres_and_back_unchanged() {
    let sqlite = temp_sqlite();
    let source = open(&sqlite).await;
    let c = fill(&source).await;
    let before = view(&source, &c).await;

    let database = TestDatabase::create().await;
    let postgres = Location::Postgres {
        url: database.url().to_owned(),
        pool_size: 4,
    };
    let middle = open(&postgres).await;
    let counts = copied(&source, &middle).await;
    assert!(counts.contains(&("records", 1203)), "{counts:?}");
    assert!(counts.contains(&("crawl_seen", 1)), "{counts:?}");
    assert_eq!(view(&middle, &c).await, before);

    let back = temp_sqlite();
    let last = open(&back).await;
    assert_eq!(copied(&middle, &last).await, counts);
    assert_eq!(view(&last, &c).await, before);

    // The crawl in progress carries on in each copy alike: what it had not seen goes (1,202
    // live people, p0001 saved again by the crawl, of whom it saw 601).
    let now = Utc::now();
    for store in [&source, &middle, &last] {
        // The activity log goes on after the copied entries, newest first.
        let entry = NewActivity {
            kind: ActivityKind::TokenRefresh,
            succeeded: true,
            integration: None,
            connection_id: None,
            summary: "after the copy".into(),
            reference: None,
            at: now,
        };
        store.record_activity(&entry).await.unwrap();
        let newest = store
            .activity(&ActivityFilter {
                limit: 1,
                ..ActivityFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(newest[0].summary, "after the copy");
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(601));
        // The copied counters carry on from the records they counted.
        assert_eq!(
            store.record_counts(&c).await.unwrap(),
            [count("Group", 1, 0), count("Person", 601, 601)]
        );
        // The connect session came along, and the OAuth flow with its sealed verifier.
        let session = store
            .take_connect_session("session-hash", now)
            .await
            .unwrap();
        assert_eq!(session.unwrap().connection_id, "c3");
        let TakenState::Taken(state) = store
            .take_oauth_state("state-hash", "browser", now)
            .await
            .unwrap()
        else {
            panic!("the OAuth flow was copied");
        };
        assert_eq!(state.pkce_verifier.unwrap().expose_secret(), "verifier");
    }
    for store in [source, middle, last] {
        store.close().await;
    }
    database.drop_database().await;
    for location in [sqlite, back] {
        if let Location::Sqlite { path } = location {
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }
}

#[tokio::test]
async fn a_target_that_holds_data_is_refused_and_left_alone() {
    let from_location = temp_sqlite();
    let from = open(&from_location).await;
    fill(&from).await;
    let database = TestDatabase::create().await;
    let to = open(&Location::Postgres {
        url: database.url().to_owned(),
        pool_size: 2,
    })
    .await;
    let c = fill(&to).await;
    let before = view(&to, &c).await;
    let error = copy::copy(&from, &to, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("already holds data") && error.contains("row(s) in connections"),
        "{error}"
    );
    assert_eq!(view(&to, &c).await, before);
    to.close().await;
    database.drop_database().await;
    if let Location::Sqlite { path } = from_location {
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}

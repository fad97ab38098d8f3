//! Syncs that go wrong, end to end: pagination that loops, a checkpoint left behind by an API
//! base URL that changed, and the webhooks of a failed run with a receiver that fails first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plugboard_emulator::FaultKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{World, events, webhook_receiver_answering};
use crate::syncs::{
    emulator_ids, fail_the_second_page, finished_run, ids, live, outcome, records, syncing, trigger,
};

/// Webhooks that nobody receives, for tests that do not look at them.
const NO_RECEIVER: &str = "http://127.0.0.1:9/unused";

#[tokio::test(flavor = "multi_thread")]
async fn a_next_link_that_loops_fails_the_run_and_keeps_what_it_saved() {
    let world = World::start_with(250, &syncing(NO_RECEIVER)).await;
    world.connect("microsoft", "l1").await;
    let first = finished_run(&world, "l1", "").await;
    assert_eq!(first["status"], "success", "{first}");

    // At the provider, someone on the first page changes and three people on the later pages
    // go; then the second page links back to itself.
    let user = &world.demo.user_id;
    let people = world.control.people(user).await.unwrap();
    let changed = people[0].id.clone();
    world
        .control
        .update_person(user, &changed, &json!({"jobTitle": "Changed"}))
        .await
        .unwrap();
    for person in &people[150..153] {
        world.control.remove_person(user, &person.id).await.unwrap();
    }
    world
        .fault_people_pages([FaultKind::Delay { ms: 1 }, FaultKind::RepeatNextLink])
        .await;
    trigger(&world, "l1", "full").await;
    let failed = finished_run(&world, "l1", first["started_at"].as_str().unwrap()).await;
    assert!(world.control.faults().await.unwrap().is_empty());

    // The run fails and names the link it was sent back to.
    let looping = format!(
        "{}/v1.0/me/people?%24top=100&%24skip=100",
        world.emulator.url()
    );
    let error = failed["error"].as_str().unwrap_or_default();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(error.contains("pagination loops"), "{error}");
    assert!(error.contains(&looping), "{error}");
    assert!(
        world.host.latest_run("l1").await["logs"]
            .to_string()
            .contains("pagination loops"),
        "the error is in the run's log"
    );
    // What it saved before the loop stays; nothing is deleted.
    assert_eq!(
        outcome(&failed),
        (Some("failed"), Some(0), Some(1), Some(0)),
        "{failed}"
    );
    let stored = records(&world, "l1", "").await;
    assert_eq!(live(&stored).len(), 250, "nothing deleted");
    let person = stored.iter().find(|r| r["id"] == changed.as_str()).unwrap();
    assert_eq!(person["job_title"], "Changed", "{person}");

    // The next run resumes the crawl at the page that looped, which is now served properly,
    // and ends it: exactly the provider's people remain.
    trigger(&world, "l1", "incremental").await;
    let resumed = finished_run(&world, "l1", failed["started_at"].as_str().unwrap()).await;
    assert_eq!(
        (resumed["status"].as_str(), resumed["deleted"].as_u64()),
        (Some("success"), Some(3)),
        "{resumed}"
    );
    assert!(
        world.host.latest_run("l1").await["logs"]
            .to_string()
            .contains("resuming the crawl after 2 pages"),
        "{}",
        world.host.latest_run("l1").await
    );
    let stored = records(&world, "l1", "").await;
    assert_eq!(ids(&live(&stored)), emulator_ids(&world).await);
}

/// A TCP relay on its own loopback port to another address: the same server under a second
/// address. Connections through it are counted.
struct Relay {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_owned();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The config with the `microsoft` integration's API base URL moved from `from` to `to` (its
/// overrides come first in the test config).
fn people_api_moved(config: String, from: &str, to: &str) -> String {
    let line = |url: &str| format!("api_base_url = \"{url}\"");
    assert!(config.contains(&line(from)), "{config}");
    config.replacen(&line(from), &line(to), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_from_an_old_api_base_url_is_dropped_and_the_crawl_starts_over() {
    let mut world = World::start_with(250, &syncing(NO_RECEIVER)).await;
    let emulator = world.emulator.url();
    let relay = Relay::start(&emulator).await;
    world
        .restart_with(|config| people_api_moved(config, &emulator, &relay.url))
        .await;

    // A crawl through the relay stops after its first page; its checkpoint holds the next
    // link, which the emulator wrote with the relay's address.
    fail_the_second_page(&world).await;
    world.connect("microsoft", "b1").await;
    let failed = finished_run(&world, "b1", "").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(relay.connections() > 0, "the crawl went through the relay");
    assert_eq!(live(&records(&world, "b1", "").await).len(), 100);

    // The host comes back with the API at the emulator's own address. The failed sync is due
    // at once; its run must not follow the stale link to the relay.
    let relayed = relay.connections();
    let pages_before = world.graph_requests("/v1.0/me/people").await;
    world
        .restart_with(|config| people_api_moved(config, &relay.url, &emulator))
        .await;
    let rerun = finished_run(&world, "b1", failed["started_at"].as_str().unwrap()).await;
    assert_eq!(
        outcome(&rerun),
        (Some("success"), Some(150), Some(0), Some(0)),
        "{rerun}"
    );
    assert_eq!(
        relay.connections(),
        relayed,
        "nothing went to the old address"
    );
    assert_eq!(
        world.graph_requests("/v1.0/me/people").await - pages_before,
        3,
        "the crawl started over: all three pages were read again"
    );
    let logs = world.host.latest_run("b1").await["logs"].to_string();
    assert!(
        logs.contains(&format!(
            "dropping the checkpoint and crawling afresh: it points at {}/v1.0/me/people",
            relay.url
        )),
        "{logs}"
    );
    assert!(logs.contains("starting a full crawl"), "{logs}");
    let stored = records(&world, "b1", "").await;
    assert_eq!(stored.len(), 250);
    assert_eq!(ids(&live(&stored)), emulator_ids(&world).await);
}

/// The delivery records of `GET /webhooks/deliveries` of one event type.
async fn deliveries(world: &World, kind: &str) -> Vec<Value> {
    let body = world.host.get_json("/webhooks/deliveries").await;
    body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == kind)
        .cloned()
        .collect()
}

/// Polls until `done` holds, failing with `what` after ten seconds.
async fn wait_until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_announced_and_a_failed_delivery_is_retried() {
    // The receiver fails the first `sync.failed` delivery and holds its second answer until
    // the test has looked at the host; every other delivery succeeds at once.
    let failed_seen = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (hook_url, received) = {
        let (failed_seen, release) = (failed_seen.clone(), release.clone());
        webhook_receiver_answering(move |body| {
            let (failed_seen, release) = (failed_seen.clone(), release.clone());
            async move {
                if !body.contains(r#""type":"sync.failed""#) {
                    return StatusCode::NO_CONTENT;
                }
                match failed_seen.fetch_add(1, Ordering::SeqCst) {
                    0 => StatusCode::INTERNAL_SERVER_ERROR,
                    1 => {
                        release.notified().await;
                        StatusCode::OK
                    }
                    _ => StatusCode::OK,
                }
            }
        })
        .await
    };
    let world = World::start_with(250, &syncing(&hook_url)).await;
    fail_the_second_page(&world).await;
    world.connect("microsoft", "w1").await;
    let run = finished_run(&world, "w1", "").await;
    assert_eq!(run["status"], "failed", "{run}");

    // The first delivery failed; the second one is in flight, held by the receiver.
    wait_until("a second sync.failed delivery", || async {
        failed_seen.load(Ordering::SeqCst) == 2
    })
    .await;
    let pending = deliveries(&world, "sync.failed").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (
            pending[0]["attempts"].as_u64(),
            pending[0]["status"].as_u64(),
            pending[0]["error"].as_str(),
            pending[0]["delivered"].as_bool()
        ),
        (
            Some(1),
            Some(500),
            Some("the receiver answered 500 Internal Server Error"),
            Some(false)
        ),
        "{pending:?}"
    );
    release.notify_one();
    wait_until("the retried delivery recorded", || async {
        deliveries(&world, "sync.failed").await[0]["delivered"] == true
    })
    .await;
    let delivered = deliveries(&world, "sync.failed").await;
    assert_eq!(
        (
            delivered[0]["id"].as_str(),
            delivered[0]["attempts"].as_u64(),
            delivered[0]["status"].as_u64(),
            delivered[0]["error"].as_str()
        ),
        (pending[0]["id"].as_str(), Some(2), Some(200), None),
        "{delivered:?}"
    );

    // Both attempts carried the same signed event, the second after a backoff (webhooks.rs
    // waits 500 ms before the second attempt).
    let sent = events(&received, "sync.failed");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0], sent[1]);
    assert_eq!(sent[0]["id"], pending[0]["id"]);
    let arrivals: Vec<Instant> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.body.contains("sync.failed"))
        .map(|d| d.arrived)
        .collect();
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(500),
        "retried after {:?}",
        arrivals[1] - arrivals[0]
    );
    let data = &sent[0]["data"];
    assert_eq!(
        (
            data["connection_id"].as_str(),
            data["sync"].as_str(),
            data["status"].as_str(),
            data["run_id"].is_string(),
            data["added"].as_u64(),
            data["deleted"].as_u64()
        ),
        (
            Some("w1"),
            Some("people"),
            Some("failed"),
            true,
            Some(100),
            Some(0)
        ),
        "{data}"
    );
    assert_eq!(data["error"], run["error"]);
    assert!(data["error"].as_str().unwrap().contains("500"), "{data}");
    assert!(
        !received
            .lock()
            .unwrap()
            .iter()
            .any(|d| d.body.contains(&world.demo.client_secret)),
        "no secret in any event"
    );

    // The connection's own event went through at the first attempt.
    let created = deliveries(&world, "connection.created").await;
    assert_eq!(
        (
            created[0]["attempts"].as_u64(),
            created[0]["delivered"].as_bool()
        ),
        (Some(1), Some(true)),
        "{created:?}"
    );
}

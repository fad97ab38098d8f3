//! `plugboard serve` re-reads its configuration on SIGHUP: a new secret is taken without a
//! restart and without failing a request in flight, new sync settings reach the scheduler, a
//! new webhook target gets the next events; a file with a problem, or one that changes what
//! cannot change while running (the bind address), is refused whole and the server goes on
//! with the configuration it had.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plugboard_emulator::AddSecret;
use reqwest::StatusCode;

use crate::support::{World, events, expect_events, free_port, webhook_receiver, webhooks_section};

/// Connections of the integration whose secret is rotated.
const CONNECTIONS: usize = 3;
/// Clients sending proxied requests one after another while the configuration is reloaded.
const CLIENTS: usize = 8;

/// An integration `app` of the demo app with the secret `secret` in the file, syncs off.
fn app(world: &World, secret: &str) -> String {
    let emulator = world.emulator.url();
    format!(
        r#"
[integrations.app]
provider = "microsoft-people"
client_id = "{client_id}"
client_secret = "{secret}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.app.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.app.syncs.people]
enabled = false
"#,
        client_id = world.demo.client_id,
    )
}

/// A world whose host has the integration `app` with the demo's secret, and `app` connected
/// as `c0`…
async fn world_with_app() -> World {
    let mut world = World::start().await;
    let app = app(&world, &world.demo.client_secret.clone());
    world.restart_with(|config| config + &app).await;
    for i in 0..CONNECTIONS {
        world.connect("app", &format!("c{i}")).await;
    }
    world
}

fn config_path(world: &World) -> std::path::PathBuf {
    world.dir.0.join("plugboard.toml")
}

/// Rewrites the host's configuration file with what `edit` makes of it.
fn rewrite(world: &World, edit: impl FnOnce(String) -> String) {
    let path = config_path(world);
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(config)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_secret_is_taken_on_sighup_without_a_restart_or_a_failed_request() {
    let world = world_with_app().await;
    world.connect("echo", "e0").await;
    let pid = world.host.pid();

    // The app's secret expires at Microsoft, and the access tokens with it: refreshes are
    // refused, the integration misconfigured.
    let client_id = world.demo.client_id.clone();
    world.control.expire_secret(&client_id).await.unwrap();
    world.expire_access_tokens().await;
    for i in 0..CONNECTIONS {
        let (status, body) = world
            .host
            .proxy_get("app", &format!("c{i}"), "/v1.0/me")
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(body["error"]["code"], "integration_misconfigured", "{body}");
    }

    // The operator adds a new secret and writes it into the file.
    let new = world
        .control
        .add_secret(&client_id, &AddSecret::default())
        .await
        .unwrap();
    let old_line = format!("client_secret = \"{}\"", world.demo.client_secret);
    let new_line = format!("client_secret = \"{}\"", new.value);
    rewrite(&world, |config| config.replace(&old_line, &new_line));

    // Requests keep flowing through the proxy while the configuration is swapped.
    let world = Arc::new(world);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (world, stop) = (world.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answered.push(world.host.proxy_get("echo", "e0", "/v1.0/me").await);
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    world.host.sighup();
    world.host.wait_for_log("configuration reloaded").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        for (status, body) in client.await.unwrap() {
            assert_eq!(status, StatusCode::OK, "{body}");
            answered += 1;
        }
    }
    assert!(answered > CLIENTS, "{answered} requests");

    // The same process, with the new secret: every connection refreshes again by itself.
    for i in 0..CONNECTIONS {
        let (status, body) = world
            .host
            .proxy_get("app", &format!("c{i}"), "/v1.0/me")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(world.host.pid(), pid);
    let logs = world.host.logs();
    assert_eq!(logs.matches("plugboard listening").count(), 1, "{logs}");
    assert!(logs.contains("app (changed)"), "{logs}");
    assert!(!logs.contains(&new.value), "a secret is logged");
    assert!(
        !logs.contains(&world.demo.client_secret),
        "a secret is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_is_refused_and_the_server_goes_on_with_the_running_one() {
    let world = world_with_app().await;
    rewrite(&world, |config| {
        config + "\n[integrations.broken]\nprovider = \"no-such-provider\"\n"
    });
    world.host.sighup();
    let logs = world
        .host
        .wait_for_log("configuration reload refused")
        .await;
    // The problems as `check-config` words them: the file, how many, each naming its key.
    let refusal = logs
        .lines()
        .find(|line| line.contains("configuration reload refused"))
        .unwrap();
    assert!(refusal.contains("integrations.broken"), "{logs}");
    assert!(refusal.contains("problem"), "{logs}");
    assert!(!logs.contains("configuration reloaded"), "{logs}");

    // Still serving, with the configuration it had.
    let (status, body) = world.host.proxy_get("app", "c0", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = world.host.call(reqwest::Method::GET, "/integrations").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("\"broken\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_bind_address_is_refused_and_named() {
    let world = world_with_app().await;
    let port = world.host.port();
    let other = free_port();
    rewrite(&world, |config| {
        config.replace(
            &format!("\nbind = \"127.0.0.1:{port}\""),
            &format!("\nbind = \"127.0.0.1:{other}\""),
        )
    });
    let written = std::fs::read_to_string(config_path(&world)).unwrap();
    assert!(written.contains(&format!("127.0.0.1:{other}")), "{written}");
    world.host.sighup();
    let logs = world
        .host
        .wait_for_log("configuration reload refused")
        .await;
    let refusal = logs
        .lines()
        .find(|line| line.contains("configuration reload refused"))
        .unwrap();
    assert!(refusal.contains("server.bind"), "{logs}");
    assert!(!refusal.contains("server.public_url"), "{logs}");
    assert!(!logs.contains("configuration reloaded"), "{logs}");

    // Still listening where it was, with the configuration it had.
    let (status, body) = world.host.proxy_get("app", "c0", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_settings_changed_on_sighup_reach_the_scheduler() {
    let world = world_with_app().await;
    let runs_path = "/syncs/runs?integration=app&connection_id=c0&sync=people&limit=10";
    let runs = world.host.get_json(runs_path).await;
    assert_eq!(runs["runs"], serde_json::json!([]), "{runs}");

    // The sync, off until now, is switched on with a one-second frequency: it runs at once,
    // then again every second.
    rewrite(&world, |config| {
        config.replace(
            "[integrations.app.syncs.people]\nenabled = false",
            "[integrations.app.syncs.people]\nenabled = true\nfrequency = \"1s\"",
        )
    });
    world.host.sighup();
    world.host.wait_for_log("configuration reloaded").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let runs = world.host.get_json(runs_path).await;
        let succeeded = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["status"] == "success")
            .count();
        if succeeded >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_webhook_target_on_sighup_gets_the_next_events() {
    let (old_url, old) = webhook_receiver().await;
    let (new_url, new) = webhook_receiver().await;
    let world = World::start_with(5, &webhooks_section(&old_url)).await;
    world.connect("microsoft", "before").await;
    let before = expect_events(&old, "connection.created", 1).await;
    assert_eq!(before[0]["data"]["connection_id"], "before", "{before:?}");

    rewrite(&world, |config| config.replace(&old_url, &new_url));
    world.host.sighup();
    world.host.wait_for_log("configuration reloaded").await;
    world.connect("microsoft", "after").await;

    let after = expect_events(&new, "connection.created", 1).await;
    assert_eq!(after[0]["data"]["connection_id"], "after", "{after:?}");
    assert_eq!(
        events(&old, "connection.created").len(),
        1,
        "the old target got nothing more"
    );
}

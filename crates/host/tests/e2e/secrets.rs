//! No token or secret at rest in clear, none in the logs; key rotation.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{API_KEY, KEY_1, KEY_2, SYNCS_OFF, World, plugboard_command};

/// Every secret the world has seen so far: tokens (current and rotated), the client secret
/// and the API key.
pub(crate) async fn secrets(world: &World, connections: &[(&str, &str)]) -> Vec<String> {
    let mut secrets = vec![API_KEY.to_owned(), world.demo.client_secret.clone()];
    for (integration, id) in connections {
        secrets.push(world.host.access_token(integration, id).await);
    }
    secrets
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if let Ok(content) = std::fs::read(&file) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Whether `prefix` followed by at least 64 base64url characters occurs.
pub(crate) fn token_shaped(haystack: &[u8], prefix: &str) -> bool {
    let opaque = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    haystack
        .windows(prefix.len() + 64)
        .any(|w| w.starts_with(prefix.as_bytes()) && w[prefix.len()..].iter().all(opaque))
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_secret_in_the_store_or_the_logs() {
    let world = World::start().await;
    world.connect("microsoft", "s1").await;
    let first = secrets(&world, &[("microsoft", "s1")]).await;
    let session = world.host.create_session("microsoft", "s2", None).await;
    let (refreshed, _) = world.host.force_refresh("microsoft", "s1").await;
    assert_eq!(refreshed, StatusCode::OK);
    let mut all = first;
    all.push(session["token"].as_str().unwrap().to_owned());
    all.extend(secrets(&world, &[("microsoft", "s1")]).await);
    // The proxy path logs too.
    let (proxied, _) = world.host.proxy_get("microsoft", "s1", "/v1.0/me").await;
    assert_eq!(proxied, StatusCode::OK);

    let store = file_bytes(&world.host.db_path);
    assert!(contains(&store, "s1"), "the check reads the right file");
    let logs = world.host.logs();
    assert!(
        logs.contains("token refreshed"),
        "the logs were captured at debug level:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|line| line.contains("route=/proxy/{*path}") && line.contains("status=200")),
        "a proxied request is logged by its route, like routed ones:\n{logs}"
    );
    for secret in &all {
        assert!(
            !contains(&store, secret),
            "a secret is in the store in clear"
        );
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
    }
    // Refresh tokens never leave Plugboard, so look for their shape instead: `0.A` and 160
    // opaque characters at the emulator, like Microsoft's; authorization codes are `1.A…`.
    for shape in ["0.A", "1.A"] {
        assert!(
            !token_shaped(&store, shape),
            "a `{shape}…` token is in the store in clear"
        );
        assert!(
            !token_shaped(logs.as_bytes(), shape),
            "a `{shape}…` token is in the logs"
        );
    }
}

/// Runs `plugboard keys rotate` with `config` (the environment names both keys).
pub(crate) fn rotate_keys(config: &str, world_dir: &Path, client_secret: &str) -> (bool, String) {
    let config_path = world_dir.join("rotate.toml");
    std::fs::write(&config_path, config).unwrap();
    let output = plugboard_command(&["keys", "rotate"], &config_path)
        .env(
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
            client_secret,
        )
        .env("CLIENT_SECRET", client_secret)
        .env("KEY_K1", KEY_1)
        .env("KEY_K2", KEY_2)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// The world's config with the keys `keys` (the last one active).
fn config_with_keys(world: &World, keys: &[(&str, &str)]) -> String {
    let ids: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
    world.config_with(&ids, SYNCS_OFF)
}

/// Stops the world's host and starts it again on the same port and store with `keys`. The
/// stopped host's logs.
async fn restart_with_keys(world: &mut World, keys: &[(&str, &str)]) -> String {
    world.restart_on(&config_with_keys(world, keys), keys).await
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_moves_secrets_to_the_new_key_and_the_old_one_can_go() {
    let mut world = World::start().await;
    world.connect("microsoft", "k").await;
    world.host.kill();

    // Both keys, the new one active: rotate.
    let (ok, printed) = rotate_keys(
        &config_with_keys(&world, &[("k1", KEY_1), ("k2", KEY_2)]),
        &world.dir.0,
        &world.demo.client_secret,
    );
    assert!(ok, "{printed}");
    assert!(
        printed.contains("re-encrypted 1 row(s) under key `k2`; 0 already used it"),
        "{printed}"
    );
    // The killed host left its write-ahead log; the command closed the store, which folds
    // the log into the database file and removes it.
    let wal = world.host.db_path.with_file_name("plugboard.db-wal");
    assert!(!wal.exists(), "{} is left behind", wal.display());

    // Only the new key: the connection still works.
    restart_with_keys(&mut world, &[("k2", KEY_2)]).await;
    let (status, _) = world.host.proxy_get("microsoft", "k", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);
    let store = file_bytes(&world.host.db_path);
    assert!(
        !contains(&store, "pb1:k1:"),
        "no ciphertext under the old key remains"
    );
}

/// What `keys rotate --help` allows: rotating while a server runs with the new active key.
/// Proxied requests and forced token refreshes keep running throughout; none fails, no
/// refreshed token is lost to the rotation's rewrite, and the server then starts with the new
/// key alone and keeps refreshing.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_while_serving_loses_no_request_and_no_refresh() {
    const CONNECTIONS: [&str; 3] = ["r1", "r2", "r3"];
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["keys", "rotate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains(
            "The server may keep running during rotation once it runs with the new active key"
        ),
        "the help promises what this test checks: {help}"
    );
    let mut world = World::start().await;
    for id in CONNECTIONS {
        world.connect("microsoft", id).await;
    }
    // Step one of the help: the new key is added and made active, and the server restarted.
    restart_with_keys(&mut world, &[("k1", KEY_1), ("k2", KEY_2)]).await;
    let refreshes_before = world.token_requests("refresh_token").await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, url) = (stop.clone(), world.host.url.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut answers = Vec::new();
            for n in worker.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = CONNECTIONS[n % CONNECTIONS.len()];
                // Every fourth request forces a refresh: a token write racing the rotation.
                let request = if n % 4 == 0 {
                    http.get(format!(
                        "{url}/connections/{id}?integration=microsoft&refresh=true"
                    ))
                } else {
                    http.get(format!("{url}/proxy/v1.0/me"))
                        .header("Integration", "microsoft")
                        .header("Connection-Id", id)
                };
                let response = request.bearer_auth(API_KEY).send().await;
                let answer = match response {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        (status == StatusCode::OK)
                            .then_some(())
                            .ok_or(format!("{status} {body}"))
                    }
                    Err(error) => Err(error.to_string()),
                };
                answers.push((Instant::now(), answer));
            }
            answers
        }));
    }
    // Let the load get going, rotate, and keep the load on a little longer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let config = config_with_keys(&world, &[("k1", KEY_1), ("k2", KEY_2)]);
    let (dir, secret) = (world.dir.0.clone(), world.demo.client_secret.clone());
    let (ok, printed) = tokio::task::spawn_blocking(move || rotate_keys(&config, &dir, &secret))
        .await
        .unwrap();
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for worker in load {
        answers.extend(worker.await.unwrap());
    }

    assert!(ok, "{printed}");
    assert!(printed.contains("under key `k2`"), "{printed}");
    let failures: Vec<&String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    let during = answers
        .iter()
        .filter(|(at, _)| (started..finished).contains(at))
        .count();
    assert!(during > 0, "requests were answered while the rotation ran");
    assert!(
        world.token_requests("refresh_token").await > refreshes_before,
        "refreshes ran"
    );
    let mut last_tokens = Vec::new();
    for id in CONNECTIONS {
        last_tokens.push(world.host.access_token("microsoft", id).await);
    }

    // The old key goes: the server starts with the new one alone and sees the latest tokens.
    let logs = restart_with_keys(&mut world, &[("k2", KEY_2)]).await;
    assert!(
        !logs.contains(" ERROR "),
        "the server logged errors while rotating:\n{logs}"
    );
    for (id, last) in CONNECTIONS.iter().zip(&last_tokens) {
        assert_eq!(
            &world.host.access_token("microsoft", id).await,
            last,
            "{id}: a refresh was lost"
        );
        let (refreshed, _) = world.host.force_refresh("microsoft", id).await;
        assert_eq!(refreshed, StatusCode::OK, "{id}");
        let (proxied, _) = world.host.proxy_get("microsoft", id, "/v1.0/me").await;
        assert_eq!(proxied, StatusCode::OK, "{id}");
    }
    let store = file_bytes(&world.host.db_path);
    assert!(
        !contains(&store, "pb1:k1:"),
        "no ciphertext under the old key remains"
    );
    let logs = world.host.stop();
    assert!(
        !logs.contains(" ERROR "),
        "the server with the new key alone logged errors:\n{logs}"
    );
}

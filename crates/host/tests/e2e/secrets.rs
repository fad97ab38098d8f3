//! No token or secret at rest in clear, none in the logs; key rotation.

use reqwest::{Method, StatusCode};

use crate::support::{API_KEY, Host, KEY_1, KEY_2, World, host_config};

/// Every secret the world has seen so far: tokens (current and rotated), the client secret
/// and the API key.
async fn secrets(world: &World, connections: &[(&str, &str)]) -> Vec<String> {
    let mut secrets = vec![API_KEY.to_owned(), world.demo.client_secret.clone()];
    for (integration, id) in connections {
        let detail = world.host.credentials(integration, id).await;
        secrets.push(
            detail["credentials"]["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
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
fn token_shaped(haystack: &[u8], prefix: &str) -> bool {
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
    let refreshed = world
        .host
        .api(
            Method::GET,
            "/connections/s1?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let mut all = first;
    all.push(session["token"].as_str().unwrap().to_owned());
    all.extend(secrets(&world, &[("microsoft", "s1")]).await);
    // The proxy path logs too.
    assert_eq!(
        world
            .host
            .proxy(Method::GET, "microsoft", "s1", "/v1.0/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let store = file_bytes(&world.host.db_path);
    assert!(contains(&store, "s1"), "the check reads the right file");
    let logs = world.host.logs();
    assert!(
        logs.contains("token refreshed"),
        "the logs were captured at debug level:\n{logs}"
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

#[tokio::test(flavor = "multi_thread")]
async fn rotation_moves_secrets_to_the_new_key_and_the_old_one_can_go() {
    let world = World::start().await;
    world.connect("microsoft", "k").await;
    let World {
        host,
        dir,
        emulator,
        demo,
        echo_url,
        ..
    } = world;
    let port: u16 = host.url.rsplit(':').next().unwrap().parse().unwrap();
    host.stop();

    // Both keys, the new one active: rotate.
    let both = host_config(
        port,
        &dir.0,
        &emulator.url(),
        &demo.client_id,
        &echo_url,
        &["k1", "k2"],
    );
    let config_path = dir.0.join("rotate.toml");
    std::fs::write(&config_path, &both).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["keys", "rotate", "--config"])
        .arg(&config_path)
        .env("PLUGBOARD__SECURITY__SECRET_KEY", API_KEY)
        .env(
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
            &demo.client_secret,
        )
        .env("CLIENT_SECRET", &demo.client_secret)
        .env("KEY_K1", KEY_1)
        .env("KEY_K2", KEY_2)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("re-encrypted 1 row(s) under key `k2`; 0 already used it"),
        "{stdout}"
    );

    // Only the new key: the connection still works.
    let only_new = host_config(
        port,
        &dir.0,
        &emulator.url(),
        &demo.client_id,
        &echo_url,
        &["k2"],
    );
    let host = Host::start(
        &dir.0,
        port,
        &only_new,
        &demo.client_secret,
        &[("k2", KEY_2)],
    )
    .await;
    let response = host
        .proxy(Method::GET, "microsoft", "k", "/v1.0/me")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let store = file_bytes(&host.db_path);
    assert!(
        !contains(&store, "pb1:k1:"),
        "no ciphertext under the old key remains"
    );
}

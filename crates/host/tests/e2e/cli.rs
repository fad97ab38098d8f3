//! The commands besides `serve`: `check-config` and `dev`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::support::{Browser, TempDir, reply};

#[test]
fn check_config_prints_every_problem_and_fails() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nbind = \"nowhere\"\npublic_url = \"http://example.com\"\ncolour = \"blue\"\n[store]\nurl = \"sqlite://x.db\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("PLUGBOARD__SECURITY__SECRET_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&path.display().to_string(), "bad.toml");
    insta::assert_snapshot!(stderr);
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/plugboard.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["check-config", "--config", example])
        .env(
            "PLUGBOARD_SECRET_KEY",
            "an-api-key-long-enough-for-the-check-0123",
        )
        .env("PLUGBOARD_ENCRYPTION_KEY", crate::support::KEY_1)
        .env(
            "MICROSOFT_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        )
        .env("MICROSOFT_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK (2 integration(s))"));
}

/// `plugboard dev` prints a link that connects the demo account in a browser, and an API key
/// that lists it; the people sync runs by itself once the account is connected.
#[tokio::test(flavor = "multi_thread")]
async fn dev_connects_the_demo_account_end_to_end() {
    let dir = TempDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["dev", "--bind", "127.0.0.1:0", "--people", "50", "--dir"])
        .arg(dir.0.join("dev"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (found, mut printed) = tokio::sync::mpsc::unbounded_channel();
    // Reads to the end, so the pipe stays open while the server runs.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned();
            if line.contains("Connect link:") || line.contains("API key:") {
                let _ = found.send(value);
            }
        }
    });
    let link = printed.recv().await.expect("a connect link");
    let key = printed.recv().await.expect("an API key");

    let (response, _) = Browser::new().connect_through(&link).await;
    assert_eq!(response.status(), StatusCode::OK);
    let base = link.split("/oauth/").next().unwrap();
    // A `GET` of the dev server's API with the key it printed: the JSON body.
    let get = |path: &str| {
        let request = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&key);
        async move { reply(request).await.1 }
    };
    let list = get("/connections?integration=microsoft").await;
    assert_eq!(list["connections"][0]["connection_id"], "demo");
    assert_eq!(list["connections"][0]["status"], "ok");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page =
            get("/records?integration=microsoft&connection_id=demo&model=Person&limit=100").await;
        if page["records"].as_array().map(Vec::len) == Some(50) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "records: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

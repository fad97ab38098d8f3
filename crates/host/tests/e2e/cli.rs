//! The commands besides `serve` (`check-config`, `dev`, `--help`), and what the API answers a
//! caller who has not yet read its description: a request missing fields.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Browser, TempDir, World, reply};

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

/// `plugboard <command> --help` answers for every command, with its examples; the texts
/// themselves are pinned by the unit test in src/cli.rs.
#[test]
fn every_command_answers_help() {
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["dev", "--help"],
        &["check-config", "--help"],
        &["providers", "list", "--help"],
        &["store", "copy", "--help"],
        &["sync", "run", "--help"],
        &["records", "export", "--help"],
        &["keys", "rotate", "-h"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_plugboard"))
            .args(command)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}: {output:?}");
        assert!(
            stdout.contains("\nExamples:\n  plugboard "),
            "{command:?}: {stdout}"
        );
    }
}

/// A request missing several required fields, in its query or its JSON body, is answered
/// with one error naming all of them; unknown fields and wrong types are still named as
/// before, beside them.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_missing_fields_names_every_one() {
    let world = World::start().await;
    let host = &world.host;
    let queries = [
        "/records",
        "/records?integration=microsoft",
        "/records?integration=microsoft&connection_id=alice&limit=ten",
        "/syncs/runs?integration=microsoft",
        "/syncs/status",
    ];
    let bodies = [
        ("/syncs/trigger", json!({})),
        ("/syncs/trigger", json!({"integraton": "microsoft"})),
        ("/syncs/trigger", json!({"integration": 7})),
        (
            "/connect/sessions",
            json!({"return_url": "http://localhost:3000/done"}),
        ),
        ("/connections", json!({"integration": "apim"})),
        ("/actions/send", json!({"input": {}})),
    ];
    let mut answers = Vec::new();
    for path in queries {
        let (status, body) = host.call(Method::GET, path).await;
        answers.push(answer(&format!("GET {path}"), status, &body));
    }
    for (path, sent) in bodies {
        let (status, body) = host.post(path, &sent).await;
        answers.push(answer(&format!("POST {path} {sent}"), status, &body));
    }
    insta::assert_snapshot!(answers.join("\n"));

    // Once every field is there, the request goes through.
    let (status, body) = host
        .call(
            Method::GET,
            "/records?integration=microsoft&connection_id=nobody&model=Person",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "connection_not_found");
}

/// One request and its answer, for a snapshot: every answer is in the API's error shape.
fn answer(request: &str, status: StatusCode, body: &Value) -> String {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{request}: {body}"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    format!("{request}\n  {} {code}: {message}", status.as_u16())
}

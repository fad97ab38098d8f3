//! `docs/adding-a-provider.md`, walked as a newcomer would, in a copy of the workspace: every
//! command of its ```sh blocks runs as written (the `plugboard` binary standing in for
//! `cargo run -p plugboard --`), the blanks are filled with the guide's ```toml blocks, the new
//! providers' own tests pass (two pages, the end of the crawl, a resumed run), they are built as
//! plugins and loaded by `plugboard serve` against a fake of their API that this test starts,
//! connected (an API key, and OAuth2 through the emulator standing in for Acme CRM's
//! authorization server), synced, and their records read back; a change in the fake shows as
//! updated and deleted records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plugboard_emulator::{DemoOptions, Emulator, EmulatorOptions};
use serde_json::{Value, json};

use crate::support::{API_KEY, Browser, KEY_1, free_port};

const GUIDE: &str = "docs/adding-a-provider.md";
/// The API key the guide's connection is created with, which the fake accepts.
const ACME_KEY: &str = "ak_test_ada";

fn real_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guide's code blocks and commands.
struct Guide {
    text: String,
}

impl Guide {
    fn load() -> Guide {
        Guide {
            text: std::fs::read_to_string(real_workspace().join(GUIDE)).unwrap(),
        }
    }

    /// The contents of every fenced block of `language`, in order.
    fn blocks(&self, language: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in self.text.lines() {
            match (&mut current, line.trim_end()) {
                (None, fence) if fence == format!("```{language}") => current = Some(String::new()),
                (Some(_), "```") => blocks.push(current.take().unwrap()),
                (Some(block), line) => {
                    block.push_str(line);
                    block.push('\n');
                }
                (None, _) => {}
            }
        }
        blocks
    }

    /// The block of `language` that contains `marker`.
    fn block_with(&self, language: &str, marker: &str) -> String {
        let found: Vec<String> = self
            .blocks(language)
            .into_iter()
            .filter(|b| b.contains(marker))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{GUIDE}: one ```{language} block with `{marker}`"
        );
        found.into_iter().next().unwrap()
    }

    /// Every command of the ```sh blocks.
    fn commands(&self) -> Vec<String> {
        self.blocks("sh")
            .iter()
            .flat_map(|b| {
                b.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The one command starting with `prefix`.
    fn command(&self, prefix: &str) -> String {
        let found: Vec<String> = self
            .commands()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{GUIDE}: one command starting with `{prefix}`: {found:?}"
        );
        found.into_iter().next().unwrap()
    }
}

/// The copy of the workspace the guide is walked in, and the commands run there.
struct Copy {
    root: PathBuf,
    ran: Vec<String>,
}

impl Copy {
    /// A fresh copy of the sources; its `target/` survives from the last run, so compiled
    /// dependencies are reused and cargo never waits on the outer test run's lock.
    fn new() -> Copy {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| real_workspace().join("target"), PathBuf::from);
        let root = target.join("tmp/guide-walk");
        std::fs::create_dir_all(&root).unwrap();
        for entry in std::fs::read_dir(&root).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "target" {
                let path = entry.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        copy_tree(&real_workspace(), &root);
        Copy {
            root,
            ran: Vec::new(),
        }
    }

    /// Runs a command line of the guide with `sh` at the copy's root, offline, with the
    /// environment a reader's shell has plus `env`.
    fn sh(&mut self, command: &str, env: &[(&str, &str)]) -> Output {
        self.ran.push(command.to_owned());
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .current_dir(&self.root)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("INSTA_UPDATE")
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TERM_COLOR", "never")
            .env("INSTA_UPDATE", "no");
        for (name, value) in env {
            sh.env(name, value);
        }
        sh.output().unwrap()
    }

    /// [`Copy::sh`], which must succeed: its stdout.
    fn ok(&mut self, command: &str, env: &[(&str, &str)]) -> String {
        let output = self.sh(command, env);
        assert!(
            output.status.success(),
            "`{command}` failed:\n{}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.root.join(path), text).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" || name.to_string_lossy().starts_with(".plugboard") {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
            // The original's time, so cargo sees unchanged crates as fresh next run.
            let modified = entry.metadata().unwrap().modified().unwrap();
            let file = std::fs::File::options()
                .write(true)
                .open(to.join(&name))
                .unwrap();
            file.set_modified(modified).unwrap();
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The table a line of a TOML file opens (`[api.pagination.default]`, `[[auth.scopes]]#1` for
/// the second of an array of tables), if it opens one.
fn table_of(line: &str, seen: &mut BTreeMap<String, usize>) -> Option<String> {
    let line = line.trim();
    if !line.starts_with('[') {
        return None;
    }
    let count = seen.entry(line.to_owned()).or_default();
    let table = format!("{line}#{count}");
    *count += 1;
    Some(table)
}

/// Fills a scaffolded spec the way the guide says: each `key = value` of `values` replaces the
/// line of that key in the same table (the n-th of an array of tables for the n-th in
/// `values`). Every key must be found: a guide naming a key the scaffold does not write fails.
fn fill(spec: &str, values: &str) -> String {
    let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
    let (mut table, mut seen) = (String::new(), BTreeMap::new());
    for line in values.lines() {
        if let Some(t) = table_of(line, &mut seen) {
            table = t;
        } else if let Some((key, _)) = line.split_once(" = ") {
            wanted.insert((table.clone(), key.trim().to_owned()), line.to_owned());
        }
    }
    let (mut table, mut seen) = (String::new(), BTreeMap::new());
    let mut out = String::new();
    for line in spec.lines() {
        if let Some(t) = table_of(line, &mut seen) {
            table = t;
        }
        let key = line.split_once(" = ").map(|(k, _)| k.trim().to_owned());
        match key.and_then(|k| wanted.remove(&(table.clone(), k))) {
            Some(filled) => out.push_str(&filled),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(
        wanted.is_empty(),
        "the guide fills keys the scaffold did not write: {wanted:?}"
    );
    out
}

/// The fake Acme API: `/v1/me` and `/v1/contacts` as the guide describes them, for an API key
/// in `X-Api-Key` (Acme Contacts) or a bearer token (Acme CRM).
#[derive(Clone, Default)]
struct Fake {
    contacts: Arc<Mutex<BTreeMap<String, Value>>>,
}

const PAGE: usize = 2;

impl Fake {
    async fn start(self) -> String {
        async fn me(headers: HeaderMap) -> Response {
            if !authorized(&headers) {
                return (
                    AxumStatus::UNAUTHORIZED,
                    axum::Json(json!({"error": "bad key"})),
                )
                    .into_response();
            }
            axum::Json(json!({"id": "acct-1", "name": "Ada", "email": "ada@acme.example"}))
                .into_response()
        }
        async fn contacts(
            State(fake): State<Fake>,
            headers: HeaderMap,
            Query(query): Query<BTreeMap<String, String>>,
        ) -> Response {
            if !authorized(&headers) {
                return (
                    AxumStatus::UNAUTHORIZED,
                    axum::Json(json!({"error": "bad key"})),
                )
                    .into_response();
            }
            let all: Vec<Value> = fake.contacts.lock().unwrap().values().cloned().collect();
            let start: usize = query.get("after").map_or(0, |c| c.parse().unwrap());
            let end = (start + PAGE).min(all.len());
            let mut body = json!({"data": all[start..end], "meta": {}});
            if end < all.len() {
                body["meta"]["next_cursor"] = json!(end.to_string());
            }
            axum::Json(body).into_response()
        }
        fn authorized(headers: &HeaderMap) -> bool {
            let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.len() > "Bearer ".len() && v.starts_with("Bearer "));
            key == Some(ACME_KEY) || bearer
        }
        let app = axum::Router::new()
            .route("/v1/me", get(me))
            .route("/v1/contacts", get(contacts))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    }

    fn set(&self, n: u32, name: &str) {
        let id = format!("c-{n}");
        self.contacts.lock().unwrap().insert(
            id.clone(),
            json!({"id": id, "name": name, "email": format!("{id}@acme.example")}),
        );
    }
}

/// `plugboard serve` at the copy's root, as the guide starts it; killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary for the guide's `cargo run -p plugboard --`: built from the same sources.
fn plugboard(command: &str) -> String {
    command.replace("cargo run -p plugboard --", env!("CARGO_BIN_EXE_plugboard"))
}

/// Runs a `curl` line of the guide: its JSON answer.
fn curl(copy: &mut Copy, command: &str, env: &[(&str, &str)]) -> Value {
    let out = copy.ok(command, env);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{command}` answered {out:?}: {e}"))
}

/// Waits until the last run of the connection's `contacts` sync is a finished one that started
/// after `previous` (the start of the last run seen before), checks it succeeded, and reads the
/// records: the run's start and the records.
async fn synced(
    copy: &mut Copy,
    guide: &Guide,
    env: &[(&str, &str)],
    integration: &str,
    previous: Option<&Value>,
) -> (Value, Vec<Value>) {
    let for_integration = |command: String| {
        command.replace("integration=acme", &format!("integration={integration}"))
    };
    let status = for_integration(guide.command("curl -s \"$PLUGBOARD_URL/syncs/status"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = loop {
        let answer = curl(copy, &status, env);
        let last = &answer["syncs"][0]["last_run"];
        if last["status"].as_str().is_some_and(|s| s != "running")
            && Some(&last["started_at"]) != previous
        {
            assert_eq!(last["status"], "success", "{answer}");
            break last["started_at"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the sync did not finish: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let records = for_integration(guide.command("curl -s \"$PLUGBOARD_URL/records"));
    let records = curl(copy, &records, env)["records"]
        .as_array()
        .unwrap()
        .clone();
    (started, records)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guide_walks_from_nothing_to_synced_records() {
    let guide = Guide::load();
    let mut copy = Copy::new();

    // 1–2. The scaffolds, as written.
    for prefix in [
        "cargo xtask new-provider acme-mail",
        "cargo xtask new-provider acme-keys",
        "cargo xtask new-provider acme-contacts",
        "cargo xtask new-provider acme-crm",
    ] {
        copy.ok(&guide.command(prefix), &[]);
    }
    let keys = copy.read("providers/specs/acme-keys.toml");
    assert!(keys.contains("header = \"X-Api-Key\""), "{keys}");
    assert!(
        copy.read("providers/specs/acme-mail.toml")
            .contains("display_name = \"Acme Mail\"")
    );
    let builtin = copy.read("crates/host/src/builtin_providers.rs");
    assert!(
        builtin.contains("plugboard_acme_contacts::AcmeContacts::new()?"),
        "{builtin}"
    );
    // A second run refuses and changes nothing.
    let before = copy.read("providers/acme-contacts/src/lib.rs");
    let again = copy.sh(
        &guide.command("cargo xtask new-provider acme-contacts"),
        &[],
    );
    assert!(
        !again.status.success() && text(&again).contains("exists already"),
        "{}",
        text(&again)
    );
    assert_eq!(copy.read("providers/acme-contacts/src/lib.rs"), before);

    // The new crate's tests pass as generated: two pages, a resumed run, the end of the crawl.
    let test = guide.command("cargo test -p plugboard-acme-contacts");
    let out = copy.ok(&test, &[]);
    for passed in [
        "every_sync_and_action_conforms",
        "the_sync_reads_every_page_resumes_and_deletes",
        "an_entry_becomes_a_record_with_its_id",
    ] {
        assert!(out.contains(&format!("test {passed} ... ok")), "{out}");
    }

    // 3. Every blank is listed, by provider and key; the guide's values fill them.
    let check = guide.command("cargo xtask check-providers");
    let listed = copy.sh(&check, &[]);
    assert!(!listed.status.success(), "blanks must fail the check");
    let listed = text(&listed);
    for blank in [
        "provider `acme-contacts` (providers/acme-contacts/provider.toml): account.path: `/TODO(provider-author)` is a blank",
        "provider `acme-contacts` (providers/acme-contacts/provider.toml): api.pagination.default.cursor_param:",
        "provider `acme-crm` (providers/acme-crm/provider.toml): auth.scopes[1].description:",
        "provider `acme-mail` (providers/specs/acme-mail.toml): auth.authorization_url: `https://todo.invalid/oauth/authorize` is a blank",
        "provider `acme-keys` (providers/specs/acme-keys.toml): account.id:",
    ] {
        assert!(listed.contains(blank), "{blank}\n{listed}");
    }
    for (id, marker) in [
        ("acme-contacts", "display_name = \"Acme Contacts\""),
        ("acme-crm", "description = \"Read the user's contacts.\""),
    ] {
        let path = format!("providers/{id}/provider.toml");
        let filled = fill(&copy.read(&path), &guide.block_with("toml", marker));
        copy.write(&path, &filled);
    }
    // Section 1's spec-only providers are another path through the guide; this walk goes on
    // with the two crates.
    std::fs::remove_file(copy.root.join("providers/specs/acme-mail.toml")).unwrap();
    std::fs::remove_file(copy.root.join("providers/specs/acme-keys.toml")).unwrap();
    copy.ok(&check, &[]);

    // 4. A real entry changes the snapshot: the test fails until it is accepted.
    copy.write(
        "providers/acme-contacts/tests/fixtures/contact.json",
        &guide.blocks("json")[0],
    );
    let changed = copy.sh(&test, &[]);
    assert!(
        !changed.status.success(),
        "a changed record must fail its snapshot"
    );
    copy.ok(
        &guide.command("INSTA_UPDATE=always cargo test -p plugboard-acme-contacts"),
        &[],
    );
    let snapshot = copy.read("providers/acme-contacts/tests/snapshots/mapping__an_entry_becomes_a_record_with_its_id.snap");
    assert!(snapshot.contains("Grace Hopper"), "{snapshot}");
    copy.ok(&test, &[]);
    copy.ok(&test.replace("acme-contacts", "acme-crm"), &[]);
    let stray: Vec<String> = ["providers/acme-contacts", "providers/acme-crm"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(copy.root.join(dir).join("tests/snapshots")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".snap.new"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // 8–9. Plugins, and the generated files up to date.
    copy.ok(&guide.command("cargo xtask plugins"), &[]);
    copy.ok(&guide.command("cargo xtask codegen --check"), &[]);

    // 7. The guide's configuration, against the fake on its port and an emulator standing in
    // for Acme CRM's authorization server.
    let fake = Fake::default();
    for (n, name) in [
        (1, "Ada"),
        (2, "Grace"),
        (3, "Alan"),
        (4, "Edsger"),
        (5, "Barbara"),
    ] {
        fake.set(n, name);
    }
    let fake_address = fake.clone().start().await;
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let port = free_port();
    let demo = emulator
        .control()
        .setup_demo(DemoOptions {
            redirect_uris: vec![format!("http://127.0.0.1:{port}/oauth/callback")],
            people: 1,
            seed: 7,
        })
        .await
        .unwrap();
    let emulator_url = emulator.url();
    let tenant = &demo.tenant_id;
    let config = guide
        .block_with("toml", "[integrations.acme.overrides]")
        .replace("127.0.0.1:4020", &fake_address)
        .replace("127.0.0.1:3003", &format!("127.0.0.1:{port}"))
        .replace(
            "[integrations.crm.overrides]\n",
            &format!(
                "[integrations.crm.overrides]\n\
                 authorization_url = \"{emulator_url}/{tenant}/oauth2/v2.0/authorize\"\n\
                 token_url = \"{emulator_url}/{tenant}/oauth2/v2.0/token\"\n"
            ),
        );
    copy.write("acme.toml", &config);
    let url = format!("http://127.0.0.1:{port}");
    let env = [
        ("PLUGBOARD_SECRET_KEY", API_KEY),
        ("PLUGBOARD_ENCRYPTION_KEY", KEY_1),
        ("ACME_CRM_CLIENT_ID", demo.client_id.as_str()),
        ("ACME_CRM_CLIENT_SECRET", demo.client_secret.as_str()),
        ("PLUGBOARD_URL", url.as_str()),
        ("PLUGBOARD_KEY", API_KEY),
    ];
    copy.ok(
        &plugboard(&guide.command("cargo run -p plugboard -- check-config")),
        &env,
    );
    let serve = plugboard(&guide.command("cargo run -p plugboard -- serve"));
    copy.ran.push(serve.clone());
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(format!("exec {serve}"))
        .current_dir(&copy.root)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        child.env(name, value);
    }
    let _serve = Serve(child.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "plugboard serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An API-key connection: synced at once, then on demand; records read back.
    let created = curl(
        &mut copy,
        &guide.command("curl -s -X POST \"$PLUGBOARD_URL/connections\""),
        &env,
    );
    assert_eq!(created["connection_id"], "ada", "{created}");
    let (first, records) = synced(&mut copy, &guide, &env, "acme", None).await;
    assert_eq!(records.len(), 5, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r["_metadata"]["last_action"] == "ADDED"),
        "{records:?}"
    );

    // The fake changes: one contact renamed, one gone; the next run shows both.
    fake.set(2, "Grace Hopper");
    fake.contacts.lock().unwrap().remove("c-4");
    let trigger = guide.command("curl -s -X POST \"$PLUGBOARD_URL/syncs/trigger\"");
    assert_eq!(curl(&mut copy, &trigger, &env), json!({"triggered": 1}));
    let (_, records) = synced(&mut copy, &guide, &env, "acme", Some(&first)).await;
    let action = |id: &str| {
        records
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["_metadata"]["last_action"].clone())
    };
    assert_eq!(action("c-2"), Some(json!("UPDATED")), "{records:?}");
    assert_eq!(action("c-4"), Some(json!("DELETED")), "{records:?}");
    assert_eq!(action("c-1"), Some(json!("ADDED")), "{records:?}");

    // An OAuth2 connection through a connect session, synced the same way.
    let session = curl(
        &mut copy,
        &guide.command("curl -s -X POST \"$PLUGBOARD_URL/connect/sessions\""),
        &env,
    );
    let link = session["connect_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{session}"));
    let (response, _) = Browser::new().connect_through(link).await;
    let page = response.text().await.unwrap();
    assert!(page.contains("Connected"), "{page}");
    let (_, records) = synced(&mut copy, &guide, &env, "crm", None).await;
    assert_eq!(records.len(), 4, "{records:?}");

    // Every command of the guide ran, but `cargo xtask ci` (the whole of CI, which would run
    // this test again: xtask/tests/commands.rs runs it on a fixture's `.ci/run`).
    let ran: Vec<String> = copy
        .ran
        .iter()
        .map(|c| c.replace(env!("CARGO_BIN_EXE_plugboard"), "cargo run -p plugboard --"))
        .collect();
    for command in guide.commands() {
        assert!(
            command == "cargo xtask ci"
                || ran.iter().any(|r| r.starts_with(&command) || *r == command),
            "{GUIDE}: `{command}` is not run by this walk"
        );
    }
}

//! Dynamic provider plugins through the `plugboard` binary: the Microsoft People provider built
//! in and loaded from its plugin behaves the same (connect, proxy, a full people sync, and a
//! store that switches from one to the other), `providers list` tells them apart, plugins
//! that must not run are refused with a clean exit naming the file and the reason, and a plugin
//! that panics costs one run or request while the host goes on serving.

use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TempDir, World, plugboard_command, providers_config};
use crate::syncs::{finished_run, records, trigger};

#[path = "../../../plugin/tests/common/mod.rs"]
mod plugin_build;

use plugin_build::{plugin, plugins_dir};

const BUILTIN: &str = "[[providers]]\nbuiltin = \"microsoft-people\"";

/// More than one page of the provider's (100), so the sync checkpoints and pages.
const PEOPLE: usize = 250;

/// The microsoft integration's people sync on (hourly: it runs once when the account is
/// connected, then only when triggered), the others off.
const PEOPLE_SYNC: &str = "
[integrations.microsoft.syncs.people]
enabled = true
frequency = \"1h\"

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false
";

/// A `[[providers]]` entry for the library at `path`, written as TOML.
fn plugin_entry(path: &Path) -> String {
    format!("[[providers]]\npath = {:?}", path.display().to_string())
}

/// Restarts the world's host on the same store and port, loading Microsoft People from the
/// plugin `name` (the provider's own, or a test plugin with its id) instead of the built-in
/// provider.
pub(crate) async fn load_from_plugin(world: &mut World, name: &str) {
    world
        .restart_with(|config| {
            assert!(config.contains(BUILTIN), "{config}");
            config.replace(BUILTIN, &plugin_entry(&plugin(name)))
        })
        .await;
}

/// Connects through the OAuth browser flow and proxies `GET /v1.0/me/people?$top=50`. The
/// answer names the emulator and the demo user, which differ between worlds: they are replaced
/// by placeholders.
async fn connect_and_list_people(world: &World) -> Value {
    world.connect("microsoft", "p1").await;
    let connection = world.host.credentials("microsoft", "p1").await;
    assert_eq!(connection["status"], "ok", "{connection}");
    let (status, people) = world
        .host
        .proxy_get("microsoft", "p1", "/v1.0/me/people?$top=50")
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = people
        .to_string()
        .replace(&world.emulator.url(), "[emulator]")
        .replace(&world.demo.user_id, "[user]");
    serde_json::from_str(&text).unwrap()
}

/// Waits for the people sync that connecting started and returns its counts and every stored
/// record. What differs between worlds is left out: run times and ids, and the records'
/// timestamps and cursors (the last action stays).
async fn synced(world: &World) -> (Value, Vec<Value>) {
    let run = finished_run(world, "p1", "").await;
    let counts = json!({
        "status": run["status"],
        "added": run["added"],
        "updated": run["updated"],
        "deleted": run["deleted"],
    });
    let mut stored: Vec<Value> = records(world, "p1", "")
        .await
        .into_iter()
        .map(|mut record| {
            let metadata = record["_metadata"].as_object_mut().unwrap();
            for varying in ["first_seen_at", "last_modified_at", "cursor"] {
                metadata.remove(varying).unwrap();
            }
            record
        })
        .collect();
    stored.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (counts, stored)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_people_provider_connects_proxies_and_syncs_the_same_built_in_and_as_a_plugin() {
    let mut built_in = World::start_with(PEOPLE, PEOPLE_SYNC).await;
    let people_built_in = connect_and_list_people(&built_in).await;
    let (run_built_in, records_built_in) = synced(&built_in).await;

    let mut plugin = World::start_with(PEOPLE, PEOPLE_SYNC).await;
    load_from_plugin(&mut plugin, "microsoft-people").await;
    let people_plugin = connect_and_list_people(&plugin).await;
    let (run_plugin, records_plugin) = synced(&plugin).await;

    assert_eq!(people_built_in["value"].as_array().unwrap().len(), 50);
    assert_eq!(
        people_built_in["@odata.nextLink"],
        "[emulator]/v1.0/me/people?%24top=50&%24skip=50"
    );
    // Both emulators are seeded alike, so the same provider spec yields the same people.
    assert_eq!(people_plugin, people_built_in);

    // The same sync, through the plugin boundary or not, stores the same records.
    assert_eq!(
        run_built_in,
        json!({"status": "success", "added": PEOPLE, "updated": 0, "deleted": 0})
    );
    assert_eq!(run_plugin, run_built_in);
    assert_eq!(records_built_in.len(), PEOPLE);
    assert!(
        records_built_in
            .iter()
            .all(|r| r["_metadata"]["last_action"] == "ADDED" && r["display_name"].is_string())
    );
    assert_eq!(records_plugin, records_built_in);

    // A store written by the built-in provider, synced again through the plugin: every
    // record hashes as it did, so nothing is reported changed or rewritten.
    let before = records(&built_in, "p1", "").await;
    let first = finished_run(&built_in, "p1", "").await;
    load_from_plugin(&mut built_in, "microsoft-people").await;
    trigger(&built_in, "p1", "full").await;
    let since = first["started_at"].as_str().unwrap();
    let switched = finished_run(&built_in, "p1", since).await;
    assert_eq!(
        (
            &switched["status"],
            &switched["added"],
            &switched["updated"],
            &switched["deleted"]
        ),
        (&json!("success"), &json!(0), &json!(0), &json!(0)),
        "{switched}"
    );
    assert_eq!(records(&built_in, "p1", "").await, before);
}

/// A broken build of Microsoft People, whose syncs and actions panic after a request through
/// the host, loaded in place of the provider on a store the provider filled: each panic fails
/// its run or request with an error that says so, writes and deletes no record, and the host
/// goes on serving the connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_panics_fails_its_run_or_request_and_the_host_keeps_serving() {
    let mut world = World::start_with(30, PEOPLE_SYNC).await;
    world.connect("microsoft", "p1").await;
    let first = finished_run(&world, "p1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let stored = records(&world, "p1", "").await;
    assert_eq!(stored.len(), 30);

    load_from_plugin(&mut world, "panicking-people").await;
    let me_requests =
        || async { world.control.counters().await.unwrap().graph_requests["/v1.0/me"] };
    let me_before = me_requests().await;
    let mut since = first["started_at"].as_str().unwrap().to_owned();
    for attempt in 1..=2 {
        // A full crawl: begun by the plugin and never ended, so nothing may be deleted.
        trigger(&world, "p1", "full").await;
        let run = finished_run(&world, "p1", &since).await;
        assert_eq!(
            (
                &run["status"],
                &run["error"],
                &run["added"],
                &run["updated"],
                &run["deleted"]
            ),
            (
                &json!("failed"),
                &json!(
                    "provider `microsoft-people` panicked in sync `people`: the test plugin \
                     panics in sync `people`, on purpose"
                ),
                &json!(0),
                &json!(0),
                &json!(0)
            ),
            "run {attempt}: {run}"
        );
        // The panic came after the plugin's request had gone through the host.
        assert_eq!(me_requests().await, me_before + attempt, "run {attempt}");
        assert_eq!(records(&world, "p1", "").await, stored, "run {attempt}");
        assert_serving(&world).await;
        since = run["started_at"].as_str().unwrap().to_owned();
    }

    let (status, body) = world
        .host
        .post(
            "/actions/search-people",
            &json!({"integration": "microsoft", "connection_id": "p1", "input": {"query": "a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": {
            "code": "action_failed",
            "message": "provider `microsoft-people` panicked in action `search-people`: the test \
                        plugin panics in action `search-people`, on purpose"
        }})
    );
    assert_eq!(me_requests().await, me_before + 3);
    assert_serving(&world).await;
}

/// The host answers its health check and proxies for connection `p1` as before.
async fn assert_serving(world: &World) {
    assert_eq!(
        world.host.get_json("/health").await,
        json!({"status": "ok"})
    );
    let (status, page) = world
        .host
        .proxy_get("microsoft", "p1", "/v1.0/me/people?$top=5")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["value"].as_array().map(Vec::len), Some(5), "{page}");
}

/// Runs `plugboard <args> --config <config>` with the secret key the config needs.
fn plugboard(args: &[&str], config: &Path) -> Output {
    plugboard_command(args, config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Output with what differs between machines and releases replaced by placeholders.
fn redact(text: &[u8], dir: &Path) -> String {
    let plugins = plugins_dir();
    String::from_utf8_lossy(text)
        .replace(&dir.display().to_string(), "[config dir]")
        .replace(&plugins.display().to_string(), "[plugins]")
        .replace(plugboard_plugin::COMPILER, "[this compiler]")
        .replace(
            &format!("plugboard-core {}", plugboard_plugin::CORE_VERSION),
            "plugboard-core [this version]",
        )
        .replace(
            &format!("version:  {}", plugboard_plugin::CORE_VERSION),
            "version:  [this version]",
        )
}

/// A built-in provider and a plugin given by a path relative to the config file, listed from
/// another working directory.
#[test]
fn providers_list_shows_each_providers_source_abi_syncs_and_actions() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.0.join("plugins")).unwrap();
    let probe = plugin("probe");
    std::fs::copy(
        &probe,
        dir.0.join("plugins").join(probe.file_name().unwrap()),
    )
    .unwrap();
    let relative = Path::new("plugins").join(probe.file_name().unwrap());
    let entries = [BUILTIN.to_owned(), plugin_entry(&relative)];
    let config = providers_config(&dir.0, &entries.join("\n\n"));

    let output = plugboard(&["providers", "list"], &config);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    insta::assert_snapshot!(redact(&output.stdout, &dir.0));
}

/// Every reason to refuse a plugin at once, none of which lets the plugin run: the plugins of
/// another ABI, core or compiler abort the process if called.
#[test]
fn check_config_refuses_plugins_that_must_not_run() {
    let dir = TempDir::new();
    let entries = [
        BUILTIN.to_owned(),
        plugin_entry(&plugin("microsoft-people")),
        plugin_entry(Path::new("no-such-plugin.so")),
        plugin_entry(&plugin("not-a-plugin")),
        plugin_entry(&plugin("wrong-abi")),
        plugin_entry(&plugin("wrong-core")),
        plugin_entry(&plugin("wrong-compiler")),
    ];
    let config = providers_config(&dir.0, &entries.join("\n\n"));
    let output = plugboard(&["check-config"], &config);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    insta::assert_snapshot!(redact(&output.stderr, &dir.0));
}

/// `serve` and `providers list` refuse the same way: a message and a failing exit, no panic.
#[test]
fn serve_and_providers_list_refuse_a_duplicate_id_cleanly() {
    let dir = TempDir::new();
    let entries = [
        BUILTIN.to_owned(),
        plugin_entry(&plugin("microsoft-people")),
    ];
    let config = providers_config(&dir.0, &entries.join("\n\n"));
    for command in [&["serve"][..], &["providers", "list"]] {
        let output = plugboard(command, &config);
        let stderr = redact(&output.stderr, &dir.0);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains(
                "providers[1].path (from [config dir]/plugboard.toml): plugin \
                 [plugins]/libplugboard_microsoft_people.so: provider id `microsoft-people` is \
                 already taken by the built-in provider (providers[0].builtin); remove one of \
                 the two"
            ),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
    }
}

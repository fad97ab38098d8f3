//! Spec-only providers through the `plugboard` binary: a provider that is only a spec file in
//! a `spec_dir` connects through the OAuth browser flow and proxies like a built-in one, and
//! `providers list` names its file.

use std::path::Path;
use std::process::Output;

use plugboard_emulator::{CreateApp, CreateTenant, CreateUser};
use reqwest::StatusCode;

use crate::support::{TempDir, World, plugboard_command, providers_config};

/// A provider of the emulator's Graph that is only auth + proxy. Its URLs are a real-looking
/// provider's; the integration's overrides point them at the emulator.
const ACME_SPEC: &str = r#"
id = "acme-graph"
display_name = "Acme Graph"

[auth]
mode = "oauth2"
authorization_url = "https://login.acme.example/oauth2/v2.0/authorize"
token_url = "https://login.acme.example/oauth2/v2.0/token"

[[auth.scopes]]
name = "User.Read"
description = "Read the signed-in user's profile."
default = true

[[auth.scopes]]
name = "offline_access"
description = "Get refresh tokens."
default = true

[api]
base_url = "https://graph.acme.example"

[account]
path = "/v1.0/me"
id = "/id"
display_name = "/displayName"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_only_provider_connects_and_proxies() {
    let mut world = World::start().await;
    // An app of its own at the emulator, in a tenant of its own with one user.
    let tenant = world
        .control
        .create_tenant(&CreateTenant::default())
        .await
        .unwrap();
    let app = world
        .control
        .create_app(&CreateApp {
            home_tenant: tenant.id.clone(),
            redirect_uris: vec![format!("{}/oauth/callback", world.host.url)],
            ..CreateApp::default()
        })
        .await
        .unwrap();
    let user = world
        .control
        .create_user(&CreateUser {
            tenant: tenant.id.clone(),
            display_name: Some("Ada Spec".to_owned()),
            ..CreateUser::default()
        })
        .await
        .unwrap();

    let specs = world.dir.0.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(specs.join("acme-graph.toml"), ACME_SPEC).unwrap();
    let emulator = world.emulator.url();
    let acme = format!(
        "[[providers]]\nspec_dir = \"specs\"\n\n\
         [integrations.acme]\nprovider = \"acme-graph\"\nclient_id = \"{client_id}\"\n\
         client_secret = \"{secret}\"\n\n[integrations.acme.overrides]\n\
         authorization_url = \"{emulator}/{tenant}/oauth2/v2.0/authorize\"\n\
         token_url = \"{emulator}/{tenant}/oauth2/v2.0/token\"\n\
         api_base_url = \"{emulator}\"\n",
        client_id = app.client_id,
        secret = app.client_secret,
        tenant = tenant.id,
    );
    world
        .restart_with(|config| format!("{config}\n{acme}"))
        .await;

    world.connect("acme", "a1").await;
    let connection = world.host.credentials("acme", "a1").await;
    assert_eq!(connection["status"], "ok", "{connection}");
    assert_eq!(
        connection["account"]["id"],
        user.id.as_str(),
        "{connection}"
    );

    let (status, me) = world.host.proxy_get("acme", "a1", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["displayName"], "Ada Spec");
}

/// Runs `plugboard providers list --config <config>`.
fn providers_list(config: &Path) -> Output {
    plugboard_command(&["providers", "list"], config)
        .output()
        .unwrap()
}

/// The repository's example specs load, each listed with its file.
#[test]
fn providers_list_names_each_spec_file() {
    let dir = TempDir::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers/specs");
    let config = providers_config(
        &dir.0,
        &format!(
            "[[providers]]\nbuiltin = \"microsoft-people\"\n\n[[providers]]\nspec_dir = {:?}",
            shipped.display().to_string()
        ),
    );
    let output = providers_list(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for id in [
        "azure-api-management",
        "github",
        "google-calendar",
        "hubspot",
        "slack",
    ] {
        let file = shipped.join(format!("{id}.toml"));
        assert!(
            stdout.contains(&format!("source:   spec {}\n", file.display())),
            "{id}: {stdout}"
        );
    }
    assert!(
        stdout.contains("abi:      none (spec only, no code)"),
        "{stdout}"
    );
    assert!(stdout.contains("source:   built in"), "{stdout}");
}

/// A spec claiming a built-in provider's id, and one asking for code, are refused naming the
/// files; the server does not start on such a config.
#[test]
fn a_taken_id_and_a_spec_with_syncs_are_refused_naming_the_files() {
    let dir = TempDir::new();
    let specs = dir.0.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let taken = ACME_SPEC.replace("\"acme-graph\"", "\"microsoft-people\"");
    std::fs::write(specs.join("a-taken.toml"), taken).unwrap();
    let with_sync = format!(
        "{}\n[models.Person]\n\n[[syncs]]\nname = \"people\"\nmodel = \"Person\"\nfrequency = \"1h\"\n",
        ACME_SPEC.replace("\"acme-graph\"", "\"acme-sync\"")
    );
    std::fs::write(specs.join("b-sync.toml"), with_sync).unwrap();
    std::fs::write(specs.join("notes.md"), "not a spec").unwrap();
    let config = providers_config(
        &dir.0,
        "[[providers]]\nbuiltin = \"microsoft-people\"\n\n[[providers]]\nspec_dir = \"specs\"",
    );
    let output = providers_list(&config);
    assert!(!output.status.success());
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&dir.0.display().to_string(), "[dir]");
    assert!(
        stderr.contains(
            "spec [dir]/specs/a-taken.toml: provider id `microsoft-people` is already taken by \
             the built-in provider (providers[0].builtin)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid provider spec `[dir]/specs/b-sync.toml`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("syncs[0].name: sync `people` needs code"),
        "{stderr}"
    );
    assert!(!stderr.contains("notes.md"), "{stderr}");
}

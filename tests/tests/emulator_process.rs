//! The foundation end to end across a process boundary, the way `plugboard dev` and CI use it:
//! the `plugboard-emulator` binary in its own process, the OAuth engine connecting the demo
//! user through it, and the Microsoft People provider syncing that user's people.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use plugboard_core::http::{ApiClient, api_base_url, http_client};
use plugboard_core::oauth::{OAuthClient, OAuthClientConfig};
use plugboard_core::testkit::{TestContext, connect_auto_consent};
use plugboard_core::{Provider, SyncMode};
use plugboard_emulator::{ControlClient, DemoSetup};
use plugboard_microsoft_people::{MicrosoftPeople, Person};

const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";

/// The emulator binary, built by `cargo test --workspace` next to this test's executable.
fn emulator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = dir.join("plugboard-emulator");
    assert!(
        binary.exists(),
        "{} is missing: run the workspace tests (`cargo test --workspace`), which build it",
        binary.display()
    );
    binary
}

/// A running emulator process, killed when dropped.
struct EmulatorProcess {
    child: Child,
    url: String,
    setup: DemoSetup,
}

impl EmulatorProcess {
    fn start() -> EmulatorProcess {
        let mut child = Command::new(emulator_binary())
            .args(["--port", "0", "--demo", "--redirect-uri", REDIRECT_URI])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = lines.next().expect("a URL line").expect("readable stdout");
        let setup_line = lines.next().expect("a demo line").expect("readable stdout");
        let setup = serde_json::from_str(&setup_line).expect("the demo setup is JSON");
        EmulatorProcess { child, url, setup }
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_demo_user_connects_and_syncs_through_an_emulator_process() {
    let emulator = EmulatorProcess::start();
    let provider = MicrosoftPeople::new().expect("valid spec");
    let spec = provider.spec();
    let oauth_spec = spec.auth.as_oauth2().expect("oauth2").clone();
    let tenant = BTreeMap::from([("tenant".to_owned(), emulator.setup.tenant_id.clone())]);

    let oauth = OAuthClient::new(
        http_client(),
        OAuthClientConfig {
            scopes: oauth_spec.default_scopes(),
            client_id: emulator.setup.client_id.clone(),
            client_secret: emulator.setup.client_secret.clone().into(),
            redirect_uri: REDIRECT_URI.to_owned(),
            authorization_url: Some(format!("{}/{{tenant}}/oauth2/v2.0/authorize", emulator.url)),
            token_url: Some(format!("{}/{{tenant}}/oauth2/v2.0/token", emulator.url)),
            admin_consent_url: None,
            spec: oauth_spec,
        },
    );
    let tokens = connect_auto_consent(&http_client(), &oauth, &tenant, &[])
        .await
        .expect("the demo user connects");
    assert!(
        tokens.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );

    let mut api = spec.api.clone();
    api.base_url = emulator.url.clone();
    let base_url = api_base_url(&api, &tenant).expect("emulator URL");
    let ctx = TestContext::new(
        ApiClient::new(http_client(), &api, base_url),
        tokens.access_token,
    )
    .with_connection_config(tenant);
    ctx.start_run(SyncMode::Incremental, None);
    provider
        .run_sync("people", &ctx)
        .await
        .expect("the sync succeeds");

    let control = ControlClient::new(emulator.url.clone());
    let mut expected: Vec<String> = control
        .people(&emulator.setup.user_id)
        .await
        .expect("the emulator lists the demo user's people")
        .iter()
        .filter_map(|p| Person::from_graph(&serde_json::to_value(p).ok()?))
        .map(|p| p.id)
        .collect();
    expected.sort();
    let stored: Vec<String> = ctx.records("Person").into_iter().map(|r| r.id).collect();
    assert_eq!(stored.len(), 200, "the demo user has 200 people");
    assert_eq!(stored, expected);
}

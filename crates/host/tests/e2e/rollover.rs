//! Credential rollover without downtime: an integration holding two credentials
//! (`[[integrations.<name>.credentials]]`) keeps working when the one in use expires at the
//! provider mid-run — the refreshes in flight fall back to the other credential once, no
//! proxied request fails, and the log names the credential that worked by its key and expiry,
//! never by its value.

use std::sync::Arc;
use std::time::Duration;

use plugboard_emulator::{AddCertificate, AddSecret, FaultKind};
use reqwest::StatusCode;

use crate::support::{World, all_answered};

/// Connections of the integration under test, each sent [`REQUESTS_EACH`] requests at once.
const CONNECTIONS: usize = 5;
const REQUESTS_EACH: usize = 10;

fn fixture(name: &str) -> String {
    format!(
        "{}/../../testdata/certificates/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// An integration `name` of the demo app holding the credentials `entries` (TOML text of
/// `[[…credentials]]` entries, `{name}` standing for the integration's name).
fn integration_with(world: &World, name: &str, entries: &str) -> String {
    let emulator = world.emulator.url();
    format!(
        r#"
[integrations.{name}]
provider = "microsoft-people"
client_id = "{client_id}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.{name}.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.{name}.syncs.people]
enabled = false
{entries}"#,
        client_id = world.demo.client_id,
        entries = entries.replace("{name}", name),
    )
}

/// The id of the app's first secret (the demo's), as the emulator lists it.
async fn first_secret_id(world: &World) -> String {
    let apps = world.control.apps().await.unwrap();
    let app = apps
        .iter()
        .find(|a| a.client_id == world.demo.client_id)
        .unwrap();
    app.secrets[0].id.clone()
}

/// Connects [`CONNECTIONS`] connections of `integration`, expires their access tokens, and
/// has the token endpoint hold its next refreshes for a moment, during which `meanwhile` runs:
/// the refreshes of the requests then in flight meet what it changed.
async fn storm_while(world: &Arc<World>, integration: &str, meanwhile: impl Future<Output = ()>) {
    for i in 0..CONNECTIONS {
        world.connect(integration, &format!("c{i}")).await;
    }
    world.expire_access_tokens().await;
    world.control.reset_counters().await.unwrap();
    let held = FaultKind::Delay { ms: 700 };
    let token_path = "/common/oauth2/v2.0/token";
    world
        .add_fault(Some("POST"), token_path, CONNECTIONS as u32, held)
        .await;

    let requests: Vec<_> = (0..CONNECTIONS * REQUESTS_EACH)
        .map(|n| {
            let world = world.clone();
            let integration = integration.to_owned();
            let connection = format!("c{}", n % CONNECTIONS);
            tokio::spawn(async move {
                world
                    .host
                    .proxy_get(&integration, &connection, "/v1.0/me")
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    meanwhile.await;
    all_answered(requests, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_old_secret_expires_mid_run_and_no_request_fails() {
    let mut world = World::start().await;
    let client_id = world.demo.client_id.clone();
    let old_id = first_secret_id(&world).await;
    let new = world
        .control
        .add_secret(&client_id, &AddSecret::default())
        .await
        .unwrap();
    // The old secret is configured to last longer, so it is in use until the provider refuses
    // it: it expires at the emulator, on the emulator's clock, while requests are in flight.
    let entries = format!(
        "\n[[integrations.{{name}}.credentials]]\nclient_secret = \"${{CLIENT_SECRET}}\"\nexpires_at = \"2027-06-01\"\n\
         \n[[integrations.{{name}}.credentials]]\nclient_secret = \"{}\"\nexpires_at = \"2027-05-01\"\n",
        new.value
    );
    let integration = integration_with(&world, "rollover", &entries);
    world.restart_with(|config| config + &integration).await;
    let world = Arc::new(world);

    let expire = async {
        world
            .control
            .expire_secret_by_id(&client_id, &old_id)
            .await
            .unwrap();
    };
    storm_while(&world, "rollover", expire).await;

    // Each connection refreshed once, with the new secret; the old one was refused on the way.
    let counters = world.control.counters().await.unwrap();
    assert_eq!(
        counters.client_credentials.get(&new.id),
        Some(&(CONNECTIONS as u64)),
        "{counters:?}"
    );
    assert_eq!(counters.client_credentials.len(), 1, "{counters:?}");
    let refused = counters.token_errors.get("7000222").copied().unwrap_or(0);
    assert!((1..=CONNECTIONS as u64).contains(&refused), "{counters:?}");
    assert_eq!(
        world.token_requests("refresh_token").await,
        CONNECTIONS as u64 + refused
    );

    // The new secret is used first from now on: one token request per refresh.
    let (status, body) = world.host.force_refresh("rollover", "c0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counters = world.control.counters().await.unwrap();
    assert_eq!(counters.token_errors.get("7000222"), Some(&refused));

    let logs = world.host.logs();
    assert!(
        logs.contains("integrations.rollover.credentials[1], expires 2027-05-01 worked"),
        "{logs}"
    );
    assert!(
        logs.contains("integrations.rollover.credentials[0], expires 2027-06-01"),
        "{logs}"
    );
    assert!(
        !logs.contains(&world.demo.client_secret),
        "a secret is logged"
    );
    assert!(!logs.contains(&new.value), "a secret is logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_and_a_certificate_stand_in_for_each_other() {
    let mut world = World::start().await;
    let client_id = world.demo.client_id.clone();
    world
        .control
        .add_certificate(
            &client_id,
            &AddCertificate {
                certificate: std::fs::read_to_string(fixture("app.crt")).unwrap(),
            },
        )
        .await
        .unwrap();
    // The secret expires last, so it is in use; the certificate's date is set earlier than
    // its own end, as the app registration shows it.
    let entries = format!(
        "\n[[integrations.{{name}}.credentials]]\nclient_secret = \"${{CLIENT_SECRET}}\"\nexpires_at = \"2027-05-01\"\n\
         \n[[integrations.{{name}}.credentials]]\nclient_certificate = \"{}\"\nclient_private_key = \"{}\"\nexpires_at = \"2027-03-01\"\n",
        fixture("app.crt"),
        fixture("app.key")
    );
    let integration = integration_with(&world, "pair", &entries);
    world.restart_with(|config| config + &integration).await;
    let world = Arc::new(world);

    let expire = async {
        world.control.expire_secret(&client_id).await.unwrap();
    };
    storm_while(&world, "pair", expire).await;

    let counters = world.control.counters().await.unwrap();
    let used: Vec<_> = counters.client_credentials.iter().collect();
    assert_eq!(used.len(), 1, "{counters:?}");
    assert!(used[0].0.starts_with("certificate:"), "{counters:?}");
    assert_eq!(*used[0].1, CONNECTIONS as u64, "{counters:?}");
    assert!(
        counters.token_errors.contains_key("7000222"),
        "{counters:?}"
    );

    let logs = world.host.logs();
    assert!(
        logs.contains("integrations.pair.credentials[1], expires 2027-03-01 worked"),
        "{logs}"
    );
    assert!(
        !logs.contains(&world.demo.client_secret),
        "a secret is logged"
    );
    let key = std::fs::read_to_string(fixture("app.key")).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!logs.contains(line), "the private key is logged");
    }
}

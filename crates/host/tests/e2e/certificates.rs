//! Certificate credentials (`private_key_jwt`): the host connects and refreshes with a signed
//! client assertion instead of a client secret; each assertion the emulator refuses comes back
//! classified with its AADSTS code and fix; a certificate the host cannot use stops
//! `check-config`; the private key is never in the logs, an answer or the store.

use reqwest::StatusCode;
use serde_json::Value;

use crate::secrets::token_shaped;
use crate::support::{World, plugboard_command};

fn fixture(name: &str) -> String {
    format!(
        "{}/../../testdata/certificates/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The test key's text, given to the host in its config file (as a variable would give it).
fn private_key_pem() -> String {
    std::fs::read_to_string(fixture("app.key")).unwrap()
}

/// Lines of the private key's PEM body: none may appear anywhere the host writes.
fn key_lines() -> Vec<String> {
    private_key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

/// An integration `name` of the demo app that authenticates with `certificate` and the key
/// given as PEM text; `extra` goes into its table.
fn certificate_integration(world: &World, name: &str, certificate: &str, extra: &str) -> String {
    let emulator = world.emulator.url();
    format!(
        r#"
[integrations.{name}]
provider = "microsoft-people"
client_id = "{client_id}"
client_certificate = "{certificate}"
client_private_key = """
{key}"""
scopes = ["People.Read", "User.Read", "offline_access"]
{extra}

[integrations.{name}.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.{name}.syncs.people]
enabled = false
"#,
        client_id = world.demo.client_id,
        certificate = fixture(certificate),
        key = private_key_pem(),
    )
}

/// A world whose app has `app.crt` registered and whose host has the integrations `cert`
/// (PS256) and `cert_rs` (RS256).
async fn world_with_certificates() -> World {
    let mut world = World::start().await;
    world
        .control
        .add_certificate(
            &world.demo.client_id,
            &plugboard_emulator::AddCertificate {
                certificate: std::fs::read_to_string(fixture("app.crt")).unwrap(),
            },
        )
        .await
        .unwrap();
    let integrations = certificate_integration(&world, "cert", "app.crt", "")
        + &certificate_integration(
            &world,
            "cert_rs",
            "app.crt",
            "client_assertion_algorithm = \"RS256\"",
        );
    world.restart_with(|config| config + &integrations).await;
    world
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        bytes.extend(std::fs::read(&file).unwrap_or_default());
    }
    bytes
}

/// The refresh was refused by the emulator with `code`, reported as the integration's fault
/// with the fix, and the connection is not marked for reconnecting.
async fn refused_as_misconfigured(world: &World, code: u32, fix: &str) -> Value {
    let (status, body) = world.host.force_refresh("cert", "c1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "integration_misconfigured", "{body}");
    let text = body.to_string();
    assert!(text.contains(&format!("AADSTS{code}")), "{body}");
    assert!(text.contains(fix), "{body}");
    let list = world.host.get_json("/connections?integration=cert").await;
    assert_eq!(list["connections"][0]["status"], "ok", "{list}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_and_refreshes_with_a_certificate_and_never_reveals_the_key() {
    let world = world_with_certificates().await;
    world.control.reset_counters().await.unwrap();
    for integration in ["cert", "cert_rs"] {
        world.connect(integration, "c1").await;
        let (status, body) = world.host.force_refresh(integration, "c1").await;
        assert_eq!(status, StatusCode::OK, "{integration}: {body}");
        let (status, me) = world.host.proxy_get(integration, "c1", "/v1.0/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
    }
    assert_eq!(world.token_requests("authorization_code").await, 2);
    assert_eq!(world.token_requests("refresh_token").await, 2);

    // A refused refresh puts the provider's answer in an error body: still no key.
    world.control.advance_clock(600).await.unwrap();
    let (status, error) = world.host.force_refresh("cert", "c1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");

    let logs = world.host.logs();
    assert!(
        logs.contains("token refreshed"),
        "debug logs captured:\n{logs}"
    );
    let store = file_bytes(&world.host.db_path);
    assert!(!store.is_empty(), "the store file is read");
    for line in key_lines() {
        assert!(!logs.contains(&line), "the private key is in the logs");
        assert!(
            !store.windows(line.len()).any(|w| w == line.as_bytes()),
            "the private key is in the store"
        );
        assert!(
            !error.to_string().contains(&line),
            "the key is in an answer"
        );
    }
    // Nor a signed assertion (`{"alg":"PS256"…` / `{"alg":"RS256"…` in base64url).
    for header in ["eyJhbGciOiJQUzI1NiIs", "eyJhbGciOiJSUzI1NiIs"] {
        assert!(
            !token_shaped(logs.as_bytes(), header),
            "an assertion is logged"
        );
        assert!(!token_shaped(&store, header), "an assertion is stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_refused_assertion_is_classified_with_its_fix() {
    let mut world = world_with_certificates().await;
    world.connect("cert", "c1").await;
    let registered = std::fs::read_to_string(world.dir.0.join("plugboard.toml")).unwrap();

    // A certificate (with its key) that is not registered on the app.
    let other_key = std::fs::read_to_string(fixture("other.key")).unwrap();
    let unregistered = registered
        .replace(&fixture("app.crt"), &fixture("other.crt"))
        .replace(&private_key_pem(), &other_key);
    world.restart_with(|_| unregistered).await;
    let body = refused_as_misconfigured(
        &world,
        700027,
        "upload client_certificate in Entra ID (Certificates & secrets)",
    )
    .await;
    for line in other_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!body.to_string().contains(line), "the key is in the answer");
    }

    // Assertions addressed to another audience than the token endpoint they are sent to.
    let elsewhere = registered.replace(
        "[integrations.cert.overrides]\n",
        "[integrations.cert.overrides]\n\
         client_assertion_audience = \"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token\"\n",
    );
    assert_ne!(elsewhere, registered);
    world.restart_with(|_| elsewhere).await;
    refused_as_misconfigured(
        &world,
        700023,
        "check token_url and client_assertion_audience",
    )
    .await;

    // Back to the right settings: the refresh works again.
    world.restart_with(|_| registered).await;
    let (status, body) = world.host.force_refresh("cert", "c1").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The assertion is past its five minutes on the emulator's clock (last: the clock stays
    // ahead of the host's).
    world.control.advance_clock(600).await.unwrap();
    refused_as_misconfigured(&world, 700024, "check this server's clock").await;
    // A replayed `jti` (AADSTS7000274) cannot be provoked through the host, which signs every
    // request anew: the emulator's tests refuse one, and the engine's classify it.
}

/// What the host can tell without asking the provider stops `check-config`, each problem on
/// its key: a key that is not the certificate's, and a certificate past its end date.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_refuses_a_mismatched_key_and_an_expired_certificate() {
    let dir = crate::support::TempDir::new();
    let integration = |name: &str, certificate: &str, key: &str| {
        format!(
            "[integrations.{name}]\nprovider = \"microsoft-people\"\nclient_id = \"id\"\n\
             client_certificate = \"{}\"\nclient_private_key = \"{}\"\n\n",
            fixture(certificate),
            fixture(key)
        )
    };
    let rest = format!(
        "[[providers]]\nbuiltin = \"microsoft-people\"\n\n{}{}{}",
        integration("ok", "app.crt", "app.pkcs1.key"),
        integration("mismatch", "app.crt", "other.key"),
        integration("expired", "expired.crt", "app.key"),
    );
    let config = crate::support::providers_config(&dir.0, &rest);
    let output = plugboard_command(&["check-config"], &config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("2 problems"), "{report}");
    assert!(
        report.contains("integrations.mismatch.client_private_key")
            && report.contains("does not belong to the certificate"),
        "{report}"
    );
    assert!(
        report.contains("integrations.expired.client_certificate")
            && report.contains("the certificate expired on 2025-12-01"),
        "{report}"
    );
    assert!(!report.contains("integrations.ok."), "{report}");
    for line in key_lines() {
        assert!(!report.contains(&line), "the private key is in the report");
    }
}

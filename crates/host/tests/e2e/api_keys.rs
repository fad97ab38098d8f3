//! API-key connections through the `plugboard` binary against the emulator's API Management
//! gateway (`/apim`), which checks subscription keys as Azure does: created with
//! `POST /connections`, listed without the key, the key applied by the proxy where the spec
//! says (header or query parameter), a rejected key's 401 passed through, the key sealed in the
//! store and moved by `keys rotate`, deleted.

use std::path::Path;

use plugboard_emulator::{CreateSubscription, SubscriptionInfo};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::secrets::rotate_keys;
use crate::support::{
    Host, KEY_1, KEY_2, SYNCS_OFF, World, plugboard_command, providers_config, reply,
};

/// The gateway with the key in the query and an account endpoint, so a key is tried before a
/// connection is stored. The shipped `azure-api-management` spec covers the header.
pub(crate) const APIM_QUERY_SPEC: &str = r#"
id = "apim-query"
display_name = "APIM (key in the query)"

[auth]
mode = "api_key"
query_param = "subscription-key"

[api]
base_url = "https://contoso.azure-api.net"

[account]
path = "/subscription"
id = "/id"
display_name = "/name"
"#;

/// The world's config plus both API-key integrations, with encryption keys `keys` (the last
/// one active).
fn config(world: &World, keys: &[&str]) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers/specs");
    let gateway = format!("{}/apim", world.emulator.url());
    let extra = format!(
        "{SYNCS_OFF}\n[[providers]]\nspec_dir = {shipped:?}\n\n[[providers]]\nspec_dir = {own:?}\n\n\
         [integrations.apim]\nprovider = \"azure-api-management\"\n\n\
         [integrations.apim.overrides]\napi_base_url = \"{gateway}\"\n\n\
         [integrations.apim-query]\nprovider = \"apim-query\"\n\n\
         [integrations.apim-query.overrides]\napi_base_url = \"{gateway}\"\n",
        shipped = shipped.display().to_string(),
        // Absolute, so a replica's copy of the config (in a directory of its own) finds it.
        own = world.dir.0.join("specs").display().to_string(),
    );
    world.config_with(keys, &extra)
}

/// A world whose host also serves the two API-key integrations.
async fn world() -> World {
    let mut world = World::start().await;
    let specs = world.dir.0.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(specs.join("apim-query.toml"), APIM_QUERY_SPEC).unwrap();
    restart(&mut world, &[("k1", KEY_1)]).await;
    world
}

/// Restarts the world's host with the API-key integrations and the encryption keys `keys`.
async fn restart(world: &mut World, keys: &[(&str, &str)]) {
    let ids: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
    world.restart_on(&config(world, &ids), keys).await;
}

async fn subscription(world: &World, name: &str) -> SubscriptionInfo {
    world
        .control
        .create_subscription(&CreateSubscription {
            name: Some(name.to_owned()),
        })
        .await
        .unwrap()
}

/// `POST /connections`: the status and the JSON body.
async fn create(host: &Host, body: Value) -> (StatusCode, Value) {
    host.post("/connections", &body).await
}

/// A proxied `GET` that brings a subscription key of the caller's own, which the
/// connection's must replace: the status and the gateway's echo of the request.
async fn echo(
    host: &Host,
    integration: &str,
    connection_id: &str,
    target: &str,
) -> (StatusCode, Value) {
    reply(
        host.proxy(Method::GET, integration, connection_id, target)
            .header("Ocp-Apim-Subscription-Key", "forged-by-the-caller"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_connection_is_created_proxied_rotated_and_deleted() {
    let mut world = world().await;
    let sub = subscription(&world, "Contoso").await;

    let (status, created) = create(
        &world.host,
        json!({"integration": "apim", "connection_id": "c1",
               "connection_config": {"service": "contoso"},
               "credentials": {"api_key": sub.key}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["connection_id"], "c1");
    assert_eq!(created["provider"], "azure-api-management");
    assert_eq!(created["status"], "ok");
    assert!(!created.to_string().contains(&sub.key), "{created}");

    let listed = world.host.get_json("/connections?integration=apim").await;
    assert_eq!(
        listed["connections"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert!(!listed.to_string().contains(&sub.key), "{listed}");
    let shown = world.host.credentials("apim", "c1").await;
    assert_eq!(shown["credentials"], json!({"api_key": sub.key}));

    // The proxy puts the key in the spec's header, replacing the caller's.
    let (status, echoed) = echo(&world.host, "apim", "c1", "/echo/resource?a=1").await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["subscription"]["id"], sub.id.as_str());
    assert_eq!(echoed["key_location"], "header");
    assert_eq!(echoed["path"], "/resource");
    assert_eq!(echoed["query"], json!({"a": "1"}));

    // Sealed in the store, under the active key; `keys rotate` moves it to a new one.
    let store = std::fs::read(&world.host.db_path).unwrap_or_default();
    assert!(
        !store
            .windows(sub.key.len())
            .any(|w| w == sub.key.as_bytes())
    );
    world.host.kill();
    let (ok, printed) = rotate_keys(
        &config(&world, &["k1", "k2"]),
        &world.dir.0,
        &world.demo.client_secret,
    );
    assert!(ok, "{printed}");
    assert!(
        printed.contains("re-encrypted 1 row(s) under key `k2`"),
        "{printed}"
    );
    restart(&mut world, &[("k2", KEY_2)]).await;
    let (status, echoed) = echo(&world.host, "apim", "c1", "/echo/resource").await;
    assert_eq!(status, StatusCode::OK, "{echoed}");

    // A key the provider no longer accepts: its 401 comes back as it is, nothing is refreshed
    // and the connection is not marked.
    world.control.revoke_subscription(&sub.id).await.unwrap();
    let (status, denied) = echo(&world.host, "apim", "c1", "/echo/resource").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied["statusCode"], 401);
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("invalid subscription key"),
        "{denied}"
    );
    assert_eq!(world.host.credentials("apim", "c1").await["status"], "ok");

    // A new key replaces the old one on the same connection.
    let renewed = subscription(&world, "Contoso again").await;
    let (status, replaced) = create(
        &world.host,
        json!({"integration": "apim", "connection_id": "c1",
               "connection_config": {"service": "contoso"},
               "credentials": {"api_key": renewed.key}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let (status, echoed) = echo(&world.host, "apim", "c1", "/echo/resource").await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["subscription"]["id"], renewed.id.as_str());

    let (deleted, _) = world
        .host
        .call(Method::DELETE, "/connections/c1?integration=apim")
        .await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    let (gone, _) = world
        .host
        .call(Method::GET, "/connections/c1?integration=apim")
        .await;
    assert_eq!(gone, StatusCode::NOT_FOUND);

    let logs = world.host.logs();
    for key in [&sub.key, &renewed.key] {
        assert!(!logs.contains(key.as_str()), "a key leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_the_query_is_tried_on_the_account_endpoint_first() {
    let world = world().await;
    let sub = subscription(&world, "Fabrikam").await;

    let (status, refused) = create(
        &world.host,
        json!({"integration": "apim-query", "connection_id": "q1",
               "credentials": {"api_key": "not-a-key"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_credentials");
    assert_eq!(
        refused["error"]["message"],
        "credentials.api_key: the provider rejected the key (401 from its account endpoint); \
         nothing was stored"
    );
    let (none, _) = world
        .host
        .call(Method::GET, "/connections/q1?integration=apim-query")
        .await;
    assert_eq!(none, StatusCode::NOT_FOUND, "nothing was stored");

    let (status, created) = create(
        &world.host,
        json!({"integration": "apim-query", "connection_id": "q1",
               "credentials": {"api_key": sub.key}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["account"],
        json!({"id": sub.id, "display_name": "Fabrikam"})
    );

    // The caller's own `subscription-key` is replaced by the connection's.
    let (_, echoed) = world
        .host
        .proxy_get(
            "apim-query",
            "q1",
            "/echo/items?subscription-key=forged&page=2",
        )
        .await;
    assert_eq!(echoed["key_location"], "query");
    assert_eq!(echoed["subscription"]["id"], sub.id.as_str());
    assert_eq!(echoed["query"], json!({"page": "2"}));
}

/// Each bad request names what is wrong, and none stores anything.
#[tokio::test(flavor = "multi_thread")]
async fn bad_api_key_requests_are_refused_naming_the_field() {
    let world = world().await;
    let key = subscription(&world, "Woodgrove").await.key;
    let base = json!({"integration": "apim", "connection_id": "b1",
                      "connection_config": {"service": "woodgrove"},
                      "credentials": {"api_key": key}});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = base.clone();
        change(&mut body);
        body
    };
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            with(&|b| b["credentials"]["api_key"] = json!("")),
            StatusCode::BAD_REQUEST,
            "invalid_credentials",
            "credentials.api_key: must not be empty",
        ),
        (
            with(&|b| b["credentials"]["api_key"] = json!(" padded")),
            StatusCode::BAD_REQUEST,
            "invalid_credentials",
            "credentials.api_key: must not start or end with whitespace",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("credentials");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "missing field `credentials`",
        ),
        (
            with(&|b| b["credentials"] = json!({"apikey": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "credentials.apikey: unknown field `apikey`",
        ),
        (
            with(&|b| b["connection_config"] = json!({})),
            StatusCode::BAD_REQUEST,
            "invalid_connection_config",
            "connection_config.service: required, not set",
        ),
        (
            with(&|b| b["connection_id"] = json!("a/b")),
            StatusCode::BAD_REQUEST,
            "invalid_connection_id",
            "connection_id must be",
        ),
        (
            with(&|b| b["integration"] = json!("nope")),
            StatusCode::NOT_FOUND,
            "integration_not_found",
            "no integration `nope`",
        ),
        (
            with(&|b| b["integration"] = json!("microsoft")),
            StatusCode::BAD_REQUEST,
            "oauth_integration",
            "integration `microsoft` connects through OAuth",
        ),
    ];
    for (body, status, code, message) in cases {
        let (got, answer) = create(&world.host, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        let text = answer["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text}");
        assert!(!text.contains(&key), "the key is never echoed");
    }
    let listed = world.host.get_json("/connections").await;
    assert_eq!(listed["connections"], json!([]));

    // OAuth-only routes say what to do instead.
    let (status, session) = world
        .host
        .post(
            "/connect/sessions",
            &json!({"integration": "apim", "connection_id": "b1"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(session["error"]["code"], "api_key_integration", "{session}");

    let (status, _) = create(&world.host, base.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refresh) = world.host.force_refresh("apim", "b1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refresh["error"]["code"], "refresh_unsupported", "{refresh}");
}

/// An API-key integration has no OAuth client: `check-config` refuses one, naming each key.
#[test]
fn an_api_key_integration_with_oauth_client_settings_is_refused() {
    let dir = crate::support::TempDir::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers/specs");
    let config = providers_config(
        &dir.0,
        &format!(
            "[[providers]]\nspec_dir = {shipped:?}\n\n\
             [integrations.apim]\nprovider = \"azure-api-management\"\n\
             client_id = \"abc\"\nclient_secret = \"s3cr3t-client-value\"\n",
            shipped = shipped.display().to_string(),
        ),
    );
    let output = plugboard_command(&["check-config"], &config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for key in ["client_id", "client_secret"] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("integrations.apim.{key} (from ")))
            .unwrap_or_else(|| panic!("{key}: {stderr}"));
        assert!(
            line.contains(
                "not used: provider `azure-api-management` authenticates with API keys, \
                 which each connection brings (POST /connections); remove it"
            ),
            "{line}"
        );
    }
    assert!(
        !stderr.contains("s3cr3t-client-value"),
        "the secret is not echoed: {stderr}"
    );
}

/// Creations of one connection racing through two processes on one SQLite file: every one
/// is saved (none fails with "database is locked"), and exactly one answers 201.
#[tokio::test(flavor = "multi_thread")]
async fn racing_creations_across_replicas_all_succeed_and_one_answers_201() {
    let world = world().await;
    let replica = world.start_replica().await;
    let sub = subscription(&world, "Contoso").await;
    let body = json!({"integration": "apim", "connection_id": "raced",
                      "connection_config": {"service": "contoso"},
                      "credentials": {"api_key": sub.key}});
    let hosts = [&world.host, &replica];
    let answers =
        futures::future::join_all((0..40).map(|i| create(hosts[i % 2], body.clone()))).await;
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status} {answer}"
        );
    }
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    let listed = replica.get_json("/connections?integration=apim").await;
    assert_eq!(
        listed["connections"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

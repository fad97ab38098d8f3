//! An integration's own credential, handled once per integration: an expiring secret is
//! announced 30 and 7 days ahead once each, by one process of several sharing a store, and
//! shown by `GET /integrations`; an expired one marks the integration misconfigured with one
//! `integration.credential_failed` event, none of its connections marked for reconnect, and a
//! reload (SIGHUP) with a valid secret brings every connection back with one `integration.recovered`.

use std::sync::Arc;

use plugboard_emulator::AddSecret;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    API_KEY, Received, SYNCS_OFF, StoreKind, World, events, expect_events, webhook_receiver,
    webhooks_section,
};

/// Connections of the integration whose secret expires.
const CONNECTIONS: usize = 100;

/// An integration `name` of the demo app authenticating with `secret_line` (TOML), syncs off.
fn integration(world: &World, name: &str, secret_line: &str) -> String {
    let emulator = world.emulator.url();
    format!(
        r#"
[integrations.{name}]
provider = "microsoft-people"
client_id = "{client_id}"
scopes = ["People.Read", "User.Read", "offline_access"]
{secret_line}

[integrations.{name}.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.{name}.syncs.people]
enabled = false
"#,
        client_id = world.demo.client_id,
    )
}

fn webhooks(url: &str) -> String {
    format!("{SYNCS_OFF}{}", webhooks_section(url))
}

/// The integration `name` as `GET /integrations` shows it.
async fn shown(world: &World, name: &str) -> Value {
    let list = world.host.get_json("/integrations").await;
    list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
        .clone()
}

/// The dashboard's Overview page, signed in with the API key as a browser would.
async fn overview(world: &World) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = &world.host.url;
    let cookie_of = |response: &reqwest::Response, name: &str| -> String {
        let found = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap();
        found.split(';').next().unwrap().to_owned()
    };
    let form = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let form_cookie = cookie_of(&form, "plugboard_console_form");
    let page = form.text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let signed_in = http
        .post(format!("{base}/ui/sign-in"))
        .header("cookie", form_cookie)
        .form(&[("csrf", csrf), ("key", API_KEY)])
        .send()
        .await
        .unwrap();
    let session = cookie_of(&signed_in, "plugboard_console");
    let page = http
        .get(format!("{base}/ui"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// A restart of a world whose config gains an integration with a secret expiring in five
/// days: its 30-day and 7-day notices, each once.
async fn expiring_in_five_days(kind: StoreKind) -> (World, Received) {
    let (hook_url, received) = webhook_receiver().await;
    let mut world = World::start_on(kind, 120, &webhooks(&hook_url)).await;
    let expires = chrono::Utc::now().date_naive() + chrono::Days::new(5);
    let expiring = integration(
        &world,
        "expiring",
        &format!(
            "client_secret = \"${{CLIENT_SECRET}}\"\nclient_secret_expires_at = \"{expires}\""
        ),
    );
    world.restart_with(|config| config + &expiring).await;
    (world, received)
}

fn check_notices(notices: &[Value], world: &World) {
    let expires = (chrono::Utc::now().date_naive() + chrono::Days::new(5)).to_string();
    let mut ahead: Vec<i64> = notices
        .iter()
        .map(|n| n["data"]["days_ahead"].as_i64().unwrap())
        .collect();
    ahead.sort_unstable();
    assert_eq!(ahead, [7, 30], "{notices:?}");
    for notice in notices {
        let data = &notice["data"];
        assert_eq!(data["integration"], "expiring", "{notice}");
        assert_eq!(data["credential"], "integrations.expiring.client_secret");
        assert_eq!(data["kind"], "secret");
        assert_eq!(data["expires_at"], expires.as_str());
        assert_eq!(data["days_left"], 5);
        assert!(!notice.to_string().contains(&world.demo.client_secret));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_expiring_in_five_days_is_announced_30_and_7_days_ahead_once() {
    let (mut world, received) = expiring_in_five_days(StoreKind::Sqlite).await;
    let notices = expect_events(&received, "integration.credential_expiring", 2).await;
    check_notices(&notices, &world);

    // The expiry, per integration, in the API.
    let expiring = shown(&world, "expiring").await;
    let expires = (chrono::Utc::now().date_naive() + chrono::Days::new(5)).to_string();
    assert_eq!(expiring["provider"], "microsoft-people");
    assert_eq!(expiring["auth"], "oauth2");
    assert_eq!(expiring["credentials_expire_on"], expires.as_str());
    assert_eq!(expiring["credential_state"], "ok");
    assert_eq!(
        expiring["credentials"][0]["name"],
        "integrations.expiring.client_secret"
    );
    assert_eq!(expiring["credentials"][0]["kind"], "secret");
    assert_eq!(expiring["credentials"][0]["expires_on"], expires.as_str());
    assert_eq!(expiring["credentials"][0]["days_left"], 5);
    let listed = world.host.get_json("/integrations").await.to_string();
    assert!(!listed.contains(&world.demo.client_secret), "{listed}");
    // And in the dashboard, the credential named by its key.
    let page = overview(&world).await;
    assert!(
        page.contains("Client secret: set, expires")
            && page.contains("(in 5 days) (integrations.expiring.client_secret)"),
        "{page}"
    );

    // A restart checks again at start, and the store says both were sent.
    world.kill_and_restart().await;
    expect_events(&received, "integration.credential_expiring", 2).await;
    let logs = world.host.logs();
    assert!(
        !logs.contains(&world.demo.client_secret),
        "a secret is logged"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_postgres_announce_each_expiry_notice_once() {
    let (world, received) = expiring_in_five_days(StoreKind::Postgres).await;
    let replica = world.start_replica().await;
    let notices = expect_events(&received, "integration.credential_expiring", 2).await;
    check_notices(&notices, &world);
    // A third start, on either: still nothing new.
    let another = world.start_replica().await;
    expect_events(&received, "integration.credential_expiring", 2).await;
    drop((replica, another));
    world.finish().await;
}

/// Proxies `/v1.0/me` for every connection at once; their statuses.
async fn call_every_connection(world: &Arc<World>) -> Vec<(StatusCode, Value)> {
    let calls = (0..CONNECTIONS).map(|i| {
        let world = world.clone();
        tokio::spawn(async move {
            world
                .host
                .proxy_get("app", &format!("c{i}"), "/v1.0/me")
                .await
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_secret_fails_the_integration_once_and_a_reload_with_a_valid_one_recovers() {
    let (hook_url, received) = webhook_receiver().await;
    let mut world = World::start_with(120, &webhooks(&hook_url)).await;
    let old = world.demo.client_secret.clone();
    let app = integration(&world, "app", &format!("client_secret = \"{old}\""));
    world.restart_with(|config| config + &app).await;

    // 100 connections through the whole connect flow (each its own browser), 20 at a time.
    for batch in 0..CONNECTIONS / 20 {
        let world = &world;
        let flows = (0..20).map(|i| async move {
            let id = format!("c{}", batch * 20 + i);
            world.connect("app", &id).await;
        });
        futures::future::join_all(flows).await;
    }

    // The app's secret expires at Microsoft, and every access token with it: each connection's
    // next use refreshes, and the token endpoint refuses the app's credential.
    let client_id = world.demo.client_id.clone();
    world.control.expire_secret(&client_id).await.unwrap();
    world.expire_access_tokens().await;
    let world = Arc::new(world);
    for (status, body) in call_every_connection(&world).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(body["error"]["code"], "integration_misconfigured", "{body}");
        assert!(body.to_string().contains("7000222"), "{body}");
    }
    let failed = expect_events(&received, "integration.credential_failed", 1).await;
    assert_eq!(failed[0]["data"]["integration"], "app");
    assert!(
        failed[0]["data"]["error"]
            .as_str()
            .unwrap()
            .contains("7000222"),
        "{failed:?}"
    );
    assert!(events(&received, "connection.refresh_failed").is_empty());

    // No connection waits for its user: each is still `ok`; the integration is the one marked.
    let listed = world.host.get_json("/connections?integration=app").await;
    let connections = listed["connections"].as_array().unwrap();
    assert_eq!(connections.len(), CONNECTIONS);
    assert!(connections.iter().all(|c| c["status"] == "ok"), "{listed}");
    let app = shown(&world, "app").await;
    assert_eq!(app["credential_state"], "refused", "{app}");
    assert!(app["credential_failed_at"].is_string(), "{app}");
    let page = overview(&world).await;
    assert!(page.contains("Misconfigured since"), "{page}");
    assert!(!page.contains(&old), "a secret is rendered");

    // A new secret, loaded by a reload (SIGHUP, no restart): every connection works again by
    // itself, and the recovery is announced once.
    let new = world
        .control
        .add_secret(&client_id, &AddSecret::default())
        .await
        .unwrap();
    let old_line = format!("client_secret = \"{old}\"");
    let new_line = format!("client_secret = \"{}\"", new.value);
    let config_path = world.dir.0.join("plugboard.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, config.replace(&old_line, &new_line)).unwrap();
    let pid = world.host.pid();
    world.host.sighup();
    world.host.wait_for_log("configuration reloaded").await;
    assert_eq!(world.host.pid(), pid, "reloaded, not restarted");
    assert_eq!(shown(&world, "app").await["credential_state"], "refused");
    for (status, body) in call_every_connection(&world).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    expect_events(&received, "integration.recovered", 1).await;
    assert_eq!(
        events(&received, "integration.recovered")[0]["data"]["integration"],
        "app"
    );
    assert_eq!(events(&received, "integration.credential_failed").len(), 1);
    assert!(events(&received, "connection.refresh_failed").is_empty());
    let app = shown(&world, "app").await;
    assert_eq!(app["credential_state"], "ok", "{app}");
    assert!(app["credential_failed_at"].is_null(), "{app}");
    assert!(!overview(&world).await.contains("Misconfigured since"));

    // No secret in any log, event or answer.
    let bodies: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.body.clone())
        .collect();
    let listed = world.host.get_json("/integrations").await;
    let everything = format!("{}{bodies:?}{listed}", world.host.logs());
    for secret in [&old, &new.value] {
        assert!(!everything.contains(secret.as_str()), "a secret leaked");
    }
    Arc::into_inner(world).unwrap().finish().await;
}

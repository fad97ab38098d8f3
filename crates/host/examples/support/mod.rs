//! What the benchmark examples share: an unthrottled emulator on its own runtime, the fixed
//! bench credentials, waiting for a started `plugboard`, and connecting the demo account
//! through the real OAuth flow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, RunningEmulator,
    ThrottleSettings,
};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

/// The API key the benchmarks start `plugboard` with.
pub const API_KEY: &str = "bench-api-key-0123456789-0123456789-abcdef";
/// A fixed key-ring key: benchmark stores are thrown away.
pub const ENCRYPTION_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// A Microsoft emulator with Graph's throttling off (the benchmarks measure Plugboard, not
/// Graph's limits), served by its own runtime so the benchmark's threads never serve it. Keep
/// the runtime alive as long as the emulator.
pub fn unthrottled_emulator() -> (tokio::runtime::Runtime, RunningEmulator) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime
        .block_on(Emulator::start(EmulatorOptions {
            throttling: ThrottleSettings {
                max_concurrent_per_mailbox: 1_000,
                requests_per_window: u32::MAX,
                ..ThrottleSettings::default()
            },
            ..EmulatorOptions::default()
        }))
        .unwrap();
    (runtime, emulator)
}

/// A `plugboard` to come: a free loopback port for it to listen on, its URL, and the emulator's
/// demo app and user (with `people` people) set up to redirect to it.
pub async fn demo_for_plugboard(
    control: &ControlClient,
    people: usize,
) -> (u16, String, DemoSetup) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let demo = control
        .setup_demo(DemoOptions {
            redirect_uris: vec![format!("{host}/oauth/callback")],
            people,
            seed: 1,
        })
        .await
        .unwrap();
    (port, host, demo)
}

/// The `[[providers]]` entry of the benchmarks' configs.
pub const BUILTIN_PROVIDER: &str = "[[providers]]\nbuiltin = \"microsoft-people\"";

/// The config both benchmarks start `plugboard` with: listening on `port`, a store at `db`,
/// the people provider built in, and integration `microsoft` pointed at the emulator. Secrets
/// come from [`bench_env`].
pub fn bench_config(port: u16, store_url: &str, client_id: &str, emulator: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
# Metrics are recorded only where they are served.
management_bind = "127.0.0.1:0"
public_url = "http://127.0.0.1:{port}"
[store]
url = "{store_url}"
[security]
encryption_keys = {{ k1 = "{ENCRYPTION_KEY}" }}
active_key = "k1"
{BUILTIN_PROVIDER}
[integrations.microsoft]
provider = "microsoft-people"
client_id = "{client_id}"
[integrations.microsoft.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"
"#,
    )
}

/// The `[store] url` of a SQLite file.
pub fn sqlite_url(db: &std::path::Path) -> String {
    format!("sqlite://{}", db.display())
}

/// The environment of a benchmark's `plugboard`: the API key and the demo app's client secret,
/// with logging kept to warnings.
pub fn bench_env(client_secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PLUGBOARD__SECURITY__SECRET_KEY", API_KEY.to_owned()),
        (
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
            client_secret.to_owned(),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

/// Waits for the `plugboard` at `host`, connects the demo account as connection `bench` of
/// integration `microsoft`, and returns its access token for requests sent straight to Graph.
pub async fn connected_token(host: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    wait_healthy(&http, host).await;
    connect(&http, host).await;
    let detail: Value = http
        .get(format!("{host}/connections/bench?integration=microsoft"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    detail["credentials"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_healthy(http: &reqwest::Client, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{host}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "plugboard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects the demo account as a browser would: the connect page's Continue (a form posting
/// the session token), then redirects followed by hand, cookies kept.
async fn connect(http: &reqwest::Client, host: &str) {
    let session: Value = http
        .post(format!("{host}/connect/sessions"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"integration": "microsoft", "connection_id": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cookies: HashMap<String, String> = HashMap::new();
    let link = session["connect_url"].as_str().unwrap();
    let page = http.get(link).send().await.unwrap();
    assert!(page.status().is_success(), "the connect page");
    let continued = http
        .post(link.split('?').next().unwrap())
        .form(&[("session_token", session["token"].as_str().unwrap())]);
    let mut request = Some(continued);
    let mut url = String::new();
    for _ in 0..5 {
        let mut request = request.take().unwrap_or_else(|| http.get(&url));
        if url.starts_with(host) && !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request = request.header(COOKIE, header.join("; "));
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let (name, value) = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap();
            cookies.insert(name.to_owned(), value.to_owned());
        }
        match response.headers().get(LOCATION) {
            Some(next) => url = next.to_str().unwrap().to_owned(),
            None => {
                assert!(
                    response.status().is_success(),
                    "connecting failed: {}",
                    response.text().await.unwrap()
                );
                return;
            }
        }
    }
    panic!("the connect flow did not finish");
}

//! Starts the real `plugboard` binary against an in-test emulator, both over HTTP on loopback,
//! and drives them like a caller's backend and an end user's browser would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, RunningEmulator,
    ThrottleSettings,
};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

pub const API_KEY: &str = "test-api-key-0123456789-0123456789-abcdef";
pub const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("plugboard-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago. The host's redirect URI must be registered at the
/// emulator before the host starts, so the port is chosen up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emulator, its demo tenant, an echo server, a scratch directory and a running host.
pub struct World {
    pub emulator: RunningEmulator,
    pub control: ControlClient,
    pub demo: DemoSetup,
    /// Answers any request with its body and describes the request in `x-echo-*` headers; the
    /// API base of the `echo` integration.
    pub echo_url: String,
    pub host: Host,
    pub dir: TempDir,
}

/// Syncs switched off, so tests of connections and the proxy see only their own requests.
pub const SYNCS_OFF: &str = "
[integrations.microsoft.syncs.people]
enabled = false

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false
";

impl World {
    /// A world whose host runs no syncs.
    pub async fn start() -> World {
        Self::start_with(120, SYNCS_OFF).await
    }

    /// A world whose demo user has `people` people and whose host config ends with `extra`.
    pub async fn start_with(people: usize, extra: &str) -> World {
        let emulator = Emulator::start(EmulatorOptions {
            throttling: ThrottleSettings {
                max_concurrent_per_mailbox: 10_000,
                requests_per_window: 1_000_000,
                ..ThrottleSettings::default()
            },
            ..EmulatorOptions::default()
        })
        .await
        .unwrap();
        let control = emulator.control();
        let port = free_port();
        let demo = control
            .setup_demo(DemoOptions {
                redirect_uris: vec![format!("http://127.0.0.1:{port}/oauth/callback")],
                people,
                seed: 7,
            })
            .await
            .unwrap();
        let echo_url = start_echo().await;
        let dir = TempDir::new();
        let mut config = host_config_with(
            port,
            &dir.0,
            &emulator.url(),
            &demo.client_id,
            &echo_url,
            &["k1"],
            "",
        );
        config.push_str(extra);
        let host = Host::start(&dir.0, port, &config, &demo.client_secret, &[("k1", KEY_1)]).await;
        World {
            emulator,
            control,
            demo,
            echo_url,
            host,
            dir,
        }
    }

    /// Runs the whole connect flow in a fresh browser and checks it succeeded.
    pub async fn connect(&self, integration: &str, connection_id: &str) {
        let session = self
            .host
            .create_session(integration, connection_id, None)
            .await;
        let mut browser = Browser::new();
        let (response, _) = browser
            .follow(session["connect_url"].as_str().unwrap())
            .await;
        let status = response.status();
        let page = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Connected"), "{page}");
    }

    /// Kills the host with SIGKILL (no shutdown of any kind) and starts it again with the same
    /// port, config and store. The old host's logs.
    pub async fn kill_and_restart(&mut self) -> String {
        self.restart_with(|config| config).await
    }

    /// Kills the host with SIGKILL and starts it again with the same port and store and the
    /// config `edit` makes of the current one. The old host's logs.
    pub async fn restart_with(&mut self, edit: impl FnOnce(String) -> String) -> String {
        let config = edit(std::fs::read_to_string(self.dir.0.join("plugboard.toml")).unwrap());
        let port: u16 = self.host.url.rsplit(':').next().unwrap().parse().unwrap();
        let logs = self.host.kill();
        self.host = Host::start(
            &self.dir.0,
            port,
            &config,
            &self.demo.client_secret,
            &[("k1", KEY_1)],
        )
        .await;
        logs
    }

    pub async fn token_requests(&self, grant: &str) -> u64 {
        let counters = self.control.counters().await.unwrap();
        counters.token_requests.get(grant).copied().unwrap_or(0)
    }
}

pub fn host_config(
    port: u16,
    dir: &Path,
    emulator: &str,
    client_id: &str,
    echo: &str,
    key_ids: &[&str],
) -> String {
    host_config_with(port, dir, emulator, client_id, echo, key_ids, SYNCS_OFF)
}

pub fn host_config_with(
    port: u16,
    dir: &Path,
    emulator: &str,
    client_id: &str,
    echo: &str,
    key_ids: &[&str],
    extra: &str,
) -> String {
    let keys: Vec<String> = key_ids
        .iter()
        .map(|id| format!("{id} = \"${{KEY_{}}}\"", id.to_uppercase()))
        .collect();
    format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
allowed_return_origins = ["http://localhost:3000"]

[store]
url = "sqlite://{db}"

[security]
encryption_keys = {{ {keys} }}
active_key = "{active}"

[[providers]]
builtin = "microsoft-people"

[integrations.microsoft]
provider = "microsoft-people"
client_id = "{client_id}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.microsoft.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.admin]
provider = "microsoft-people"
client_id = "{client_id}"
client_secret = "${{CLIENT_SECRET}}"
scopes = ["People.Read.All", "User.Read", "offline_access"]

[integrations.admin.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
admin_consent_url = "{emulator}/{{tenant}}/v2.0/adminconsent"
api_base_url = "{emulator}"

[integrations.echo]
provider = "microsoft-people"
client_id = "{client_id}"
client_secret = "${{CLIENT_SECRET}}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.echo.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{echo}/api"
{extra}"#,
        db = dir.join("plugboard.db").display(),
        keys = keys.join(", "),
        active = key_ids.last().unwrap(),
    )
}

/// The `plugboard` binary as a child process, with its logs captured.
pub struct Host {
    child: Child,
    pub url: String,
    pub db_path: PathBuf,
    logs: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Host {
    /// Writes the config and starts `plugboard serve`; secrets come from the environment, the
    /// API key as a `PLUGBOARD__…` override and the others through `${…}` references.
    pub async fn start(
        dir: &Path,
        port: u16,
        config: &str,
        client_secret: &str,
        keys: &[(&str, &str)],
    ) -> Host {
        let config_path = dir.join("plugboard.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard"));
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .env("PLUGBOARD__SECURITY__SECRET_KEY", API_KEY)
            .env(
                "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
                client_secret,
            )
            .env("CLIENT_SECRET", client_secret)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (id, key) in keys {
            command.env(format!("KEY_{}", id.to_uppercase()), key);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let host = Host {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db_path: dir.join("plugboard.db"),
            logs,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        host.wait_healthy().await;
        host
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.http.get(format!("{}/health", self.url)).send().await
                && response.status().is_success()
            {
                assert_eq!(
                    response.json::<Value>().await.unwrap(),
                    json!({"status": "ok"})
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "plugboard did not become healthy; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// A request with the API key.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
    }

    pub fn proxy(
        &self,
        method: Method,
        integration: &str,
        connection_id: &str,
        path: &str,
    ) -> RequestBuilder {
        self.api(method, &format!("/proxy{path}"))
            .header("Integration", integration)
            .header("Connection-Id", connection_id)
    }

    pub async fn create_session(
        &self,
        integration: &str,
        connection_id: &str,
        return_url: Option<&str>,
    ) -> Value {
        let mut body = json!({"integration": integration, "connection_id": connection_id});
        if let Some(url) = return_url {
            body["return_url"] = json!(url);
        }
        let response = self
            .api(Method::POST, "/connect/sessions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn credentials(&self, integration: &str, connection_id: &str) -> Value {
        let response = self
            .api(
                Method::GET,
                &format!("/connections/{connection_id}?integration={integration}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Kills the process (SIGKILL on Unix) and waits for it to exit.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }

    /// Stops the process and waits for it to exit.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An end user's browser: follows redirects one at a time and keeps cookies per host.
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Response {
        let host = host_of(url);
        let mut request = self.http.get(url);
        if let Some(jar) = self.cookies.get(&host).filter(|jar| !jar.is_empty()) {
            let header: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request = request.header(COOKIE, header.join("; "));
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies
                .entry(host.clone())
                .or_default()
                .insert(name.to_owned(), value.to_owned());
        }
        response
    }

    /// Follows redirects; the final response and every URL visited.
    pub async fn follow(&mut self, url: &str) -> (Response, Vec<String>) {
        let mut visited = vec![url.to_owned()];
        let mut response = self.get(url).await;
        while response.status().is_redirection() {
            let next = location(&response);
            assert!(visited.len() < 10, "redirect loop: {visited:?}");
            visited.push(next.clone());
            response = self.get(&next).await;
        }
        (response, visited)
    }

    /// Follows redirects from a connect link until the provider sends the browser to the host's
    /// callback, and returns that callback URL without visiting it.
    pub async fn until_callback(&mut self, url: &str) -> String {
        let mut next = url.to_owned();
        for _ in 0..10 {
            let response = self.get(&next).await;
            assert!(
                response.status().is_redirection(),
                "expected a redirect from {next}: {}",
                response.status()
            );
            next = location(&response);
            if next.contains("/oauth/callback") {
                return next;
            }
        }
        panic!("never reached the callback");
    }
}

fn location(response: &Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

fn host_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
}

/// Starts a server that answers every request with its body, and describes the request in
/// headers: `x-echo-method`, `x-echo-uri`, `x-echo-headers` (the names received) and
/// `x-echo-authorization`.
pub async fn start_echo() -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, Method as AxumMethod, Uri};
    async fn echo(
        method: AxumMethod,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (HeaderMap, Bytes) {
        let mut out = HeaderMap::new();
        out.insert(
            "x-echo-method",
            HeaderValue::from_str(method.as_str()).unwrap(),
        );
        out.insert(
            "x-echo-uri",
            HeaderValue::from_str(&uri.to_string()).unwrap(),
        );
        let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        out.insert(
            "x-echo-headers",
            HeaderValue::from_str(&names.join(",")).unwrap(),
        );
        if let Some(auth) = headers.get("authorization") {
            out.insert("x-echo-authorization", auth.clone());
        }
        if let Some(kind) = headers.get("content-type") {
            out.insert("content-type", kind.clone());
        }
        (out, body)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(echo)
        .layer(axum::extract::DefaultBodyLimit::disable());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Runs one statement on the host's database, as a test's stand-in for time passing.
pub async fn execute_sql(db_path: &Path, statement: &'static str) {
    use sqlx::ConnectOptions;
    let mut db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_path)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut db).await.unwrap();
}

/// Sends one raw HTTP/1.1 request, so paths reach the host exactly as written (HTTP clients
/// normalise `..` and `%2e` away). Returns the status and body.
pub async fn raw_get(base: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The secret the tests' `[webhooks]` configs sign events with.
pub const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

/// One POST that reached a test's webhook receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub signature: String,
    pub timestamp: String,
    pub body: String,
    pub arrived: Instant,
}

/// What a test's webhook receiver got, in arrival order.
pub type Received = Arc<Mutex<Vec<Delivery>>>;

/// A webhook receiver on a loopback port that takes every delivery (204): its URL and what
/// arrived.
pub async fn webhook_receiver() -> (String, Received) {
    webhook_receiver_answering(|_| async { StatusCode::NO_CONTENT }).await
}

/// A webhook receiver whose answer to each delivery `answer` gives, from the body. A delivery
/// is kept as it arrives, before `answer` runs, so a test can hold an answer back and look at
/// the host while its delivery is in flight.
pub async fn webhook_receiver_answering<F, A>(answer: F) -> (String, Received)
where
    F: Fn(String) -> A + Clone + Send + Sync + 'static,
    A: Future<Output = StatusCode> + Send + 'static,
{
    use axum::http::HeaderMap;
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let sink = sink.clone();
            let answer = answer.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                sink.lock().unwrap().push(Delivery {
                    signature: header("x-plugboard-signature"),
                    timestamp: header("x-plugboard-timestamp"),
                    body: body.clone(),
                    arrived: Instant::now(),
                });
                answer(body).await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// HMAC-SHA256, written out here so the tests do not trust the host's own implementation.
fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook events of a type that arrived, in arrival order (a retried event once per
/// delivery), each checked for a valid signature and timestamp.
pub fn events(received: &Received, kind: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|delivery| {
            let body = &delivery.body;
            assert_eq!(
                delivery.signature,
                format!(
                    "sha256={}",
                    hmac_hex(WEBHOOK_SECRET.as_bytes(), body.as_bytes())
                ),
                "signature of {body}"
            );
            assert!(
                delivery.timestamp.parse::<i64>().is_ok(),
                "timestamp {}",
                delivery.timestamp
            );
            serde_json::from_str::<Value>(body).unwrap()
        })
        .filter(|event| event["type"] == kind)
        .collect()
}

impl World {
    /// Another `plugboard serve` on the world's store with the world's config, on a port of its
    /// own: a replica. Connect flows go through the world's host, whose callback the emulator
    /// knows; everything else works through either.
    pub async fn start_replica(&self) -> Host {
        let config = std::fs::read_to_string(self.dir.0.join("plugboard.toml")).unwrap();
        let own = self.host.url.trim_start_matches("http://");
        let port = free_port();
        // `bind` and `public_url`, each ending in the port and a quote.
        let config = config.replace(&format!("{own}\""), &format!("127.0.0.1:{port}\""));
        let dir = self.dir.0.join(format!("replica-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut replica = Host::start(
            &dir,
            port,
            &config,
            &self.demo.client_secret,
            &[("k1", KEY_1)],
        )
        .await;
        replica.db_path = self.host.db_path.clone();
        replica
    }
}

impl Host {
    /// Asks for a run of the microsoft integration's people sync for the connection.
    pub async fn trigger(&self, connection_id: &str, mode: &str) {
        let response = self
            .api(Method::POST, "/syncs/trigger")
            .json(&json!({"integration": "microsoft", "connection_id": connection_id, "syncs": ["people"], "mode": mode}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    /// The latest runs of the microsoft integration's people sync for the connection, newest
    /// first, with their logs (`GET /syncs/runs`).
    pub async fn runs(&self, connection_id: &str, limit: u32) -> Vec<Value> {
        let response = self
            .api(
                Method::GET,
                &format!("/syncs/runs?integration=microsoft&connection_id={connection_id}&sync=people&limit={limit}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["runs"].as_array().unwrap().clone()
    }
}

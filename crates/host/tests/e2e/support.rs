//! Starts the real `plugboard` binary against an in-test emulator, both over HTTP on loopback,
//! and drives them like a caller's backend and an end user's browser would.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, ExpireTokens, FaultKind,
    FaultRule, RunningEmulator, ThrottleSettings, UpdateSettings,
};
use plugboard_store::crypto::KeyRing;
use plugboard_store::testing::TestDatabase;
use plugboard_store::{Location, Store};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretBox;
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
///
/// Chosen below Linux's ephemeral range (32768–60999 by default), from which the kernel picks
/// the local port of every outgoing connection: a port from there, free when chosen, could be
/// taken by one of the tests' own client connections before the host binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Each test process starts somewhere else in the range, and takes the ports in turn.
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % SPAN;
    loop {
        let n = TAKEN.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(FIRST + (start + n) % SPAN).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The emulator, its demo tenant, an echo server, a scratch directory and a running host.
pub struct World {
    /// The PostgreSQL database of a world on PostgreSQL (dropped by [`World::finish`]); `None`
    /// on SQLite, the host's file in `dir`.
    pub database: Option<TestDatabase>,
    /// The relay the host reaches PostgreSQL through, when the test cuts it off.
    pub relay: Option<Relay>,
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
        Self::start_on(StoreKind::Sqlite, people, extra).await
    }

    /// [`World::start_with`], with the host's store on `kind`.
    pub async fn start_on(kind: StoreKind, people: usize, extra: &str) -> World {
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
        let database = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres | StoreKind::PostgresThroughRelay => {
                Some(TestDatabase::create().await)
            }
        };
        let relay = match kind {
            StoreKind::PostgresThroughRelay => Some(Relay::start(postgres_address()).await),
            _ => None,
        };
        let mut config = host_config_with(
            port,
            &store_url(database.as_ref(), relay.as_ref(), &dir.0),
            &emulator.url(),
            &demo.client_id,
            &echo_url,
            &["k1"],
            "",
        );
        config.push_str(extra);
        let host = Host::start(&dir.0, port, &config, &demo.client_secret, &[("k1", KEY_1)]).await;
        World {
            database,
            relay,
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
        let link = self
            .host
            .connect_link(integration, connection_id, None)
            .await;
        self.connect_with_link(&link).await;
    }

    /// Opens a connect link in a fresh browser, presses the connect page's Continue, follows
    /// the whole flow and checks it succeeded.
    pub async fn connect_with_link(&self, link: &str) {
        let (response, _) = Browser::new().connect_through(link).await;
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
        self.restart_on(&config, &[("k1", KEY_1)]).await
    }

    /// Kills the host with SIGKILL and starts it again with the same port and store, the
    /// config `config` and the encryption keys `keys` in its environment. The old host's logs.
    /// Tests that change providers, integrations or keys all restart this one way.
    pub async fn restart_on(&mut self, config: &str, keys: &[(&str, &str)]) -> String {
        let port = self.host.port();
        let logs = self.host.kill();
        self.host = Host::start(&self.dir.0, port, config, &self.demo.client_secret, keys).await;
        logs
    }

    /// The world's host config with the encryption keys `key_ids` (the last one active) and
    /// `extra` at its end, for a restart that changes them.
    pub fn config_with(&self, key_ids: &[&str], extra: &str) -> String {
        host_config_with(
            self.host.port(),
            &store_url(self.database.as_ref(), self.relay.as_ref(), &self.dir.0),
            &self.emulator.url(),
            &self.demo.client_id,
            &self.echo_url,
            key_ids,
            extra,
        )
    }

    /// How many token requests of the grant type the emulator has answered since its
    /// counters were last reset.
    pub async fn token_requests(&self, grant: &str) -> u64 {
        let counters = self.control.counters().await.unwrap();
        counters.token_requests.get(grant).copied().unwrap_or(0)
    }

    /// How many requests for the Graph path (without its query) the emulator has answered
    /// since its counters were last reset: what a test reads to see what reached the provider.
    pub async fn graph_requests(&self, path: &str) -> u64 {
        let counters = self.control.counters().await.unwrap();
        counters.graph_requests.get(path).copied().unwrap_or(0)
    }

    /// Expires every access token of the demo user at the emulator, so the host's next use of
    /// the connection must refresh; checks that there was one to expire.
    pub async fn expire_access_tokens(&self) {
        let expired = self
            .control
            .expire_tokens(&ExpireTokens {
                user: Some(self.demo.user_id.clone()),
                ..ExpireTokens::default()
            })
            .await
            .unwrap();
        assert!(expired.access_tokens > 0);
    }

    /// Revokes the demo user's grant at the emulator and expires the access tokens it issued,
    /// so the host's next use of the connection must refresh, and that refresh is refused.
    pub async fn revoke_grant(&self) {
        self.control
            .revoke_refresh_tokens(&self.demo.user_id)
            .await
            .unwrap();
        self.expire_access_tokens().await;
    }

    /// Makes the emulator fail the next `count` requests whose path starts with `path_prefix`
    /// (of any method when `method` is `None`) in the way `kind` says.
    pub async fn add_fault(
        &self,
        method: Option<&str>,
        path_prefix: &str,
        count: u32,
        kind: FaultKind,
    ) {
        self.control
            .add_fault(&FaultRule {
                method: method.map(str::to_owned),
                path_prefix: path_prefix.to_owned(),
                count,
                kind,
            })
            .await
            .unwrap();
    }

    /// Makes the emulator's token endpoint answer the next `count` token requests with a 503
    /// and no `Retry-After`: a provider that is down for a while.
    pub async fn token_endpoint_unavailable(&self, count: u32) {
        let unavailable = FaultKind::Status {
            status: 503,
            retry_after_secs: None,
        };
        self.add_fault(
            Some("POST"),
            "/common/oauth2/v2.0/token",
            count,
            unavailable,
        )
        .await;
    }

    /// Makes every Graph answer of the emulator take `ms` milliseconds longer, so a sync run
    /// lasts long enough for a test to act while it runs (0 to end that).
    pub async fn set_graph_latency(&self, ms: u64) {
        self.control
            .update_settings(&UpdateSettings {
                graph_latency_ms: Some(ms),
                ..UpdateSettings::default()
            })
            .await
            .unwrap();
    }

    /// Removes the people with these ids from the demo user's people at the emulator.
    pub async fn remove_people(&self, ids: &[String]) {
        for id in ids {
            self.control
                .remove_person(&self.demo.user_id, id)
                .await
                .unwrap();
        }
    }

    /// Queues one fault for each of the next requests for the demo user's people pages, in
    /// order: how the sync tests make a crawl meet trouble on a chosen page.
    pub async fn fault_people_pages(&self, kinds: impl IntoIterator<Item = FaultKind>) {
        for kind in kinds {
            self.add_fault(Some("GET"), "/v1.0/me/people", 1, kind)
                .await;
        }
    }

    /// `GET` of an emulator Graph path with an access token, straight to the emulator (not
    /// through the host): what the provider itself answers, as JSON.
    pub async fn graph_direct(&self, path: &str, token: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.emulator.url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }
}

/// The `[server]` line of every test host's configuration that lifts the per-connection cap
/// on proxied requests: refresh storms send hundreds of concurrent requests on one connection.
/// The cap itself has its own tests (limits.rs), which replace this line.
pub const STORM_CAP: &str = "max_proxy_requests_per_connection = 1000\n";

pub fn host_config_with(
    port: u16,
    store_url: &str,
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
management_bind = "127.0.0.1:{management}"
public_url = "http://127.0.0.1:{port}"
allowed_return_origins = ["http://localhost:3000"]
{STORM_CAP}
[store]
url = "{store_url}"

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
        keys = keys.join(", "),
        active = key_ids.last().unwrap(),
        management = free_port(),
    )
}

/// `[server] management_bind` of a host's configuration.
fn management_address(config: &str) -> Option<String> {
    let config: toml::Table = config.parse().ok()?;
    Some(
        config
            .get("server")?
            .get("management_bind")?
            .as_str()?
            .to_owned(),
    )
}

/// The `plugboard` binary as a child process, with its logs captured.
pub struct Host {
    child: Child,
    pub url: String,
    /// Where metrics and health checks are served (`[server] management_bind`), if anywhere.
    pub management_url: Option<String>,
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
        Self::start_with_env(dir, port, config, client_secret, keys, &[]).await
    }

    /// [`Host::start`] with `env` added to the process's environment: test hooks such as
    /// `PLUGBOARD_CRASH_AT`.
    pub async fn start_with_env(
        dir: &Path,
        port: u16,
        config: &str,
        client_secret: &str,
        keys: &[(&str, &str)],
        env: &[(&str, &str)],
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
        command.envs(env.iter().copied());
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
            management_url: management_address(config).map(|address| format!("http://{address}")),
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

    /// The port the host listens on, which a restart keeps.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
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

    /// `POST /connect/sessions`, checked to be created: the session.
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
        let (status, session) = self.post("/connect/sessions", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        session
    }

    /// A new connect session's link, the one an application hands its user's browser.
    pub async fn connect_link(
        &self,
        integration: &str,
        connection_id: &str,
        return_url: Option<&str>,
    ) -> String {
        let session = self
            .create_session(integration, connection_id, return_url)
            .await;
        session["connect_url"].as_str().unwrap().to_owned()
    }

    /// `GET /connections/{id}`, checked to succeed: the connection with its credentials.
    pub async fn credentials(&self, integration: &str, connection_id: &str) -> Value {
        self.get_json(&format!(
            "/connections/{connection_id}?integration={integration}"
        ))
        .await
    }

    /// The connection's current access token, as `GET /connections/{id}` hands it out.
    pub async fn access_token(&self, integration: &str, connection_id: &str) -> String {
        self.credentials(integration, connection_id).await["credentials"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /connections/{id}?refresh=true`, a forced token refresh: the status and the body.
    pub async fn force_refresh(
        &self,
        integration: &str,
        connection_id: &str,
    ) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/connections/{connection_id}?integration={integration}&refresh=true"),
        )
        .await
    }

    /// A `GET` of an API route with the API key, checked to answer 200: its JSON body. For
    /// the many reads whose status is not what the test is about.
    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A request without a body to an API route with the API key: the status and the body.
    pub async fn call(&self, method: Method, path: &str) -> (StatusCode, Value) {
        reply(self.api(method, path)).await
    }

    /// A `POST` of a JSON body to an API route with the API key: the status and the body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        reply(self.api(Method::POST, path).json(body)).await
    }

    /// A proxied `GET` for the connection, with no header of the caller's own: the status and
    /// the body.
    pub async fn proxy_get(
        &self,
        integration: &str,
        connection_id: &str,
        path: &str,
    ) -> (StatusCode, Value) {
        reply(self.proxy(Method::GET, integration, connection_id, path)).await
    }

    /// The process id of the running `plugboard serve`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP: `plugboard serve` reads its configuration file again.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGTERM, as a service manager stops a service.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// How the process exited, if it does within `within`.
    pub async fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the logs contain `text` (at most 30 seconds): the logs then.
    pub async fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = self.logs();
            if logs.contains(text) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "no `{text}` in the logs:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        self.send(url, self.http.get(url)).await
    }

    /// Posts a form, as a browser submits one.
    pub async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Response {
        self.send(url, self.http.post(url).form(fields)).await
    }

    /// Sends the request to `url` with this browser's cookies for its host, and keeps the
    /// cookies the answer sets.
    async fn send(&mut self, url: &str, mut request: RequestBuilder) -> Response {
        let host = host_of(url);
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
        let response = self.get(url).await;
        self.follow_from(url, response).await
    }

    /// Follows the redirects that `response`, the answer to `url`, starts.
    async fn follow_from(&mut self, url: &str, mut response: Response) -> (Response, Vec<String>) {
        let mut visited = vec![url.to_owned()];
        while response.status().is_redirection() {
            let next = location(&response);
            assert!(visited.len() < 10, "redirect loop: {visited:?}");
            visited.push(next.clone());
            response = self.get(&next).await;
        }
        (response, visited)
    }

    /// Opens a connect link, checks that it shows the connect page, and presses its Continue:
    /// the answer (a redirect to the provider) and the URL the form posted to.
    pub async fn press_continue(&mut self, link: &str) -> (Response, String) {
        let page = self.get(link).await;
        let status = page.status();
        let page = page.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "the connect page: {page}");
        let action = html_unescape(attribute_after(&page, "<form method=\"post\" action=\""));
        let token = html_unescape(attribute_after(&page, "name=\"session_token\" value=\""));
        let response = self
            .post_form(&action, &[("session_token".to_owned(), token)])
            .await;
        (response, action)
    }

    /// Opens a connect link, presses Continue and follows the flow to its end: the final
    /// response and every URL visited after the connect page.
    pub async fn connect_through(&mut self, link: &str) -> (Response, Vec<String>) {
        let (response, action) = self.press_continue(link).await;
        self.follow_from(&action, response).await
    }

    /// Opens a connect link and presses Continue, then follows redirects until the provider
    /// sends the browser to the host's callback, and returns that callback URL without
    /// visiting it.
    pub async fn until_callback(&mut self, link: &str) -> String {
        let (response, mut next) = self.press_continue(link).await;
        let mut response = Some(response);
        for _ in 0..10 {
            let response = match response.take() {
                Some(response) => response,
                None => self.get(&next).await,
            };
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

/// Sends the request and reads the whole answer: its status and its body as JSON (a body
/// that is not JSON, an empty one included, as a JSON string of its text). Most tests look
/// at both, and a failed assertion can then show the body.
pub async fn reply(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Awaits requests sent at once (tasks answering with [`reply`]'s status and body) and checks
/// every one got `expected`: their bodies. For the storms that show single-flight refresh.
pub async fn all_answered(
    requests: impl IntoIterator<Item = tokio::task::JoinHandle<(StatusCode, Value)>>,
    expected: StatusCode,
) -> Vec<Value> {
    let mut bodies = Vec::new();
    for outcome in futures::future::join_all(requests).await {
        let (status, body) = outcome.unwrap();
        assert_eq!(status, expected, "{body}");
        bodies.push(body);
    }
    bodies
}

/// An attribute's value as written in the page: the text from the first `marker` (which ends
/// with the attribute's opening quote) to the next quote.
pub fn attribute_after<'p>(page: &'p str, marker: &str) -> &'p str {
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in {page}"))
        + marker.len();
    let length = page[start..].find('"').expect("a closed attribute");
    &page[start..start + length]
}

/// Text as a browser reads it from HTML escaped by the pages' templates (askama writes
/// `"&'<>` as numeric references).
pub fn html_unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
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

/// `plugboard <args> --config <config>` with the API key every config needs in the
/// environment: the one way the tests run the binary's commands other than `serve`.
pub fn plugboard_command(args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("PLUGBOARD__SECURITY__SECRET_KEY", API_KEY);
    command
}

/// Writes `plugboard.toml` into `dir`: the server, store and key sections any command needs,
/// then `rest` (`[[providers]]` entries, integrations). Its path.
pub fn providers_config(dir: &Path, rest: &str) -> PathBuf {
    let path = dir.join("plugboard.toml");
    let text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:3003\"\n\n\
         [store]\nurl = \"sqlite://{db}\"\n\n\
         [security]\nencryption_keys = {{ k1 = \"{KEY_1}\" }}\nactive_key = \"k1\"\n\n{rest}\n",
        db = dir.join("plugboard.db").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Which backend a world's store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
    /// PostgreSQL, reached by the host through a [`Relay`] the test can cut.
    PostgresThroughRelay,
}

/// The `[store] url` of a world: its PostgreSQL database (through the relay, if any), or a
/// SQLite file in `dir`.
fn store_url(database: Option<&TestDatabase>, relay: Option<&Relay>, dir: &Path) -> String {
    match (database, relay) {
        (Some(database), Some(relay)) => {
            let mut url = url::Url::parse(database.url()).unwrap();
            url.set_port(Some(relay.port)).unwrap();
            url.to_string()
        }
        (Some(database), None) => database.url().to_owned(),
        (None, _) => format!("sqlite://{}", dir.join("plugboard.db").display()),
    }
}

/// Where the test PostgreSQL listens.
fn postgres_address() -> String {
    let url = url::Url::parse(&plugboard_store::testing::postgres_url()).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    )
}

/// A TCP relay on loopback in front of a server, which a test can cut off (every open
/// connection dropped, new ones refused) and restore: the database going away and coming back.
pub struct Relay {
    pub port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (is_cut, tasks) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay {
            port,
            cut,
            open,
            accept,
        }
    }

    /// Drops every relayed connection and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl World {
    /// The world's store, opened from this test as another process would: for what the API
    /// does not offer, such as time passing for a connection's tokens.
    pub async fn store(&self) -> Arc<dyn Store> {
        let location = match &self.database {
            Some(database) => Location::Postgres {
                url: database.url().to_owned(),
                pool_size: 2,
            },
            None => Location::Sqlite {
                path: self.dir.0.join("plugboard.db"),
            },
        };
        let key: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(KEY_1)
            .unwrap()
            .try_into()
            .unwrap();
        let keys = BTreeMap::from([("k1".to_owned(), SecretBox::new(Box::new(key)))]);
        let ring = KeyRing::new(&keys, "k1").unwrap();
        plugboard_store::open(&location, Arc::new(ring), true)
            .await
            .unwrap()
    }

    /// Stops the host and drops the world's PostgreSQL database, if it has one.
    pub async fn finish(mut self) {
        self.host.kill();
        self.relay.take();
        if let Some(database) = self.database.take() {
            database.drop_database().await;
        }
    }
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

/// A `[webhooks]` section sending events to `url`, signed with [`WEBHOOK_SECRET`].
pub fn webhooks_section(url: &str) -> String {
    format!("\n[webhooks]\nurl = \"{url}\"\nsecret = \"{WEBHOOK_SECRET}\"\n")
}

/// One POST that reached a test's webhook receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub signature: String,
    pub timestamp: String,
    pub event_id: String,
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
                    event_id: header("x-plugboard-event-id"),
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
            let event = serde_json::from_str::<Value>(body).unwrap();
            // The same on every attempt at the event, since the body is.
            assert_eq!(
                event["id"],
                delivery.event_id.as_str(),
                "event id of {body}"
            );
            event
        })
        .filter(|event| event["type"] == kind)
        .collect()
}

/// Waits until `count` events of `kind` arrived, then a little longer to see that no
/// duplicate follows; the events.
pub async fn expect_events(received: &Received, kind: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(received, kind).len() < count {
        assert!(
            Instant::now() < deadline,
            "{kind}: {:?}",
            events(received, kind)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let arrived = events(received, kind);
    assert_eq!(arrived.len(), count, "{kind}: {arrived:?}");
    arrived
}

impl World {
    /// Another `plugboard serve` on the world's store with the world's config, on a port of its
    /// own: a replica. Connect flows go through the world's host, whose callback the emulator
    /// knows; everything else works through either.
    pub async fn start_replica(&self) -> Host {
        let config = std::fs::read_to_string(self.dir.0.join("plugboard.toml")).unwrap();
        let own = self.host.url.trim_start_matches("http://");
        let port = free_port();
        // `bind` and `public_url`, each ending in the port and a quote; and a management
        // listener of its own.
        let mut config = config.replace(&format!("{own}\""), &format!("127.0.0.1:{port}\""));
        if let Some(management) = &self.host.management_url {
            let own = management.trim_start_matches("http://");
            config = config.replace(own, &format!("127.0.0.1:{}", free_port()));
        }
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
        let (status, body) = self
            .post(
                "/syncs/trigger",
                &json!({"integration": "microsoft", "connection_id": connection_id, "syncs": ["people"], "mode": mode}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    /// The latest runs of the microsoft integration's people sync for the connection, newest
    /// first, with their logs (`GET /syncs/runs`).
    pub async fn runs(&self, connection_id: &str, limit: u32) -> Vec<Value> {
        let body = self
            .get_json(&format!(
                "/syncs/runs?integration=microsoft&connection_id={connection_id}&sync=people&limit={limit}"
            ))
            .await;
        body["runs"].as_array().unwrap().clone()
    }

    /// The latest run of the people sync for the connection, with its log lines.
    pub async fn latest_run(&self, connection_id: &str) -> Value {
        self.runs(connection_id, 1).await[0].clone()
    }
}

impl World {
    /// Kills the host with SIGKILL and starts it again with the same port, config and store and
    /// `env` added to its environment (a test hook such as `PLUGBOARD_CRASH_AT`). The old
    /// host's logs.
    pub async fn restart_with_env(&mut self, env: &[(&str, &str)]) -> String {
        let config = std::fs::read_to_string(self.dir.0.join("plugboard.toml")).unwrap();
        let port = self.host.port();
        let logs = self.host.kill();
        let (secret, keys) = (&self.demo.client_secret, &[("k1", KEY_1)]);
        self.host = Host::start_with_env(&self.dir.0, port, &config, secret, keys, env).await;
        logs
    }
}

impl Host {
    /// Waits (at most 30 seconds) for the process to end by itself, as a crash point ends it:
    /// how it ended.
    pub async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the host did not stop; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

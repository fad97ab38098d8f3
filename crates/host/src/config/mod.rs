//! The host's configuration: `plugboard.toml`, overridden key by key by `PLUGBOARD__SECTION__KEY`
//! environment variables, with `${VAR}` references in the file's values.
//!
//! Loading never stops at the first problem: every unknown key, wrong type and broken rule is
//! collected, each naming its key, where the value came from (the file or the variable) and
//! what was expected, so one run of `plugboard check-config` shows everything to fix. Secret
//! values are never repeated in messages.

mod certificates;
mod credentials;
#[cfg(test)]
mod fuzz;
mod integrations;
mod interpolate;
mod providers;
mod read;
mod server_limits;
#[cfg(test)]
mod tests;
mod ui;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use config::{Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use crate::listener::Limits;
use crate::registry::Registry;
use integrations::read_integrations;
use plugboard_core::oauth::NamedCredential;
use providers::read_providers;
use read::{Ctx, ENV_PREFIX, Table};
use server_limits::{read_limits, read_max_body_size, read_proxy_limits};
pub use ui::UiConfig;

/// How far ahead an expiring client credential (a secret or a certificate) is warned of.
pub const SECRET_EXPIRY_WARNING_DAYS: i64 = 30;
/// Days until a client credential — a secret's configured date, a certificate's end date —
/// expires (negative once it has) when that is within [`SECRET_EXPIRY_WARNING_DAYS`]: when the
/// operator must be told, by `check-config`, the server's log and the dashboard alike (the
/// webhook notices are `credential_watch`'s).
pub fn secret_expiring(expires: NaiveDate, today: NaiveDate) -> Option<i64> {
    let days = (expires - today).num_days();
    (days <= SECRET_EXPIRY_WARNING_DAYS).then_some(days)
}

/// Whether `scopes` leave out `offline_access` although the provider offers it: the
/// integration's connections then get no refresh token, and need a person to reconnect when
/// their access token expires.
pub fn misses_offline_access(oauth: &plugboard_core::spec::OAuth2Spec, scopes: &[String]) -> bool {
    oauth.scope("offline_access").is_some() && !scopes.iter().any(|s| s == "offline_access")
}

/// A bearer key shorter than this is guessable.
const MIN_SECRET_KEY_LEN: usize = 32;

#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// `[store] encrypt_records`: whether record payloads are sealed at rest (default true).
    pub encrypt_records: bool,
    pub security: SecurityConfig,
    pub integrations: BTreeMap<String, IntegrationConfig>,
    /// Where sync and connection events are POSTed, if anywhere.
    pub webhooks: Option<WebhooksConfig>,
    pub log: LogConfig,
    /// `[ui]`: how the end-user pages present the application.
    pub ui: UiConfig,
}

/// `[log]`: how log lines are written to stderr (their level comes from `RUST_LOG`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `[log] format`: lines for people, or one JSON object per line for a log pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[webhooks]`: events are signed with `secret` (HMAC-SHA256 of the body).
#[derive(Clone)]
pub struct WebhooksConfig {
    pub url: Url,
    pub secret: SecretString,
}

impl fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhooksConfig")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// `[integrations.<name>.syncs.<sync>]`: the integration's settings for one of the provider's
/// syncs; what is absent comes from the provider's spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOverride {
    pub enabled: Option<bool>,
    pub frequency: Option<std::time::Duration>,
    /// Records asked for per page instead of the provider's default, from 1 to the most the
    /// provider serves (its spec's `max_page_size`).
    pub page_size: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Where `/metrics` and `/health/live|ready` are served, apart from the public API so that
    /// they are never exposed with it; none when unset.
    pub management_bind: Option<SocketAddr>,
    /// Where browsers and providers reach this server; no trailing slash.
    pub public_url: Url,
    /// Origins (`scheme://host[:port]`) a connect session's `return_url` may point to.
    pub allowed_return_origins: Vec<String>,
    /// Read timeouts and the cap on open connections, for both listeners.
    pub limits: Limits,
    /// `[server] max_body_size`: the largest request body an API route or a browser form
    /// reads, in bytes; a larger one is answered 413. The proxy streams bodies instead and is
    /// not bound by it.
    pub max_body_size: usize,
    /// `[server] proxy_timeout`: how long a proxied request may take, from sending it to the
    /// last byte of the provider's answer.
    pub proxy_timeout: Duration,
    /// `[server] max_proxy_requests_per_connection`: proxied requests one connection may have
    /// in flight; more are answered 429 at once instead of queueing.
    pub max_proxy_requests_per_connection: usize,
}

impl ServerConfig {
    /// The one redirect URI registered with every provider.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/oauth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// `[store] url` (and `pool_size`): where the store lives.
pub type StoreConfig = plugboard_store::Location;

/// Connections each replica keeps to PostgreSQL unless `[store] pool_size` says otherwise.
const DEFAULT_POOL_SIZE: u32 = 10;

pub struct SecurityConfig {
    /// The API's bearer key.
    pub secret_key: SecretString,
    pub encryption_keys: BTreeMap<String, SecretBox<[u8; 32]>>,
    pub active_key: String,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field(
                "encryption_keys",
                &self.encryption_keys.keys().collect::<Vec<_>>(),
            )
            .field("active_key", &self.active_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    pub provider: String,
    /// The OAuth client; empty for API-key providers, whose connections bring their own keys.
    pub client_id: String,
    /// What token requests authenticate with, each named by its key with its expiry: the one
    /// `client_secret` (its expiry `client_secret_expires_at`) or `client_certificate` (its
    /// end date) of the short form, or each `[[credentials]]` entry; none for API-key
    /// providers. A certificate's token requests carry an assertion signed with its key.
    pub credentials: Vec<NamedCredential>,
    /// The scopes to request; the provider's default scopes when the config names none.
    pub scopes: Vec<String>,
    pub overrides: Overrides,
    /// Per-sync settings, by sync name.
    pub syncs: BTreeMap<String, SyncOverride>,
}

/// URL templates that replace the provider spec's, e.g. to point at the emulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub admin_consent_url: Option<String>,
    pub api_base_url: Option<String>,
    /// The client assertion's `aud` instead of the token endpoint's URL.
    pub client_assertion_audience: Option<String>,
}

/// A valid configuration and what deserves attention without stopping the server.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The providers `[[providers]]` enables, built in or loaded from plugins: the ones
    /// integrations may use.
    pub providers: Registry,
    pub warnings: Vec<String>,
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "configuration `{}` has {count} {noun}:", self.source)?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  warning: {warning}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// What a load depends on besides the file, so tests control it without touching the process.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Variables for `PLUGBOARD__…` overrides and `${VAR}` references.
    pub env: HashMap<String, String>,
    /// For client secret expiry warnings.
    pub today: NaiveDate,
}

impl LoadOptions {
    /// The process environment and today's date.
    pub fn from_process() -> Self {
        LoadOptions {
            env: std::env::vars().collect(),
            today: chrono::Utc::now().date_naive(),
        }
    }
}

/// Reads and validates the file at `path`, taking built-in providers from `registry` and
/// loading plugins. A plugin's relative path starts from the file's directory.
pub fn load(
    path: &Path,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        problems: vec![format!("cannot read the file: {e}")],
        warnings: Vec::new(),
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    load_in(&source, dir, &text, registry, options)
}

/// Validates configuration text; `source` names it in messages. The text has no file, so a
/// plugin's relative path starts from the working directory.
pub fn load_str(
    source: &str,
    text: &str,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    load_in(source, Path::new(""), text, registry, options)
}

/// Validates configuration text whose relative plugin paths start from `dir`.
fn load_in(
    source: &str,
    dir: &Path,
    text: &str,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let fail = |problems| ConfigError {
        source: source.to_owned(),
        problems,
        warnings: Vec::new(),
    };
    // The config crate's own syntax errors span several lines; toml's span reads better.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(fail(vec![syntax_error(text, &e)]));
    }
    let env: config::Map<String, String> = options
        .env
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}__")))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let merged = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        )
        .build()
        .map_err(|e| fail(vec![e.to_string()]))?;
    let root = config::Source::collect(&merged).map_err(|e| fail(vec![e.to_string()]))?;

    let mut ctx = Ctx::new(source, &options.env).in_dir(dir);
    let mut root = Table::root(root);
    // First, as integrations are checked against the providers' specs.
    let providers = read_providers(&mut ctx, &mut root, registry, dir);
    let config = read_config(&mut ctx, root, registry, &providers, options.today);
    match config {
        Some(config) if ctx.problems.is_empty() => Ok(Loaded {
            config,
            providers,
            warnings: ctx.warnings,
        }),
        _ => Err(ConfigError {
            source: source.to_owned(),
            problems: ctx.problems,
            warnings: ctx.warnings,
        }),
    }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Reads every section, so that problems in all of them are reported together.
fn read_config(
    ctx: &mut Ctx<'_>,
    mut root: Table,
    registry: &Registry,
    providers: &Registry,
    today: NaiveDate,
) -> Option<Config> {
    let server = section(ctx, &mut root, "server").and_then(|t| read_server(ctx, t));
    let mut store_table = section(ctx, &mut root, "store");
    let encrypt_records = match store_table.as_mut().and_then(|t| t.take("encrypt_records")) {
        Some(f) => ctx.boolean(&f),
        None => Some(true),
    };
    let store = store_table.and_then(|t| read_store(ctx, t));
    let security = section(ctx, &mut root, "security").and_then(|t| read_security(ctx, t));
    let integrations = read_integrations(ctx, &mut root, registry, providers, today);
    let webhooks = match root.take("webhooks") {
        None => Some(None),
        Some(f) => ctx.table(f).and_then(|t| read_webhooks(ctx, t)).map(Some),
    };
    let log = section(ctx, &mut root, "log").and_then(|t| read_log(ctx, t));
    let ui = section(ctx, &mut root, "ui").and_then(|t| ui::read_ui(ctx, t));
    root.finish(ctx);
    Some(Config {
        server: server?,
        store: store?,
        encrypt_records: encrypt_records?,
        security: security?,
        integrations: integrations?,
        webhooks: webhooks?,
        log: log?,
        ui: ui?,
    })
}

fn read_log(ctx: &mut Ctx<'_>, mut t: Table) -> Option<LogConfig> {
    let format = match t.take("format") {
        None => Some(LogFormat::default()),
        Some(f) => match ctx.string(&f, "\"text\" or \"json\"")?.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                ctx.error(
                    &f,
                    format!("`{other}` is not a log format: \"text\" or \"json\""),
                );
                None
            }
        },
    };
    t.finish(ctx);
    Some(LogConfig { format: format? })
}

fn read_webhooks(ctx: &mut Ctx<'_>, mut t: Table) -> Option<WebhooksConfig> {
    let url = t
        .required(ctx, "url", "the URL events are POSTed to")
        .and_then(|f| {
            let text = ctx.string(&f, "a URL")?;
            check_url(ctx, &f, &text)
        });
    let secret = t
        .required(ctx, "secret", "the key events are signed with")
        .and_then(|f| {
            let secret = ctx.secret(&f, "a string")?;
            if secret.expose_secret().chars().count() < 16 {
                ctx.error(&f, "is too short: use at least 16 random characters");
                return None;
            }
            Some(secret)
        });
    t.finish(ctx);
    Some(WebhooksConfig {
        url: url?,
        secret: secret?,
    })
}

/// A section's table; a missing section reads as empty, so each of its required keys is
/// reported with the variable that could set it.
fn section(ctx: &mut Ctx<'_>, root: &mut Table, name: &str) -> Option<Table> {
    match root.take(name) {
        Some(field) => ctx.table(field),
        None => Some(Table::empty(name)),
    }
}

fn read_server(ctx: &mut Ctx<'_>, mut t: Table) -> Option<ServerConfig> {
    let bind = t
        .required(ctx, "bind", "an address such as \"127.0.0.1:3003\"")
        .and_then(|f| read_address(ctx, &f));
    let management_bind = match t.take("management_bind") {
        None => Some(None),
        Some(f) => read_address(ctx, &f).and_then(|management| {
            if bind.is_some_and(|bind| shares_port(bind, management)) {
                ctx.error(
                    &f,
                    format!("{management} is where the API listens (server.bind): the management listener needs a port of its own"),
                );
                return None;
            }
            Some(Some(management))
        }),
    };
    let public_url = t
        .required(
            ctx,
            "public_url",
            "a URL such as \"https://plugboard.example.com\"",
        )
        .and_then(|f| {
            let text = ctx.string(&f, "a URL")?;
            let url = check_url(ctx, &f, &text)?;
            if url.query().is_some() || url.fragment().is_some() {
                ctx.error(&f, "must not have a query or fragment");
                return None;
            }
            Some(url)
        });
    let origins = match t.take("allowed_return_origins") {
        None => Some(Vec::new()),
        Some(f) => ctx.strings(&f, "origins").map(|list| {
            let mut origins = Vec::new();
            for origin in list {
                match check_url(ctx, &f, &origin) {
                    Some(url) if url.path() == "/" && url.query().is_none() && origin_only(&origin) => {
                        origins.push(url.origin().ascii_serialization());
                    }
                    Some(_) => ctx.error(
                        &f,
                        format!("`{origin}` must be an origin only, such as \"https://app.example.com\", without a path"),
                    ),
                    None => {}
                }
            }
            origins
        }),
    };
    let limits = read_limits(ctx, &mut t);
    let max_body_size = read_max_body_size(ctx, &mut t);
    let (proxy_timeout, max_proxy_requests) = read_proxy_limits(ctx, &mut t);
    t.finish(ctx);
    Some(ServerConfig {
        bind: bind?,
        management_bind: management_bind?,
        public_url: public_url?,
        allowed_return_origins: origins?,
        limits: limits?,
        max_body_size: max_body_size?,
        proxy_timeout: proxy_timeout?,
        max_proxy_requests_per_connection: max_proxy_requests?,
    })
}

/// Whether two listeners would take the same port on the same interface.
fn shares_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn read_address(ctx: &mut Ctx<'_>, f: &read::Field) -> Option<SocketAddr> {
    let text = ctx.string(f, "an address")?;
    let parsed = text.parse::<SocketAddr>();
    if parsed.is_err() {
        ctx.error(
            f,
            format!("`{text}` is not an IP address and port such as \"127.0.0.1:3003\""),
        );
    }
    parsed.ok()
}

fn origin_only(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(_, rest)| !rest.trim_end_matches('/').contains(['/', '?', '#']))
}

/// An absolute http(s) URL without user information; plain http only on loopback hosts.
fn check_url(ctx: &mut Ctx<'_>, field: &read::Field, text: &str) -> Option<Url> {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            ctx.error(field, format!("`{text}` is not an absolute URL ({e})"));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        ctx.error(field, format!("`{text}` must not carry user information"));
        return None;
    }
    match url.scheme() {
        "https" => Some(url),
        "http" if is_loopback(&url) => Some(url),
        "http" => {
            ctx.error(
                field,
                format!("`{text}` uses plain http://, which is accepted for loopback hosts only (localhost, 127.0.0.1, [::1]); use https://"),
            );
            None
        }
        other => {
            ctx.error(
                field,
                format!("`{text}` has scheme `{other}`; expected https://"),
            );
            None
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn read_store(ctx: &mut Ctx<'_>, mut t: Table) -> Option<StoreConfig> {
    let pool_size = match t.take("pool_size") {
        Some(f) => {
            let size = ctx.integer(&f, "a number of connections, 1 to 1000")?;
            match u32::try_from(size) {
                Ok(size @ 1..=1000) => Some(size),
                _ => {
                    ctx.error(&f, "must be a number of connections from 1 to 1000");
                    return None;
                }
            }
        }
        None => None,
    };
    let expected = format!("a database URL such as {}", plugboard_store::URL_FORMS);
    let store = t.required(ctx, "url", &expected).and_then(|f| {
        let text = ctx.string(&f, "a database URL")?;
        match StoreConfig::from_url(&text, pool_size.unwrap_or(DEFAULT_POOL_SIZE)) {
            Ok(location) => {
                if pool_size.is_some() && matches!(location, StoreConfig::Sqlite { .. }) {
                    ctx.warn(
                        &f,
                        "`pool_size` applies to PostgreSQL only; SQLite ignores it",
                    );
                }
                Some(location)
            }
            Err(problem) => {
                ctx.error(&f, problem);
                None
            }
        }
    });
    t.finish(ctx);
    store
}

/// A key people or programs present to Plugboard (`security.secret_key`, `ui.admin_key`):
/// long enough not to be guessed.
fn read_key(ctx: &mut Ctx<'_>, f: &read::Field) -> Option<SecretString> {
    let key = ctx.secret(f, "a string")?;
    if key.expose_secret().chars().count() < MIN_SECRET_KEY_LEN {
        ctx.error(
            f,
            format!("is too short: use at least {MIN_SECRET_KEY_LEN} random characters, e.g. from `openssl rand -base64 32`"),
        );
        return None;
    }
    Some(key)
}

fn read_security(ctx: &mut Ctx<'_>, mut t: Table) -> Option<SecurityConfig> {
    let secret_key = t
        .required(ctx, "secret_key", "the API's bearer key")
        .and_then(|f| read_key(ctx, &f));
    let keys_expected = "a table of key ids to base64 keys, e.g. { k1 = \"…\" }";
    let keys_field = t.take("encryption_keys");
    if keys_field.is_none() {
        ctx.missing_entries(&t.key_of("encryption_keys"), keys_expected);
    }
    let keys = keys_field
        .and_then(|f| ctx.table(f))
        .and_then(|table| {
            let mut keys = BTreeMap::new();
            let mut ok = true;
            for (id, f) in table.drain() {
                if !is_key_id(&id) {
                    ctx.error(&f, "key ids are 1 to 32 lowercase letters, digits, `-` or `_`");
                    ok = false;
                    continue;
                }
                let Some(text) = ctx.secret(&f, "a base64 string") else {
                    ok = false;
                    continue;
                };
                match STANDARD.decode(text.expose_secret().trim()).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
                    Some(bytes) => {
                        keys.insert(id, SecretBox::new(Box::new(bytes)));
                    }
                    None => {
                        ctx.error(&f, "expected the base64 encoding of exactly 32 random bytes, e.g. from `openssl rand -base64 32`");
                        ok = false;
                    }
                }
            }
            if keys.is_empty() && ok {
                ctx.missing_entries(&t.key_of("encryption_keys"), keys_expected);
                return None;
            }
            ok.then_some(keys)
        });
    let active = t
        .required(
            ctx,
            "active_key",
            "the id of the key that encrypts new data",
        )
        .and_then(|f| {
            let id = ctx.string(&f, "a key id")?;
            if let Some(keys) = &keys
                && !keys.contains_key(&id)
            {
                let known: Vec<&str> = keys.keys().map(String::as_str).collect();
                ctx.error(
                    &f,
                    format!(
                        "`{id}` is not in security.encryption_keys (which has: {})",
                        known.join(", ")
                    ),
                );
                return None;
            }
            Some(id)
        });
    t.finish(ctx);
    Some(SecurityConfig {
        secret_key: secret_key?,
        encryption_keys: keys?,
        active_key: active?,
    })
}

fn is_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

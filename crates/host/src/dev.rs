//! `plugboard dev`: the whole product on one command, against the in-process emulator.
//!
//! The configuration is generated and goes through the same loader and validation as a real
//! one; only its secrets are fresh random values, handed to the loader as if they came from
//! the environment. The store is recreated on every start, because the emulator's world (its
//! app, users and tokens) lives in memory and is new every time too.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use plugboard_emulator::{DemoOptions, Emulator, EmulatorOptions};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::api::{CreateSession, create_session, random_token};
use crate::config::{LoadOptions, load_str};
use crate::registry::Registry;
use crate::server;

const INTEGRATION: &str = "microsoft";
const CONNECTION_ID: &str = "demo";

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub dir: PathBuf,
    pub bind: SocketAddr,
    pub people: usize,
}

pub async fn run(options: DevOptions) -> Result<(), String> {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .map_err(|e| format!("starting the emulator failed: {e:#}"))?;
    let emulator_url = emulator.url();
    // Bound first: the redirect URI registered at the emulator needs the real port.
    let listener = TcpListener::bind(options.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.bind))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = format!("http://{address}");
    let demo = emulator
        .control()
        .setup_demo(DemoOptions {
            redirect_uris: vec![format!("{public_url}/oauth/callback")],
            people: options.people,
            seed: 1,
        })
        .await
        .map_err(|e| format!("setting up the emulator's demo tenant failed: {e:#}"))?;

    let database = fresh_database(&options.dir)?;
    let api_key = format!("pbk_{}", random_token());
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let env = HashMap::from([
        (
            "PLUGBOARD__SECURITY__SECRET_KEY".to_owned(),
            api_key.clone(),
        ),
        (
            "PLUGBOARD__SECURITY__ENCRYPTION_KEYS__DEV".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(key),
        ),
        (
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET".to_owned(),
            demo.client_secret.clone(),
        ),
    ]);
    let text = format!(
        r#"
[server]
bind = "{address}"
management_bind = "127.0.0.1:0"
public_url = "{public_url}"
allowed_return_origins = ["http://localhost:3000"]

[store]
url = "sqlite://{database}"

[security]
active_key = "dev"

[[providers]]
builtin = "microsoft-people"

[integrations.{INTEGRATION}]
provider = "microsoft-people"
client_id = "{client_id}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.{INTEGRATION}.overrides]
authorization_url = "{emulator_url}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator_url}/{{tenant}}/oauth2/v2.0/token"
admin_consent_url = "{emulator_url}/{{tenant}}/v2.0/adminconsent"
api_base_url = "{emulator_url}"

# The people sync starts as soon as the demo account connects, then runs every 15 minutes.
[integrations.{INTEGRATION}.syncs.people]
enabled = true
frequency = "15m"
"#,
        database = database.display(),
        client_id = demo.client_id,
    );
    let registry = Registry::builtin().map_err(|e| e.to_string())?;
    let loaded = load_str(
        "(plugboard dev)",
        &text,
        &registry,
        &LoadOptions {
            env,
            today: chrono::Utc::now().date_naive(),
        },
    )
    .map_err(|e| e.to_string())?;
    let state = server::state(&loaded.config, &loaded.providers).await?;
    let management = server::bind_management(&loaded.config).await?;
    let metrics_url = match &management {
        Some(listener) => format!(
            "http://{}/metrics",
            listener.local_addr().map_err(|e| e.to_string())?
        ),
        None => "(none)".to_owned(),
    };
    let session = create_session(
        &state,
        CreateSession {
            integration: INTEGRATION.to_owned(),
            connection_id: CONNECTION_ID.to_owned(),
            connection_config: Default::default(),
            return_url: None,
        },
    )
    .await
    .map_err(|e| format!("creating the demo connect session failed: {e:?}"))?;

    // Written without `println!`, which panics when whoever started us stopped reading.
    let _ = writeln!(
        std::io::stdout(),
        "\nPlugboard dev is running (Ctrl-C stops it).\n\n\
         \x20 Connect link:  {connect}\n\
         \x20                open it in a browser to connect the demo account (valid 30 minutes)\n\
         \x20 API:           {public_url}\n\
         \x20 API key:       {api_key}\n\
         \x20 Dashboard:     {public_url}/ui  (sign in with the API key)\n\
         \x20 Emulator:      {emulator_url}  (demo user {upn}, {people} people)\n\
         \x20 Store:         {database}\n\
         \x20 Metrics:       {metrics_url}  (health: /health/live, /health/ready)\n\n\
         Then try:\n\
         \x20 curl -H 'Authorization: Bearer {api_key}' '{public_url}/connections?integration={INTEGRATION}'\n\
         \x20 curl -H 'Authorization: Bearer {api_key}' -H 'Integration: {INTEGRATION}' -H 'Connection-Id: {CONNECTION_ID}' '{public_url}/proxy/v1.0/me/people?$top=5'\n\n\
         The people sync runs as soon as the demo account connects:\n\
         \x20 curl -H 'Authorization: Bearer {api_key}' '{public_url}/syncs/status?integration={INTEGRATION}&connection_id={CONNECTION_ID}'\n\
         \x20 curl -H 'Authorization: Bearer {api_key}' '{public_url}/records?integration={INTEGRATION}&connection_id={CONNECTION_ID}&model=Person&limit=5'\n",
        connect = session.connect_url,
        upn = demo.user_principal_name,
        people = options.people,
        database = database.display(),
    );
    server::run(listener, management, state, server::shutdown_signal()).await?;
    emulator.shutdown().await;
    Ok(())
}

/// `dir/plugboard.db`, with any earlier database (and its WAL files) removed.
fn fresh_database(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let database = std::path::absolute(dir.join("plugboard.db")).map_err(|e| e.to_string())?;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.clone().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove `{}`: {e}", database.display())),
        }
    }
    Ok(database)
}

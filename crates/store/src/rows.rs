//! Reading rows into the store's types, once for both backends: each backend's row type reads
//! plain columns by name ([`Columns`]), and the decoders here turn them into connections, OAuth
//! flows, runs and the rest, opening sealed columns on the way. Only what differs stays in the
//! backends: their SQL, and how a record's id is stored (text or bytes).

use secrecy::SecretString;

use crate::columns::{from_json, from_micros, from_millis};
use crate::sealing::{CONNECTIONS, OAUTH_STATES, Sealer};
use crate::{
    ConnectSession, Connection, ConnectionKey, ConnectionStatus, Flow, OAuthState, RecordAction,
    RecordCursor, RunCounts, RunLog, RunStatus, StoreError, StoreResult, StoredRecord, SyncRun,
    SyncState, Tokens, WebhookDelivery,
};

/// A row's plain columns by name, as both backends store them.
pub trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn boolean(&self, column: &str) -> StoreResult<bool>;
}

/// [`Columns`] for a backend's row type, through sqlx's own decoding.
macro_rules! columns_of {
    ($row:ty) => {
        impl $crate::rows::Columns for $row {
            fn text(&self, column: &str) -> $crate::StoreResult<String> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> $crate::StoreResult<i64> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> $crate::StoreResult<Option<i64>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn boolean(&self, column: &str) -> $crate::StoreResult<bool> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}

columns_of!(sqlx::sqlite::SqliteRow);
columns_of!(sqlx::postgres::PgRow);

/// A count column, never negative.
fn count(row: &impl Columns, column: &str) -> StoreResult<u64> {
    Ok(row.int(column)?.max(0) as u64)
}

/// `SELECT` of every column of `connections` that [`connection`] reads, then `$rest`.
macro_rules! select_connections {
    ($rest:literal) => {
        concat!(
            "SELECT id, integration, connection_id, provider, connection_config, account, status, \
             status_reason, access_token, refresh_token, id_token, expires_at, scopes, \
             token_version, created_at, updated_at FROM connections ",
            $rest
        )
    };
}
pub(crate) use select_connections;

pub fn connection(row: &impl Columns, sealer: &Sealer) -> StoreResult<Connection> {
    let id = row.text("id")?;
    let secret = |column: &str| -> StoreResult<Option<SecretString>> {
        sealer.open(row.opt_text(column)?, CONNECTIONS, &id, column)
    };
    let access_token = secret("access_token")?
        .ok_or_else(|| StoreError::Corrupt("a connection without an access token".into()))?;
    let tokens = Tokens {
        access_token,
        refresh_token: secret("refresh_token")?,
        id_token: secret("id_token")?,
        expires_at: row.opt_int("expires_at")?.map(from_millis).transpose()?,
        scopes: from_json(&row.text("scopes")?)?,
    };
    Ok(Connection {
        key: ConnectionKey::new(row.text("integration")?, row.text("connection_id")?),
        provider: row.text("provider")?,
        connection_config: from_json(&row.text("connection_config")?)?,
        account: row
            .opt_text("account")?
            .as_deref()
            .map(from_json)
            .transpose()?,
        status: ConnectionStatus::parse(&row.text("status")?)?,
        status_reason: row.opt_text("status_reason")?,
        tokens,
        token_version: row.int("token_version")?,
        created_at: from_millis(row.int("created_at")?)?,
        updated_at: from_millis(row.int("updated_at")?)?,
        id,
    })
}

pub fn connect_session(row: &impl Columns) -> StoreResult<ConnectSession> {
    Ok(ConnectSession {
        integration: row.text("integration")?,
        connection_id: row.text("connection_id")?,
        connection_config: from_json(&row.text("connection_config")?)?,
        return_url: row.opt_text("return_url")?,
        expires_at: from_millis(row.int("expires_at")?)?,
    })
}

/// An OAuth flow, its verifier opened with the state's hash as its row identity.
pub fn oauth_state(
    row: &impl Columns,
    sealer: &Sealer,
    state_hash: &str,
) -> StoreResult<OAuthState> {
    Ok(OAuthState {
        flow: Flow::parse(&row.text("flow")?)?,
        integration: row.text("integration")?,
        connection_id: row.text("connection_id")?,
        connection_config: from_json(&row.text("connection_config")?)?,
        return_url: row.opt_text("return_url")?,
        pkce_verifier: sealer.open(
            row.opt_text("pkce_verifier")?,
            OAUTH_STATES,
            state_hash,
            "pkce_verifier",
        )?,
        browser_hash: row.text("browser_hash")?,
        expires_at: from_millis(row.int("expires_at")?)?,
    })
}

/// A record of `connection`'s `model` whose id the backend read in its own way.
pub fn record(
    row: &impl Columns,
    id: String,
    sealer: &Sealer,
    (connection, model): (&str, &str),
) -> StoreResult<StoredRecord> {
    let payload = row.text("payload")?;
    let modified = row.int("last_modified_at")?;
    Ok(StoredRecord {
        data: sealer.open_payload(connection, model, &id, &payload, row.boolean("sealed")?)?,
        first_seen_at: from_micros(row.int("first_seen_at")?)?,
        last_modified_at: from_micros(modified)?,
        last_action: RecordAction::parse(&row.text("last_action")?)?,
        deleted_at: row.opt_int("deleted_at")?.map(from_micros).transpose()?,
        cursor: RecordCursor {
            modified,
            id: id.clone(),
        },
        id,
    })
}

pub fn sync_state(row: &impl Columns) -> StoreResult<SyncState> {
    Ok(SyncState {
        checkpoint: row
            .opt_text("checkpoint")?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("checkpoint is not JSON: {e}")))
            })
            .transpose()?,
        paused: row.boolean("paused")?,
        frequency_secs: row.opt_int("frequency_secs")?.map(|s| s.max(0) as u64),
    })
}

/// `SELECT` of every column of `sync_runs` that [`run`] reads, then `$rest`.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, sync_name, mode, started_at, finished_at, status, added, updated, \
             deleted, error FROM sync_runs ",
            $rest
        )
    };
}
pub(crate) use select_runs;

pub fn run(row: &impl Columns) -> StoreResult<SyncRun> {
    Ok(SyncRun {
        id: row.text("id")?,
        sync_name: row.text("sync_name")?,
        mode: row.text("mode")?,
        started_at: from_micros(row.int("started_at")?)?,
        finished_at: row.opt_int("finished_at")?.map(from_micros).transpose()?,
        status: RunStatus::parse(&row.text("status")?)?,
        counts: RunCounts {
            added: count(row, "added")?,
            updated: count(row, "updated")?,
            deleted: count(row, "deleted")?,
        },
        error: row.opt_text("error")?,
    })
}

pub fn run_log(row: &impl Columns) -> StoreResult<RunLog> {
    Ok(RunLog {
        at: from_micros(row.int("at")?)?,
        level: row.text("level")?,
        message: row.text("message")?,
    })
}

/// `SELECT` of every column of `webhook_deliveries` that [`webhook_delivery`] reads, then
/// `$rest`.
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, event_type, created_at, attempts, status, error, delivered, body \
             FROM webhook_deliveries ",
            $rest
        )
    };
}
pub(crate) use select_deliveries;

pub fn webhook_delivery(row: &impl Columns) -> StoreResult<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.text("id")?,
        event_type: row.text("event_type")?,
        created_at: from_micros(row.int("created_at")?)?,
        attempts: count(row, "attempts")?.min(u64::from(u32::MAX)) as u32,
        status: row.opt_int("status")?.map(|s| s.clamp(0, 999) as u16),
        error: row.opt_text("error")?,
        delivered: row.boolean("delivered")?,
        body: row.text("body")?,
    })
}

//! What the operator dashboard reads and writes: its sign-in sessions, connections as it lists
//! them (with their health, and without any secret), record counts, and the activity log of
//! operations across the deployment. The types here are those the dashboard's methods of
//! [`Store`](crate::Store) take and return; what both backends share of their SQL is at the end.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::copy::Placeholders;
use crate::{ConnectionKey, StoreError, StoreResult};

/// How long the activity log keeps an entry: `purge_expired` deletes older ones, so the log
/// stays a window on recent operations, not a table growing with every refresh and run.
pub const ACTIVITY_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// The most rows one dashboard listing returns, whatever limit it asks for.
pub const MAX_CONSOLE_LIMIT: u32 = 1_000;

/// How a connection is doing, as the dashboard groups connections: the first that applies of
/// needing a reconnect (only a person can fix it), a sync whose last finished run failed, and a
/// paused sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionHealth {
    Healthy,
    NeedsReconnect,
    SyncFailing,
    Paused,
}

impl ConnectionHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionHealth::Healthy => "healthy",
            ConnectionHealth::NeedsReconnect => "needs_reconnect",
            ConnectionHealth::SyncFailing => "sync_failing",
            ConnectionHealth::Paused => "paused",
        }
    }

    /// The health a name stands for (a query parameter, or a stored value); `None` when it
    /// names none.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "healthy" => ConnectionHealth::Healthy,
            "needs_reconnect" => ConnectionHealth::NeedsReconnect,
            "sync_failing" => ConnectionHealth::SyncFailing,
            "paused" => ConnectionHealth::Paused,
            _ => return None,
        })
    }

    fn read(text: &str) -> StoreResult<Self> {
        Self::parse(text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown connection health `{text}`")))
    }
}

/// Which connections the dashboard lists: every filter given applies, in the order of
/// (integration, connection id), after the connection `after` (keyset paging, so a page costs
/// the same wherever it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFilter {
    pub integration: Option<String>,
    pub health: Option<ConnectionHealth>,
    /// A piece of the connection id, or of the account's name or email, matched ignoring the
    /// case of ASCII letters; `%`, `_` and `\` match themselves.
    pub search: Option<String>,
    pub after: Option<ConnectionKey>,
    /// 1 to [`MAX_CONSOLE_LIMIT`].
    pub limit: u32,
}

/// A connection as the dashboard lists it: what it is and how it is doing, read without
/// touching (or decrypting) its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSummary {
    /// The row identity (`connections.id`), which the record and run methods take.
    pub row: String,
    pub key: ConnectionKey,
    pub provider: String,
    pub account: Option<Value>,
    pub health: ConnectionHealth,
    pub status_reason: Option<String>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Since when refreshing the token fails; `None` while it works.
    pub refresh_failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSummaryPage {
    pub connections: Vec<ConnectionSummary>,
    /// Set when more connections may follow: the `after` of the next page.
    pub next: Option<ConnectionKey>,
}

/// How many records of one model a connection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCount {
    pub model: String,
    pub live: u64,
    pub deleted: u64,
}

/// What an activity entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    TokenRefresh,
    SyncRun,
    Action,
    WebhookDelivery,
    ConnectionCreated,
    ConnectionDeleted,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::TokenRefresh => "token_refresh",
            ActivityKind::SyncRun => "sync_run",
            ActivityKind::Action => "action",
            ActivityKind::WebhookDelivery => "webhook_delivery",
            ActivityKind::ConnectionCreated => "connection_created",
            ActivityKind::ConnectionDeleted => "connection_deleted",
        }
    }

    /// The kind a name stands for (a query parameter, or a stored value); `None` when it names
    /// none.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "token_refresh" => ActivityKind::TokenRefresh,
            "sync_run" => ActivityKind::SyncRun,
            "action" => ActivityKind::Action,
            "webhook_delivery" => ActivityKind::WebhookDelivery,
            "connection_created" => ActivityKind::ConnectionCreated,
            "connection_deleted" => ActivityKind::ConnectionDeleted,
            _ => return None,
        })
    }

    fn read(text: &str) -> StoreResult<Self> {
        Self::parse(text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown activity kind `{text}`")))
    }
}

/// An operation to note in the activity log. Entries are stored as given, unsealed: a summary
/// must never hold a token or anything else secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    pub kind: ActivityKind,
    pub succeeded: bool,
    pub integration: Option<String>,
    pub connection_id: Option<String>,
    pub summary: String,
    /// What the entry is about, to look it up: e.g. a run or delivery id.
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
}

/// An entry of the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Increasing with insertion: the log's order, and its keyset.
    pub id: i64,
    pub kind: ActivityKind,
    pub succeeded: bool,
    pub integration: Option<String>,
    pub connection_id: Option<String>,
    pub summary: String,
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
}

/// Which activity entries to list, newest first: every filter given applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Entries of these kinds; all when empty.
    pub kinds: Vec<ActivityKind>,
    pub succeeded: Option<bool>,
    pub integration: Option<String>,
    pub connection_id: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Entries with an id below this one: the next page after an entry.
    pub before: Option<i64>,
    /// 1 to [`MAX_CONSOLE_LIMIT`].
    pub limit: u32,
}

// What both backends share of the dashboard's SQL.

/// Whether one of a connection's syncs (of `connections` aliased `c`) last failed: a probe of
/// its sync states through a partial index holding only the failing ones, so listing or
/// counting 10,000 connections reads no run.
macro_rules! failing {
    () => {
        "EXISTS (SELECT 1 FROM sync_states AS s WHERE s.connection_row = c.id \
         AND s.last_run_failed = TRUE)"
    };
}

/// Whether one of a connection's syncs is paused, through a partial index likewise.
macro_rules! paused {
    () => {
        "EXISTS (SELECT 1 FROM sync_states AS s WHERE s.connection_row = c.id \
         AND s.paused = TRUE)"
    };
}

/// A connection's health as SQL, in either backend: the first that applies, in
/// [`ConnectionHealth`]'s order.
macro_rules! health {
    () => {
        concat!(
            "CASE WHEN c.status = 'needs_reconnect' THEN 'needs_reconnect' WHEN ",
            failing!(),
            " THEN 'sync_failing' WHEN ",
            paused!(),
            " THEN 'paused' ELSE 'healthy' END"
        )
    };
}

impl ConnectionHealth {
    /// The connections of this health, as a condition on `connections` aliased `c`: the
    /// `health!` expression spelt out, so that a filter stops at the first probe that rules a
    /// connection out instead of working out its health.
    fn condition(self) -> &'static str {
        match self {
            ConnectionHealth::NeedsReconnect => "c.status = 'needs_reconnect'",
            ConnectionHealth::SyncFailing => {
                concat!("c.status <> 'needs_reconnect' AND ", failing!())
            }
            ConnectionHealth::Paused => concat!(
                "c.status <> 'needs_reconnect' AND NOT ",
                failing!(),
                " AND ",
                paused!()
            ),
            ConnectionHealth::Healthy => concat!(
                "c.status <> 'needs_reconnect' AND NOT ",
                failing!(),
                " AND NOT ",
                paused!()
            ),
        }
    }
}

/// A limit as a listing applies it.
pub(crate) fn limit(asked: u32) -> u32 {
    asked.clamp(1, MAX_CONSOLE_LIMIT)
}

/// A value bound to a statement the builder below wrote.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A `WHERE` clause built from the filters given, with its parameters in order, in the
/// backend's placeholders: the conditions are the same in both backends, and only a backend's
/// own expressions (e.g. reading the account JSON) are handed in.
pub(crate) struct Conditions {
    style: Placeholders,
    clauses: Vec<String>,
    pub params: Vec<Param>,
}

impl Conditions {
    pub fn new(style: Placeholders) -> Self {
        Conditions {
            style,
            clauses: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds a condition whose `?` marks take `params`, in order.
    pub fn push(&mut self, condition: &str, params: impl IntoIterator<Item = Param>) {
        let mut text = String::new();
        for (at, piece) in condition.split('?').enumerate() {
            if at > 0 {
                text += &self.style.list(self.params.len() + at, 1);
            }
            text += piece;
        }
        self.params.extend(params);
        self.clauses.push(text);
    }

    /// The next parameter's placeholder, for what follows the conditions (a limit).
    pub fn next_placeholder(&self) -> String {
        self.style.list(self.params.len() + 1, 1)
    }

    /// `WHERE …`, or nothing when no condition applies.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

impl ConnectionFilter {
    /// The filter's conditions on `connections` aliased `c`; `searched` are the backend's expressions of the texts a search looks in, each lowering
    /// ASCII letters only, as both backends can.
    pub(crate) fn conditions(&self, style: Placeholders, searched: &[&str]) -> Conditions {
        let mut conditions = Conditions::new(style);
        if let Some(integration) = &self.integration {
            conditions.push("c.integration = ?", [Param::Text(integration.clone())]);
        }
        if let Some(health) = self.health {
            conditions.push(health.condition(), []);
        }
        if let Some(search) = self.search.as_deref().filter(|s| !s.is_empty()) {
            let pattern = contains_pattern(search);
            let any: Vec<String> = searched
                .iter()
                .map(|text| format!("{text} LIKE ? ESCAPE '\\'"))
                .collect();
            conditions.push(
                &format!("({})", any.join(" OR ")),
                searched.iter().map(|_| Param::Text(pattern.clone())),
            );
        }
        if let Some(after) = &self.after {
            conditions.push(
                "(c.integration, c.connection_id) > (?, ?)",
                [
                    Param::Text(after.integration.clone()),
                    Param::Text(after.connection_id.clone()),
                ],
            );
        }
        conditions
    }
}

impl ActivityFilter {
    /// The filter's conditions on the columns of `activity`.
    pub(crate) fn conditions(&self, style: Placeholders) -> Conditions {
        let mut conditions = Conditions::new(style);
        if !self.kinds.is_empty() {
            let marks = vec!["?"; self.kinds.len()].join(", ");
            conditions.push(
                &format!("kind IN ({marks})"),
                self.kinds
                    .iter()
                    .map(|kind| Param::Text(kind.as_str().to_owned())),
            );
        }
        if let Some(succeeded) = self.succeeded {
            conditions.push("succeeded = ?", [Param::Bool(succeeded)]);
        }
        if let Some(integration) = &self.integration {
            conditions.push("integration = ?", [Param::Text(integration.clone())]);
        }
        if let Some(connection_id) = &self.connection_id {
            conditions.push("connection_id = ?", [Param::Text(connection_id.clone())]);
        }
        if let Some(since) = self.since {
            conditions.push("at >= ?", [Param::Int(crate::columns::micros(since))]);
        }
        if let Some(until) = self.until {
            conditions.push("at < ?", [Param::Int(crate::columns::micros(until))]);
        }
        if let Some(before) = self.before {
            conditions.push("id < ?", [Param::Int(before)]);
        }
        conditions
    }
}

/// A `LIKE` pattern matching texts that contain `search`, its ASCII letters lowered (the
/// searched texts are lowered alike) and its wildcards and escape character taken literally.
fn contains_pattern(search: &str) -> String {
    let mut pattern = String::from("%");
    for c in search.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Binds the parameters of [`Conditions`] to a backend's statement.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                $crate::console::Param::Text(text) => query.bind(text),
                $crate::console::Param::Int(n) => query.bind(n),
                $crate::console::Param::Bool(b) => query.bind(b),
            };
        }
        query
    }};
}
pub(crate) use bind_params;

/// Decoding the dashboard's rows, once for both backends.
pub(crate) mod read {
    use super::*;
    use crate::columns::{from_json, from_micros, from_millis};
    use crate::rows::Columns;

    /// `SELECT` of what [`connection_summary`] reads: the columns of `connections` (aliased
    /// `c`) but the credentials, and the connection's health.
    pub const SELECT_SUMMARIES: &str = concat!(
        "SELECT c.id, c.integration, c.connection_id, c.provider, c.account, c.status_reason, \
         c.expires_at, c.refresh_failed_at, c.created_at, c.updated_at, ",
        health!(),
        " AS health FROM connections AS c"
    );

    /// The number of connections of each integration and health, read by [`health_count`].
    /// Materialised, so each connection's health is worked out once, not again for grouping.
    pub const COUNT_HEALTH: &str = concat!(
        "WITH listed AS MATERIALIZED (SELECT c.integration, ",
        health!(),
        " AS health FROM connections AS c) \
         SELECT integration, health, COUNT(*) AS count FROM listed \
         GROUP BY integration, health ORDER BY integration, health"
    );

    /// `SELECT` of what [`activity`] reads.
    pub const SELECT_ACTIVITY: &str = "SELECT id, kind, succeeded, integration, connection_id, \
         summary, reference, at FROM activity";

    pub fn connection_summary(row: &impl Columns) -> StoreResult<ConnectionSummary> {
        Ok(ConnectionSummary {
            row: row.text("id")?,
            key: ConnectionKey::new(row.text("integration")?, row.text("connection_id")?),
            provider: row.text("provider")?,
            account: row
                .opt_text("account")?
                .as_deref()
                .map(from_json)
                .transpose()?,
            health: ConnectionHealth::read(&row.text("health")?)?,
            status_reason: row.opt_text("status_reason")?,
            expires_at: row.opt_int("expires_at")?.map(from_millis).transpose()?,
            refresh_failed_at: row
                .opt_int("refresh_failed_at")?
                .map(from_millis)
                .transpose()?,
            created_at: from_millis(row.int("created_at")?)?,
            updated_at: from_millis(row.int("updated_at")?)?,
        })
    }

    /// A page of summaries read with a limit one above `limit`: the extra row only says that
    /// more follow.
    pub fn summary_page(rows: &[impl Columns], limit: u32) -> StoreResult<ConnectionSummaryPage> {
        let connections = rows
            .iter()
            .take(limit as usize)
            .map(connection_summary)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if rows.len() > limit as usize {
            connections.last().map(|c| c.key.clone())
        } else {
            None
        };
        Ok(ConnectionSummaryPage { connections, next })
    }

    /// `(integration, health, count)` rows.
    pub fn health_count(row: &impl Columns) -> StoreResult<(String, ConnectionHealth, u64)> {
        Ok((
            row.text("integration")?,
            ConnectionHealth::read(&row.text("health")?)?,
            row.int("count")?.max(0) as u64,
        ))
    }

    pub fn record_count(row: &impl Columns) -> StoreResult<RecordCount> {
        Ok(RecordCount {
            model: row.text("model")?,
            live: row.int("live")?.max(0) as u64,
            deleted: row.int("deleted")?.max(0) as u64,
        })
    }

    pub fn activity(row: &impl Columns) -> StoreResult<Activity> {
        Ok(Activity {
            id: row.int("id")?,
            kind: ActivityKind::read(&row.text("kind")?)?,
            succeeded: row.boolean("succeeded")?,
            integration: row.opt_text("integration")?,
            connection_id: row.opt_text("connection_id")?,
            summary: row.text("summary")?,
            reference: row.opt_text("reference")?,
            at: from_micros(row.int("at")?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_a_literal_substring_whatever_it_holds() {
        assert_eq!(contains_pattern("Ann"), "%ann%");
        assert_eq!(contains_pattern(r"50%_a\b"), r"%50\%\_a\\b%");
    }

    #[test]
    fn conditions_number_their_placeholders_in_order() {
        let filter = ActivityFilter {
            kinds: vec![ActivityKind::SyncRun, ActivityKind::Action],
            integration: Some("github".into()),
            before: Some(9),
            ..ActivityFilter::default()
        };
        let numbered = filter.conditions(Placeholders::Numbered);
        assert_eq!(
            numbered.sql(),
            " WHERE kind IN ($1, $2) AND integration = $3 AND id < $4"
        );
        assert_eq!(numbered.next_placeholder(), "$5");
        let question = filter.conditions(Placeholders::Question);
        assert_eq!(
            question.sql(),
            " WHERE kind IN (?, ?) AND integration = ? AND id < ?"
        );
        assert_eq!(question.params.len(), 4);
    }

    #[test]
    fn names_round_trip() {
        for health in [
            ConnectionHealth::Healthy,
            ConnectionHealth::NeedsReconnect,
            ConnectionHealth::SyncFailing,
            ConnectionHealth::Paused,
        ] {
            assert_eq!(ConnectionHealth::parse(health.as_str()), Some(health));
        }
        for kind in [
            ActivityKind::TokenRefresh,
            ActivityKind::SyncRun,
            ActivityKind::Action,
            ActivityKind::WebhookDelivery,
            ActivityKind::ConnectionCreated,
            ActivityKind::ConnectionDeleted,
        ] {
            assert_eq!(ActivityKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ActivityKind::parse("nope"), None);
    }
}

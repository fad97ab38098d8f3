//! Records, crawls, sync state, runs and webhook deliveries: the data types the
//! [`Store`](crate::store::Store) methods for syncs take and return.
//!
//! Every method names a connection by its row identity
//! ([`Connection::id`](crate::store::Connection::id)), which is never reused, so records can
//! never leak from a deleted connection into a new one with the same caller-chosen id.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use plugboard_core::{RawRecord, Record};
use serde_json::Value;

use crate::{StoreError, StoreResult};

/// The most records one [`RecordQuery`] returns.
pub const MAX_RECORDS_LIMIT: u32 = 10_000;

/// What happened to a record last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordAction {
    Added,
    Updated,
    Deleted,
}

impl RecordAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Added => "ADDED",
            RecordAction::Updated => "UPDATED",
            RecordAction::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "ADDED" => Ok(RecordAction::Added),
            "UPDATED" => Ok(RecordAction::Updated),
            "DELETED" => Ok(RecordAction::Deleted),
            other => Err(StoreError::Corrupt(format!(
                "unknown record action `{other}`"
            ))),
        }
    }
}

/// A record to save: the provider's id and its data as JSON text, the form the store hashes,
/// encrypts and writes.
///
/// Both ways records arrive produce it without a detour: a built-in provider's [`Record`] is
/// serialised once ([`RecordJson::encode`]), and a plugin's records borrow their text from the
/// bytes it sent ([`RawRecord`]), never decoded into a [`Value`] and encoded again. The content
/// hash covers this text, so the two agree as long as the text does: `serde_json` writes a
/// `Value` compactly with its keys sorted on either side of the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordJson<'a> {
    pub id: Cow<'a, str>,
    pub json: Cow<'a, str>,
}

impl RecordJson<'static> {
    /// Serialises a record's data.
    pub fn encode(record: Record) -> StoreResult<Self> {
        let json = serde_json::to_string(&record.data)
            .map_err(|e| StoreError::Database(format!("record is not serialisable: {e}")))?;
        Ok(RecordJson {
            id: Cow::Owned(record.id),
            json: Cow::Owned(json),
        })
    }
}

impl<'a> From<RawRecord<'a>> for RecordJson<'a> {
    fn from(record: RawRecord<'a>) -> Self {
        RecordJson {
            id: record.id,
            json: Cow::Borrowed(record.data),
        }
    }
}

/// What one `save_records` call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOutcome {
    pub added: u64,
    pub updated: u64,
    /// Saved again with the same payload: nothing was rewritten.
    pub unchanged: u64,
}

/// A position in a model's records: after the record last modified at `modified` (Unix
/// microseconds) with id `id`. Opaque to API callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCursor {
    pub modified: i64,
    pub id: String,
}

impl RecordCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.modified, self.id))
    }

    pub fn decode(text: &str) -> Option<RecordCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (modified, id) = text.split_once(':')?;
        Some(RecordCursor {
            modified: modified.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// A record as stored, decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub id: String,
    pub data: Value,
    pub first_seen_at: DateTime<Utc>,
    pub last_modified_at: DateTime<Utc>,
    pub last_action: RecordAction,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Where a listing continues after this record.
    pub cursor: RecordCursor,
}

/// Which records of one connection's model to list, oldest modification first (or newest
/// first).
#[derive(Debug, Clone)]
pub struct RecordQuery {
    pub connection: String,
    pub model: String,
    pub after: Option<RecordCursor>,
    /// 1 to [`MAX_RECORDS_LIMIT`].
    pub limit: u32,
    pub modified_after: Option<DateTime<Utc>>,
    /// Only records whose last action is one of these; all when empty.
    pub actions: Vec<RecordAction>,
    /// Only these ids; all when empty.
    pub ids: Vec<String>,
    /// Lists the latest modified first (the dashboard's records tab), paging backwards through
    /// the same (stamp, id) order with the same cursors. A record written while the listing
    /// pages is stamped ahead of every record listed so far, so it is neither listed nor
    /// repeated: the listing shows the records as they were when it began, except those
    /// rewritten since (they moved ahead, to the top of a listing begun again).
    pub newest_first: bool,
    /// At most this many records, in the listing's order from `after`, are examined for the
    /// page; `next` then continues after the last one examined, even when fewer than `limit`
    /// matched. Without an index on `last_action` (one more index on every record write), a
    /// filter matching few records would otherwise read all of a model's records for one page:
    /// a bounded read per page keeps the dashboard's filtered listing quick at any size.
    pub scan_limit: Option<u32>,
}

impl RecordQuery {
    /// How the query pages: the comparison of (stamp, id) with its cursor, and the direction
    /// of its order, for both backends' SQL.
    pub(crate) fn direction(&self) -> (&'static str, &'static str) {
        if self.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        }
    }

    /// How records within the examined window compare with its last record: at or before it
    /// in the listing's order.
    pub(crate) fn within_window(&self) -> &'static str {
        if self.newest_first { ">=" } else { "<=" }
    }
}

/// Where the next page starts: after the last record listed when more matched, else after
/// the last record examined when the page's scan stopped at its limit (`window_end`).
pub(crate) fn next_page(
    more: bool,
    records: &[StoredRecord],
    window_end: Option<RecordCursor>,
) -> Option<RecordCursor> {
    if more {
        records.last().map(|r| r.cursor.clone())
    } else {
        window_end
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    pub records: Vec<StoredRecord>,
    /// Set when more records may follow.
    pub next: Option<RecordCursor>,
}

/// A sync's state for one connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncState {
    pub checkpoint: Option<Value>,
    pub paused: bool,
    /// The connection's own frequency, overriding the integration's.
    pub frequency_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Success,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "running" => Ok(RunStatus::Running),
            "success" => Ok(RunStatus::Success),
            "failed" => Ok(RunStatus::Failed),
            other => Err(StoreError::Corrupt(format!("unknown run status `{other}`"))),
        }
    }
}

/// What a run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl RunCounts {
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.deleted > 0
    }
}

/// One run of a sync for a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: String,
    pub sync_name: String,
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// A log line kept with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLog {
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// The outcome of delivering one webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: String,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    /// The event exactly as signed and sent, so it can be delivered again unchanged. Empty for
    /// deliveries recorded before bodies were kept.
    pub body: String,
}

/// The error of a run whose lease expired before its end was recorded: its process stopped,
/// or the store refused every write (a full disk), so the real reason is only in the log.
pub(crate) const INTERRUPTED: &str = "the run's end was never recorded (the host stopped during \
     the run, or the store refused the write); the next run resumes from its checkpoint";

/// How one write moves its model's counts of live and deleted records, which each backend
/// keeps on the model's `record_clocks` row in the writing transaction, so that
/// [`Store::record_counts`](crate::Store::record_counts) reads them instead of counting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountChange {
    pub live: i64,
    pub deleted: i64,
}

impl CountChange {
    /// A saved batch: its `added` records became live, `revived` of them having been deleted.
    /// Updated records stay live, unchanged ones stay as they were.
    pub fn saved(added: u64, revived: u64) -> Self {
        CountChange {
            live: added as i64,
            deleted: -(revived as i64),
        }
    }

    /// Live records marked deleted.
    pub fn deleted(marked: u64) -> Self {
        CountChange {
            live: -(marked as i64),
            deleted: marked as i64,
        }
    }

    /// Whether the counts stay as they are, so the write need not touch them.
    pub fn is_none(&self) -> bool {
        self.live == 0 && self.deleted == 0
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A cursor comes back from its text as it was, whatever its id holds (`:`, NUL,
        /// any script) and whatever its stamp, and its text is safe in a URL as it is.
        #[test]
        fn a_cursor_decodes_to_itself(
            modified in any::<i64>(),
            id in prop_oneof![any::<String>(), "[:0-9a-z\0]{0,12}"],
        ) {
            let cursor = RecordCursor { modified, id };
            let text = cursor.encode();
            let url_safe = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            prop_assert!(url_safe, "{}", text);
            prop_assert_eq!(RecordCursor::decode(&text), Some(cursor));
        }

        /// Any text given as a cursor is decoded or refused, never a panic; what decodes
        /// is a cursor of its own.
        #[test]
        fn any_text_decodes_or_is_refused(
            text in prop_oneof!["\\PC{0,40}", "[A-Za-z0-9_-]{0,40}"],
        ) {
            if let Some(cursor) = RecordCursor::decode(&text) {
                prop_assert_eq!(RecordCursor::decode(&cursor.encode()), Some(cursor));
            }
        }
    }
}

//! Writing the activity log that the dashboard's Activity page reads: token refreshes, sync
//! runs, actions, webhook deliveries, connections created and deleted, each with its outcome
//! in a line of words.
//!
//! Recording never fails the operation it describes: the operation has happened, so a store
//! error here is logged and the operation goes on. Summaries are written for people and never
//! hold a token or a secret.

use chrono::Utc;
use plugboard_store::{ActivityKind, ConnectionKey, NewActivity, Store};

/// One entry: what happened, whether it worked and, for a connection's operations, which one.
pub async fn record(
    store: &dyn Store,
    kind: ActivityKind,
    succeeded: bool,
    connection: Option<&ConnectionKey>,
    summary: impl Into<String>,
    reference: Option<String>,
) {
    let entry = NewActivity {
        kind,
        succeeded,
        integration: connection.map(|key| key.integration.clone()),
        connection_id: connection.map(|key| key.connection_id.clone()),
        summary: summary.into(),
        reference,
        at: Utc::now(),
    };
    if let Err(error) = store.record_activity(&entry).await {
        tracing::warn!(%error, kind = kind.as_str(), "recording an activity entry failed");
    }
}

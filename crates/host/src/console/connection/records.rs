//! The Records tab: counts per model, a model's records newest first a page at a time,
//! filtered by last action, and one record's JSON with its `_metadata`.

use askama::Template;
use axum::response::Response;
use chrono::Utc;
use plugboard_store::{Connection, RecordAction, RecordCursor, RecordQuery};

use super::{Head, Target, chrome, connection_url};
use crate::api::record_json;
use crate::console::session::SignedIn;
use crate::console::{Chrome, ConsoleError, format, render};
use crate::state::AppState;

/// Records per page on the Records tab.
const RECORDS_PAGE: u32 = 25;
/// Records a page examines at most: a last-action filter that few records match then still
/// answers quickly, with a Next page that looks further back.
const RECORDS_SCANNED: u32 = 5_000;

#[derive(Template)]
#[template(path = "console/records.html")]
struct RecordsHtml {
    chrome: Chrome,
    head: Head,
    models: Vec<ModelCount>,
    list: Option<RecordList>,
    record: Option<RecordView>,
}

struct ModelCount {
    model: String,
    live: u64,
    deleted: u64,
    url: String,
}

struct RecordList {
    model: String,
    action: String,
    filters: Vec<(&'static str, &'static str, String)>,
    records: Vec<RecordRow>,
    next_url: Option<String>,
    /// Whether the page stopped at [`RECORDS_SCANNED`] before it was full.
    cut_short: bool,
}

struct RecordRow {
    id: String,
    action: &'static str,
    modified: String,
    url: String,
}

struct RecordView {
    id: String,
    json: String,
}

/// The last-action filter's choices: all, or one action as the store names it.
const ACTIONS: [(&str, &str); 4] = [
    ("", "All"),
    ("ADDED", "Added"),
    ("UPDATED", "Updated"),
    ("DELETED", "Deleted"),
];

pub(super) async fn tab(
    state: &AppState,
    signed_in: &SignedIn,
    connection: &Connection,
    target: &Target,
) -> Result<Response, ConsoleError> {
    let store = state.connections.store();
    let key = &connection.key;
    let counts = store.record_counts(&connection.id).await?;
    let models: Vec<ModelCount> = counts
        .iter()
        .map(|count| ModelCount {
            url: connection_url("records", key, &[("model", &count.model)]),
            model: count.model.clone(),
            live: count.live,
            deleted: count.deleted,
        })
        .collect();
    let model = if target.model.is_empty() {
        counts.first().map(|c| c.model.clone())
    } else {
        Some(target.model.clone())
    };
    let actions = match target.action.as_str() {
        "" => Vec::new(),
        text => vec![RecordAction::parse(text).map_err(|_| {
            ConsoleError::bad_request(format!("`{text}` is not ADDED, UPDATED or DELETED."))
        })?],
    };
    let now = Utc::now();
    let mut list = None;
    let mut record = None;
    if let Some(model) = model {
        let after = match &target.after {
            Some(text) => Some(RecordCursor::decode(text).ok_or_else(|| {
                ConsoleError::bad_request(
                    "The page's cursor is not valid; start again from the first page.",
                )
            })?),
            None => None,
        };
        let page = store
            .records(&RecordQuery {
                connection: connection.id.clone(),
                model: model.clone(),
                after,
                limit: RECORDS_PAGE,
                modified_after: None,
                actions,
                ids: Vec::new(),
                newest_first: true,
                scan_limit: Some(RECORDS_SCANNED),
            })
            .await?;
        let in_list = |extra: &[(&str, &str)]| {
            let mut params = vec![("model", model.as_str())];
            if !target.action.is_empty() {
                params.push(("action", target.action.as_str()));
            }
            params.extend_from_slice(extra);
            connection_url("records", key, &params)
        };
        list = Some(RecordList {
            filters: ACTIONS
                .iter()
                .map(|(value, label)| {
                    let mut params = vec![("model", model.as_str())];
                    if !value.is_empty() {
                        params.push(("action", value));
                    }
                    (*value, *label, connection_url("records", key, &params))
                })
                .collect(),
            records: page
                .records
                .iter()
                .map(|r| RecordRow {
                    url: in_list(&[("record", &r.id)]),
                    id: r.id.clone(),
                    action: r.last_action.as_str(),
                    modified: format::moment(Some(r.last_modified_at), now, ""),
                })
                .collect(),
            cut_short: page.records.len() < RECORDS_PAGE as usize && page.next.is_some(),
            next_url: page
                .next
                .as_ref()
                .map(|next| in_list(&[("after", &next.encode())])),
            action: target.action.clone(),
            model: model.clone(),
        });
        if let Some(id) = &target.record {
            let found = store
                .records(&RecordQuery {
                    connection: connection.id.clone(),
                    model,
                    after: None,
                    limit: 1,
                    modified_after: None,
                    actions: Vec::new(),
                    ids: vec![id.clone()],
                    newest_first: false,
                    scan_limit: None,
                })
                .await?
                .records
                .into_iter()
                .next()
                .ok_or_else(|| ConsoleError::not_found(format!("There is no record `{id}`.")))?;
            record = Some(RecordView {
                id: id.clone(),
                json: serde_json::to_string_pretty(&record_json(found)).unwrap_or_default(),
            });
        }
    }
    render(RecordsHtml {
        chrome: chrome(signed_in, connection, target.notice.as_deref()),
        head: Head::new(connection, "records"),
        models,
        list,
        record,
    })
}

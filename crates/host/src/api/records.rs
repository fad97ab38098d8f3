//! `GET /records`: a connection's records of one model, oldest modification first, with a
//! cursor that stays valid while syncs write (keyset on last modification and id).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiQuery, AppState};
use plugboard_store::{
    ConnectionKey, MAX_RECORDS_LIMIT, RecordAction, RecordCursor, RecordQuery, StoredRecord,
};

const DEFAULT_LIMIT: u32 = 100;
/// Most ids one request may name.
const MAX_IDS: usize = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/records", get(list))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    integration: String,
    connection_id: String,
    model: String,
    cursor: Option<String>,
    limit: Option<u32>,
    modified_after: Option<String>,
    filter: Option<String>,
    ids: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let integration = state.integration(&q.integration)?;
    if !integration.spec().models.contains_key(&q.model) {
        let models: Vec<&str> = integration
            .spec()
            .models
            .keys()
            .map(String::as_str)
            .collect();
        return Err(ApiError::bad_request(
            "invalid_model",
            format!(
                "integration `{}` has no model `{}` (it has: {})",
                q.integration,
                q.model,
                models.join(", ")
            ),
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_RECORDS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("`limit` must be from 1 to {MAX_RECORDS_LIMIT}"),
        ));
    }
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            RecordCursor::decode(c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` is not a cursor this API returned",
                )
            })
        })
        .transpose()?;
    let modified_after = q
        .modified_after
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_modified_after",
                        format!(
                            "`modified_after` must be an RFC 3339 time such as 2026-01-31T12:00:00.000000Z, not `{t}`"
                        ),
                    )
                })
        })
        .transpose()?;
    let actions = parse_filter(q.filter.as_deref())?;
    let ids: Vec<String> = q
        .ids
        .as_deref()
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(
            "too_many_ids",
            format!("`ids` names at most {MAX_IDS} ids"),
        ));
    }
    let key = ConnectionKey::new(&q.integration, &q.connection_id);
    let connection = state
        .connections
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::connection_not_found(&q.connection_id, &q.integration))?;
    let page = state
        .connections
        .store()
        .records(&RecordQuery {
            connection: connection.id.clone(),
            model: q.model,
            after,
            limit,
            modified_after,
            actions,
            ids,
        })
        .await?;
    let records: Vec<Value> = page.records.into_iter().map(record_json).collect();
    Ok(Json(json!({
        "records": records,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

fn parse_filter(filter: Option<&str>) -> Result<Vec<RecordAction>, ApiError> {
    let Some(filter) = filter else {
        return Ok(Vec::new());
    };
    let mut actions = Vec::new();
    for word in filter.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let action = match word.to_ascii_lowercase().as_str() {
            "added" => RecordAction::Added,
            "updated" => RecordAction::Updated,
            "deleted" => RecordAction::Deleted,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_filter",
                    format!("`filter` is a comma list of added, updated and deleted, not `{word}`"),
                ));
            }
        };
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    Ok(actions)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The payload with `_metadata` added; a payload that is not an object sits under `data`.
pub fn record_json(record: StoredRecord) -> Value {
    let metadata = json!({
        "first_seen_at": time(record.first_seen_at),
        "last_modified_at": time(record.last_modified_at),
        "last_action": record.last_action.as_str(),
        "deleted_at": record.deleted_at.map(time),
        "cursor": record.cursor.encode(),
    });
    let mut object = match record.data {
        Value::Object(map) => map,
        other => Map::from_iter([
            ("id".to_owned(), Value::String(record.id)),
            ("data".to_owned(), other),
        ]),
    };
    object.insert("_metadata".to_owned(), metadata);
    Value::Object(object)
}

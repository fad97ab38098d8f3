//! `GET /records`: a connection's records of one model, oldest modification first, with a
//! cursor that stays valid while syncs write (keyset on last modification and id).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{AdditionalProperties, Array, ArrayBuilder, ObjectBuilder};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::{ApiError, ApiQuery, AppState, ErrorBody};
use plugboard_store::{
    ConnectionKey, MAX_RECORDS_LIMIT, RecordAction, RecordCursor, RecordQuery, StoredRecord,
};

const DEFAULT_LIMIT: u32 = 100;
/// Most ids one request may name.
const MAX_IDS: usize = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/records", get(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    integration: String,
    connection_id: String,
    /// One of the provider's models, such as `Person`.
    model: String,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Records per page, 1 to 10000 (default 100).
    limit: Option<u32>,
    /// Only records modified after this RFC 3339 time.
    modified_after: Option<String>,
    /// Only records whose last action is one of these: a comma list of `added`, `updated` and
    /// `deleted`.
    filter: Option<String>,
    /// Only the records with these ids: a comma list of at most 1000.
    ids: Option<String>,
}

/// `GET /records`' answer.
#[derive(Serialize, ToSchema)]
struct RecordList {
    /// The cursor of the next page; null on the last page.
    next_cursor: Option<String>,
    #[schema(schema_with = records_schema)]
    records: Vec<Value>,
}

/// The schema of [`RecordList::records`]: providers' records, each as [`record_json`] writes it.
fn records_schema() -> Array {
    let record = ObjectBuilder::new()
        .description(Some(
            "The record as the provider's sync saved it (a payload that is not an object sits \
             under `data`, beside `id`), with `_metadata`.",
        ))
        .property("_metadata", RecordMetadata::schema())
        .required("_metadata")
        .additional_properties(Some(AdditionalProperties::FreeForm(true)));
    ArrayBuilder::new().items(record).build()
}

// Fields in alphabetical order, as the JSON map this replaced wrote them.
/// Plugboard's facts about a record, beside the provider's fields.
#[derive(Serialize, ToSchema)]
struct RecordMetadata {
    /// A cursor that starts a page right after this record.
    cursor: String,
    #[schema(format = DateTime)]
    deleted_at: Option<String>,
    #[schema(format = DateTime)]
    first_seen_at: String,
    /// `ADDED`, `UPDATED` or `DELETED`.
    #[schema(example = "ADDED")]
    last_action: &'static str,
    #[schema(format = DateTime)]
    last_modified_at: String,
}

/// List a connection's records of one model
///
/// Oldest modification first, a page at a time; the cursor stays valid while syncs write.
#[utoipa::path(
    get,
    path = "/records",
    operation_id = "list_records",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of records.", body = RecordList),
        (status = 400, description = "An unknown model (`invalid_model`), or a `limit`, \
            `cursor`, `modified_after`, `filter` or `ids` that is not valid (`invalid_limit`, \
            `invalid_cursor`, …), or a query that cannot be read (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RecordList>, ApiError> {
    let integration = &state.integration(&q.integration)?;
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
            newest_first: false,
            scan_limit: None,
        })
        .await?;
    Ok(Json(RecordList {
        next_cursor: page.next.map(|c| c.encode()),
        records: page.records.into_iter().map(record_json).collect(),
    }))
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
    let metadata = RecordMetadata {
        cursor: record.cursor.encode(),
        deleted_at: record.deleted_at.map(time),
        first_seen_at: time(record.first_seen_at),
        last_action: record.last_action.as_str(),
        last_modified_at: time(record.last_modified_at),
    };
    let mut object = match record.data {
        Value::Object(map) => map,
        other => Map::from_iter([
            ("id".to_owned(), Value::String(record.id)),
            ("data".to_owned(), other),
        ]),
    };
    object.insert("_metadata".to_owned(), json!(metadata));
    Value::Object(object)
}

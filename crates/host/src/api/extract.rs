//! Reading a request's JSON body or query into its type, for [`ApiJson`](super::ApiJson) and
//! [`ApiQuery`](super::ApiQuery): a request that cannot be read is answered in the API's
//! error shape, and one that lacks required fields names every one of them at once.
//!
//! serde stops at the first missing field. On a rejection the request is looked at again: the
//! required fields are those the request type's API description (`ToSchema`, `IntoParams`)
//! marks required, so that the message and the OpenAPI document agree, and the ones the body's
//! object or the query string lacks are named together. A message about something else (an
//! unknown field, a wrong type) is kept as serde wrote it, after them.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema};

use super::ApiError;

/// How axum starts the message of a JSON body it could not deserialise.
const JSON_PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";
/// How axum starts the message of a query string it could not deserialise.
const QUERY_PREFIX: &str = "Failed to deserialize query string: ";

/// The request's JSON body as a `T`, or the `invalid_body` error (with axum's status: 415
/// without a JSON content type, 400 for a syntax error, 422 for a body not of `T`'s schema),
/// or `body_too_large` (413) past `[server] max_body_size`.
pub(super) async fn read_json<T, S>(request: Request, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned + PartialSchema,
    S: Send + Sync,
{
    // The body is kept, to be read again when it is not a `T`.
    let (parts, body) = request.into_parts();
    let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts ([server] max_body_size)",
            ),
            status => ApiError::new(status, "invalid_body", rejection.body_text()),
        })?;
    let request = Request::from_parts(parts, Body::from(bytes.clone()));
    match Json::<T>::from_request(request, state).await {
        Ok(Json(value)) => Ok(value),
        Err(JsonRejection::JsonDataError(error)) => Err(ApiError::new(
            error.status(),
            "invalid_body",
            naming_missing(
                &error.body_text(),
                JSON_PREFIX,
                &missing_body_fields::<T>(&bytes),
            ),
        )),
        Err(rejection) => Err(ApiError::new(
            rejection.status(),
            "invalid_body",
            rejection.body_text(),
        )),
    }
}

/// The request's query as a `T`, or the `invalid_query` error (400).
pub(super) fn read_query<T: DeserializeOwned + IntoParams>(parts: &Parts) -> Result<T, ApiError> {
    match Query::<T>::try_from_uri(&parts.uri) {
        Ok(Query(value)) => Ok(value),
        Err(rejection) => Err(ApiError::bad_request(
            "invalid_query",
            naming_missing(
                &rejection.body_text(),
                QUERY_PREFIX,
                &missing_query_fields::<T>(parts.uri.query()),
            ),
        )),
    }
}

/// The fields `T`'s schema requires that `body`, a JSON object, lacks; none when `body` is
/// not a JSON object (serde's message says what it is instead).
fn missing_body_fields<T: PartialSchema>(body: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    match T::schema() {
        RefOr::T(Schema::Object(schema)) => schema
            .required
            .into_iter()
            .filter(|field| !object.contains_key(field))
            .collect(),
        _ => Vec::new(),
    }
}

/// The query parameters `T` requires that `query` lacks.
fn missing_query_fields<T: IntoParams>(query: Option<&str>) -> Vec<String> {
    let given: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect();
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .filter(|param| matches!(param.required, Required::True))
        .filter(|param| !given.contains(&param.name))
        .map(|param| param.name)
        .collect()
}

/// axum's message `text` with every field of `missing` named: "… missing fields `a`, `b`",
/// then what serde said when it was about something else. `text` as it is when nothing is
/// missing.
fn naming_missing(text: &str, prefix: &str, missing: &[String]) -> String {
    if missing.is_empty() {
        return text.to_owned();
    }
    let (prefix, detail) = match text.strip_prefix(prefix) {
        Some(detail) => (prefix, detail),
        None => ("", text),
    };
    let names: Vec<String> = missing.iter().map(|field| format!("`{field}`")).collect();
    let fields = match missing.len() {
        1 => "field",
        _ => "fields",
    };
    let named = format!("{prefix}missing {fields} {}", names.join(", "));
    // serde names one missing field, which the list has.
    let serde_named = detail
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    if serde_named.is_some_and(|field| missing.iter().any(|m| m == field)) {
        named
    } else {
        format!("{named}; {detail}")
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use utoipa::{IntoParams, ToSchema};

    use super::*;

    #[derive(Debug, Deserialize, ToSchema, IntoParams)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        integration: String,
        connection_id: String,
        limit: Option<u32>,
        #[serde(default)]
        full: bool,
    }

    fn body_error(body: &str) -> String {
        let error = Json::<Sample>::from_bytes(body.as_bytes())
            .expect_err("not a Sample")
            .body_text();
        naming_missing(
            &error,
            JSON_PREFIX,
            &missing_body_fields::<Sample>(body.as_bytes()),
        )
    }

    fn query_error(query: &str) -> String {
        let uri = format!("/x?{query}").parse().unwrap();
        let error = Query::<Sample>::try_from_uri(&uri)
            .expect_err("not a Sample")
            .body_text();
        naming_missing(
            &error,
            QUERY_PREFIX,
            &missing_query_fields::<Sample>(Some(query)),
        )
    }

    #[test]
    fn every_missing_field_is_named_and_other_errors_are_kept() {
        assert_eq!(
            body_error("{}"),
            "Failed to deserialize the JSON body into the target type: missing fields \
             `integration`, `connection_id`"
        );
        assert_eq!(
            body_error(r#"{"integration": "x"}"#),
            "Failed to deserialize the JSON body into the target type: missing field \
             `connection_id`"
        );
        assert_eq!(
            body_error(r#"{"integraton": "x"}"#),
            "Failed to deserialize the JSON body into the target type: missing fields \
             `integration`, `connection_id`; integraton: unknown field `integraton`, expected \
             one of `integration`, `connection_id`, `limit`, `full` at line 1 column 13"
        );
        assert_eq!(
            body_error(r#"{"integration": "x", "connection_id": 7}"#),
            "Failed to deserialize the JSON body into the target type: connection_id: invalid \
             type: integer `7`, expected a string at line 1 column 39"
        );
        assert_eq!(
            body_error("7"),
            "Failed to deserialize the JSON body into the target type: invalid type: integer \
             `7`, expected struct Sample at line 1 column 1"
        );
        assert_eq!(
            query_error("limit=10"),
            "Failed to deserialize query string: missing fields `integration`, `connection_id`"
        );
        assert_eq!(
            query_error("limit=ten&integration=x"),
            "Failed to deserialize query string: missing field `connection_id`; limit: invalid \
             digit found in string"
        );
    }
}

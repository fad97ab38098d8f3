//! `GET /openapi.json`: an OpenAPI 3.1 description of the whole HTTP API.
//!
//! It is generated from the code — each handler's `#[utoipa::path]` and the `ToSchema` types it
//! reads and writes — so it changes with the API instead of drifting from it: a snapshot test
//! pins it here, and an end-to-end test (`tests/e2e/openapi.rs`) calls every operation it
//! describes on the running server and checks each answer against it. Answers many operations
//! share (the API key's 401, the store's 500 and 503, a JSON body's 415 and 422) are added
//! once, by [`SharedAnswers`], rather than written on every handler. The document describes
//! only what callers already see, so it needs no API key.

use std::sync::LazyLock;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{
    ErrorBody, actions, connect, connections, integrations, key_connections, oauth, pages, proxy,
    records, syncs,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Plugboard",
        description = "Connect your users' accounts at other services, call their APIs through \
                       the proxy, and read what the syncs keep. Errors are \
                       `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}`."
    ),
    paths(
        super::health,
        document,
        connect::create,
        integrations::list,
        connections::list,
        key_connections::create,
        connections::show,
        connections::remove,
        records::list,
        syncs::trigger,
        syncs::pause,
        syncs::start,
        syncs::frequency,
        syncs::status,
        syncs::runs,
        syncs::deliveries,
        actions::run,
        proxy::serve,
        oauth::start::connect_page,
        oauth::start::connect,
        oauth::start::admin_consent,
        oauth::finish::callback,
        pages::stylesheet,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SharedAnswers),
)]
struct ApiDoc;

/// The name of the API key's security scheme, which authenticated operations name in their
/// `security(…)`.
const API_KEY: &str = "api_key";

/// The document as served, serialised once: it cannot change while the server runs.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the API description serialises")
});

/// This description of the API
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    operation_id = "openapi",
    responses((
        status = 200,
        description = "This OpenAPI 3.1 document.",
        body = Object,
        content_type = "application/json"
    ))
)]
pub(super) async fn document() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// Adds the bearer scheme, the answers shared by many operations, and operation ids of their
/// own to operations documented for several methods at once.
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API's secret key (`[security] secret_key`), as \
                         `Authorization: Bearer <secret_key>`.",
                    ))
                    .build(),
            ),
        );
        for shared in SHARED {
            components
                .responses
                .insert(shared.name.to_owned(), RefOr::T(shared.response()));
        }
        for item in openapi.paths.paths.values_mut() {
            let mut operations = operations(item);
            let ids: Vec<Option<String>> = operations
                .iter()
                .map(|(_, operation)| operation.operation_id.clone())
                .collect();
            for (method, operation) in &mut operations {
                if ids
                    .iter()
                    .filter(|id| **id == operation.operation_id)
                    .count()
                    > 1
                {
                    operation.operation_id = operation
                        .operation_id
                        .take()
                        .map(|id| format!("{id}_{method}"));
                }
                add_shared_answers(operation);
            }
        }
    }
}

/// An answer several operations share, documented once under `components/responses`.
struct Shared {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    /// Which operations give it.
    applies: fn(&Operation) -> bool,
}

const SHARED: [Shared; 7] = [
    Shared {
        status: "413",
        name: "BodyTooLarge",
        description: "The body is larger than `[server] max_body_size` (`body_too_large`).",
        applies: takes_json,
    },
    Shared {
        status: "401",
        name: "Unauthorized",
        description: "No API key, or a wrong one (`unauthorized`); the answer carries \
                      `WWW-Authenticate: Bearer`.",
        applies: authenticated,
    },
    Shared {
        status: "429",
        name: "TooManyFailedAttempts",
        description: "Too many requests with a wrong API key came from the caller's address \
                      (`too_many_failed_attempts`): every request from it is refused until \
                      `Retry-After` has passed.",
        applies: authenticated,
    },
    Shared {
        status: "415",
        name: "NotJson",
        description: "The body was not sent as `Content-Type: application/json`.",
        applies: takes_json,
    },
    Shared {
        status: "422",
        name: "InvalidBody",
        description: "The body is JSON but not of the request's schema: a field missing, of the \
                      wrong type, or unknown (`invalid_body`).",
        applies: takes_json,
    },
    Shared {
        status: "500",
        name: "StoreError",
        description: "The store failed (`store_error`); the server log says why.",
        applies: authenticated,
    },
    Shared {
        status: "503",
        name: "Unavailable",
        description: "The store cannot be reached right now, or it refused to write because \
                      its disk is full or it is read-only while reads still work \
                      (`store_unavailable`, with `Retry-After`), or a token refresh failed for a \
                      passing reason (`refresh_failed`); try again shortly.",
        applies: authenticated,
    },
];

impl Shared {
    fn response(&self) -> utoipa::openapi::Response {
        let error = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build();
        ResponseBuilder::new()
            .description(self.description)
            .content("application/json", error)
            .build()
    }
}

fn authenticated(operation: &Operation) -> bool {
    operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty())
}

/// Whether the operation reads a JSON body, through `ApiJson`, whose rejections are these.
fn takes_json(operation: &Operation) -> bool {
    operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"))
}

/// The shared answers that apply to the operation, where it documents none of its own.
fn add_shared_answers(operation: &mut Operation) {
    let applying: Vec<&Shared> = SHARED
        .iter()
        .filter(|shared| (shared.applies)(operation))
        .collect();
    for shared in applying {
        operation
            .responses
            .responses
            .entry(shared.status.to_owned())
            .or_insert_with(|| Ref::from_response_name(shared.name).into());
    }
}

/// The item's operations, with their methods as OpenAPI spells them.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("options", item.options.as_mut()),
        ("head", item.head.as_mut()),
        ("patch", item.patch.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any change to the API shows here first, for review.
    #[test]
    fn openapi_description_is_pinned() {
        insta::assert_json_snapshot!(ApiDoc::openapi());
    }

    /// OpenAPI requires unique operation ids, and a security requirement must name a scheme the
    /// document declares: the handlers spell it out in their `security(…)`.
    #[test]
    fn openapi_ids_are_unique_and_security_names_the_scheme() {
        let mut doc = ApiDoc::openapi();
        let mut ids = Vec::new();
        for item in doc.paths.paths.values_mut() {
            for (method, operation) in operations(item) {
                ids.push(operation.operation_id.clone().unwrap_or_default());
                for requirement in operation.security.iter().flatten() {
                    let names = serde_json::to_value(requirement).unwrap();
                    let names: Vec<&String> = names.as_object().unwrap().keys().collect();
                    assert_eq!(names, [API_KEY], "{method} {:?}", operation.operation_id);
                }
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{ids:?}");
        assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
        let schemes = doc.components.unwrap().security_schemes;
        assert!(schemes.contains_key(API_KEY));
    }
}

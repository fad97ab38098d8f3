//! `POST /connections`: a connection made from an API key the caller already has, for
//! integrations whose provider authenticates with one (`auth.mode = "api_key"`). OAuth
//! integrations connect through a connect session instead.
//!
//! The key is sealed like an access token (in the same column, bound to the row, rotated by
//! `keys rotate`) and never echoed: only `GET /connections/{id}` returns it. When the spec
//! declares an `[account]` endpoint the key is tried on it first, so a key the provider rejects
//! is refused before anything is stored.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plugboard_core::ErrorKind;
use plugboard_core::http::Credential;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::account::fetch_account;
use super::connect::new_connection_config;
use super::connections::ConnectionView;
use super::{ApiError, ApiJson, AppState, ErrorBody};
use plugboard_store::{ConnectionKey, NewConnection, Tokens};

/// Longest key accepted; real keys are well under 200 characters.
const MAX_KEY_LEN: usize = 4096;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateConnection {
    /// An integration whose provider authenticates with API keys.
    integration: String,
    /// The caller's own key for the connection: 1 to 128 letters, digits, `-`, `_`, `.`, `:`
    /// or `@`.
    connection_id: String,
    /// Values for the provider's connection config; the spec's defaults fill the rest.
    #[serde(default)]
    connection_config: BTreeMap<String, String>,
    credentials: KeyCredentials,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyCredentials {
    /// The key, printable ASCII without spaces, at most 4096 bytes.
    #[schema(value_type = String)]
    api_key: SecretString,
}

/// Deliberately without the key.
impl std::fmt::Debug for KeyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCredentials { .. }")
    }
}

/// Create a connection from an API key
///
/// For integrations whose provider authenticates with API keys; when the provider's spec
/// declares an account endpoint, the key is tried on it first. Creating a connection that
/// exists replaces its key.
#[utoipa::path(
    post,
    path = "/connections",
    tag = "connections",
    operation_id = "create_connection",
    request_body = CreateConnection,
    responses(
        (status = 201, description = "The new connection (without its key).", body = ConnectionView),
        (status = 200, description = "The connection existed; its key was replaced.", body = ConnectionView),
        (status = 400, description = "A body that is not JSON (`invalid_body`), an invalid \
            `connection_id`, `connection_config` or key (`invalid_credentials`), or an OAuth \
            integration (`oauth_integration`).", body = ErrorBody),
        (status = 404, description = "No such integration (`integration_not_found`).", body = ErrorBody),
        (status = 422, description = "The body is not of the request's schema (`invalid_body`), \
            or the provider rejected the key (`invalid_credentials`); nothing was stored.", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let integration = &state.integration(&request.integration)?;
    let Some(key_spec) = integration.api_key() else {
        return Err(ApiError::bad_request(
            "oauth_integration",
            format!(
                "integration `{}` connects through OAuth: create a connect session \
                 (POST /connect/sessions) instead",
                request.integration
            ),
        ));
    };
    let connection_config = new_connection_config(
        integration,
        &request.connection_id,
        &request.connection_config,
    )?;
    let api_key = request.credentials.api_key;
    check_api_key(secrecy::ExposeSecret::expose_secret(&api_key))?;

    let credential = Credential::ApiKey {
        spec: key_spec,
        key: secrecy::ExposeSecret::expose_secret(&api_key),
    };
    let account = match fetch_account(&state, integration, &connection_config, credential).await {
        Ok(account) => account,
        Err(error) => match error.kind {
            ErrorKind::Http {
                status: status @ (401 | 403),
            } => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_credentials",
                    format!(
                        "credentials.api_key: the provider rejected the key ({status} from its \
                         account endpoint); nothing was stored"
                    ),
                ));
            }
            // Like the OAuth flow: a connection without its account still works.
            _ => {
                tracing::warn!(integration = %integration.name, %error, "reading the connected account failed");
                None
            }
        },
    };

    let key = ConnectionKey::new(&request.integration, &request.connection_id);
    let new = NewConnection {
        key,
        provider: integration.spec().id.clone(),
        connection_config,
        account,
        tokens: Tokens {
            access_token: api_key,
            refresh_token: None,
            id_token: None,
            expires_at: None,
            scopes: Vec::new(),
        },
    };
    let connection = state.connections.save(new).await?;
    tracing::info!(integration = %request.integration, connection_id = %request.connection_id, "API-key connection saved");
    state.syncs.connection_saved(&connection);
    let view = ConnectionView::of(&connection);
    // Decided by the store's write, so of racing creations one answers 201.
    let status = if connection.token_version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// A key that could not be sent in a header or a URL unchanged is refused now, not at its first
/// use. The messages never contain the key.
fn check_api_key(key: &str) -> Result<(), ApiError> {
    let problem = if key.is_empty() {
        Some("must not be empty".to_owned())
    } else if key.len() > MAX_KEY_LEN {
        Some(format!("must be at most {MAX_KEY_LEN} bytes"))
    } else if key.trim() != key {
        Some("must not start or end with whitespace".to_owned())
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be printable ASCII without spaces (letters, digits, punctuation)".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ApiError::bad_request(
            "invalid_credentials",
            format!("credentials.api_key: {problem}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_refused_naming_the_field_but_not_the_key() {
        assert!(check_api_key("pk_live_abc-123.XYZ+/=").is_ok());
        for (bad, why) in [
            ("", "must not be empty"),
            (" padded-SECRET", "must not start or end with whitespace"),
            ("tab\tSECRET", "must be printable ASCII"),
            ("two words-SECRET", "must be printable ASCII"),
            ("caf\u{e9}-SECRET", "must be printable ASCII"),
        ] {
            let error = check_api_key(bad).unwrap_err();
            assert_eq!(error.code, "invalid_credentials");
            assert!(
                error.message.starts_with("credentials.api_key: "),
                "{error:?}"
            );
            assert!(error.message.contains(why), "{bad}: {error:?}");
            assert!(!error.message.contains("SECRET"), "{error:?}");
        }
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(check_api_key(&long).is_err());
    }
}

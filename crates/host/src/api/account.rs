//! Reading the connected account from the spec's `[account]` endpoint, with whatever credential
//! the connection has: the OAuth callback does it with the new access token, `POST
//! /connections` with the API key it was given (where a rejection refuses the key).

use std::collections::BTreeMap;

use plugboard_core::http::{ApiClient, Credential};
use plugboard_core::{HttpRequest, ProviderError};
use serde_json::{Map, Value};

use super::AppState;
use crate::integrations::Integration;

/// The account's `id`, `display_name` and `email` as the spec's pointers find them; `None`
/// when the spec declares no account endpoint.
pub async fn fetch_account(
    state: &AppState,
    integration: &Integration,
    connection_config: &BTreeMap<String, String>,
    credential: Credential<'_>,
) -> Result<Option<Value>, ProviderError> {
    let Some(spec) = integration.spec().account.as_ref() else {
        return Ok(None);
    };
    let base = integration
        .api_base_url(connection_config)
        .map_err(ProviderError::invalid_input)?;
    let client = ApiClient::new(state.http.clone(), integration.api(), base.into_owned());
    let body = client
        .send_with(&HttpRequest::get(&spec.path), Some(credential))
        .await?
        .error_for_status()?
        .json::<Value>()?;
    let mut account = Map::new();
    for (field, pointer) in [
        ("id", Some(&spec.id)),
        ("display_name", spec.display_name.as_ref()),
        ("email", spec.email.as_ref()),
    ] {
        if let Some(value) = pointer.and_then(|p| body.pointer(p)) {
            account.insert(field.to_owned(), value.clone());
        }
    }
    Ok(Some(Value::Object(account)))
}

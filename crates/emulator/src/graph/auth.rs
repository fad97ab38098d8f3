//! The bearer check: the token must be one the emulator issued and still valid.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::GraphError;
use crate::state::AppState;

/// Who is calling: the app and signed-in user behind the access token.
pub struct Caller {
    pub client_id: String,
    pub user_id: String,
    pub tenant_id: String,
    scopes: Vec<&'static str>,
}

impl Caller {
    pub fn has_any(&self, scopes: &[&str]) -> bool {
        scopes.iter().any(|scope| self.scopes.contains(scope))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| GraphError::unauthenticated("Access token is empty."))?;
        let world = state.read();
        let access = world
            .tokens
            .access
            .get(token)
            .ok_or_else(|| GraphError::unauthenticated("Access token validation failure."))?;
        if state.clock.now() >= access.expires_at {
            return Err(GraphError::unauthenticated(
                "Access token has expired or is not yet valid.",
            ));
        }
        Ok(Caller {
            client_id: access.client_id.clone(),
            user_id: access.user_id.clone(),
            tenant_id: access.tenant_id.clone(),
            scopes: access.scopes.clone(),
        })
    }
}

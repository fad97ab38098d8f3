//! Graph's error responses: `{"error": {"code", "message", "innerError": {…}}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::observe::RequestContext;

#[derive(Debug)]
pub struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after_secs = seconds;
        self
    }

    pub fn unauthenticated(message: &str) -> Self {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    /// A people request without the permission it needs.
    pub fn access_denied() -> Self {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    /// A directory (`/me`) request without the permission it needs.
    pub fn insufficient_privileges() -> Self {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn user_not_found(user: &str) -> Self {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{user}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn throttled(message: &str, retry_after_secs: u64) -> Self {
        GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            message,
        )
        .with_retry_after(Some(retry_after_secs))
    }

    /// The error Graph would send with `status`, for injected faults.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("BadRequest", "Invalid request."),
            401 => (
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
            403 => (
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ),
            404 => ("ResourceNotFound", "Resource could not be discovered."),
            429 => ("TooManyRequests", "Too many requests."),
            500 => ("generalException", "An unspecified error has occurred."),
            502 => (
                "badGateway",
                "The server received an invalid response from an upstream server.",
            ),
            503 => (
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please try again later.",
            ),
            504 => (
                "gatewayTimeout",
                "The server did not receive a timely response from an upstream server.",
            ),
            _ => ("UnknownError", ""),
        };
        GraphError::new(status, code, message)
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let context = RequestContext::current();
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": context.timestamp.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": context.request_id,
                    "client-request-id": context.client_request_id,
                }
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        response
    }
}

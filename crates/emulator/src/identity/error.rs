//! The identity platform's errors, in its three presentations: a JSON body at the token
//! endpoint, Microsoft's own HTML error page, and a redirect back to the app.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::pages;
use super::redirect::Redirect;
use crate::control::types::AuthorizeErrorKind;
use crate::observe::RequestContext;
use crate::scopes::GRAPH_APP_ID;

/// An `AADSTSnnnn: …` error as Microsoft words it.
#[derive(Debug, Clone)]
pub struct Aadsts {
    pub code: u32,
    pub message: String,
}

impl Aadsts {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Aadsts {
            code,
            message: message.into(),
        }
    }

    /// `AADSTSnnnn: message` followed by the trace lines Microsoft appends.
    pub fn description(&self, context: &RequestContext) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code,
            self.message,
            context.request_id,
            context.correlation_id,
            timestamp(context.timestamp)
        )
    }

    pub fn error_uri(&self) -> String {
        format!("https://login.microsoftonline.com/error?code={}", self.code)
    }

    pub fn tenant_not_found(tenant: &str) -> Self {
        Aadsts::new(
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
                 the correct cloud. Check with your subscription administrator, this may happen if there are no active \
                 subscriptions for the tenant."
            ),
        )
    }

    pub fn missing_parameter(name: &str) -> Self {
        Aadsts::new(
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn unknown_client(client_id: &str, tenant: &str) -> Self {
        Aadsts::new(
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen \
                 if the application has not been installed by the administrator of the tenant or consented to by any \
                 user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    pub fn not_multi_tenant(client_id: &str, name: &str) -> Self {
        Aadsts::new(
            50194,
            format!(
                "Application '{client_id}'({name}) is not configured as a multi-tenant application. Usage of the \
                 /common endpoint is not supported for such applications created after '10/15/2018'. Use a \
                 tenant-specific endpoint or configure the application to be multi-tenant."
            ),
        )
    }

    pub fn redirect_mismatch(redirect_uri: &str, client_id: &str) -> Self {
        Aadsts::new(
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs \
                 configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches \
                 one added to your application in the Azure portal. Navigate to \
                 https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        )
    }

    pub fn admin_consent_needs_tenant(client_id: &str, name: &str) -> Self {
        Aadsts::new(
            90130,
            format!(
                "Application '{client_id}' ({name}) is not supported over the /common or /consumers endpoints. \
                 Please use the /organizations or tenant-specific endpoint."
            ),
        )
    }

    pub fn unknown_user(login_hint: &str, tenant: &str) -> Self {
        Aadsts::new(
            50034,
            format!(
                "The user account {login_hint} does not exist in the {tenant} directory. To sign into this \
                 application, the account must be added to the directory."
            ),
        )
    }

    pub fn invalid_response_mode(mode: &str) -> Self {
        Aadsts::new(
            900136,
            format!(
                "The response_mode '{mode}' is not supported. Use 'query', 'fragment' or 'form_post'."
            ),
        )
    }

    pub fn unsupported_response_type(response_type: &str) -> Self {
        Aadsts::new(
            700054,
            format!("response_type '{response_type}' is not enabled for the application."),
        )
    }

    pub fn invalid_scope(scope: &str) -> Self {
        Aadsts::new(
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not exist."
            ),
        )
    }

    pub fn unsupported_challenge_method(method: &str) -> Self {
        Aadsts::new(
            501492,
            format!("Unsupported code_challenge_method '{method}'. Use 'S256'."),
        )
    }

    pub fn invalid_challenge_size() -> Self {
        Aadsts::new(501491, "Invalid size of Code_Challenge parameter.")
    }

    pub fn user_declined() -> Self {
        Aadsts::new(65004, "User declined to consent to access the app.")
    }

    pub fn unknown_consent_prompt() -> Self {
        Aadsts::new(
            90014,
            "The consent request has expired or was already answered. Sign in again.",
        )
    }

    /// The default description of a scheduled authorize outcome.
    pub fn for_outcome(kind: AuthorizeErrorKind, client_id: &str, app_name: &str) -> Self {
        use AuthorizeErrorKind::*;
        match kind {
            InvalidRequest => Aadsts::new(
                90014,
                "The required field 'scope' is missing from the credential. Ensure that you have all the necessary \
                 parameters for the login request.",
            ),
            UnauthorizedClient => Aadsts::new(
                7000112,
                format!("Application '{client_id}'({app_name}) is disabled."),
            ),
            AccessDenied => Aadsts::user_declined(),
            UnsupportedResponseType => Aadsts::unsupported_response_type("token"),
            ServerError => Aadsts::new(
                50000,
                "There was an error issuing a token or an issue with our sign-in service.",
            ),
            TemporarilyUnavailable => Aadsts::transient(),
            InvalidResource => Aadsts::new(
                500011,
                "The resource principal named https://graph.microsoft.com was not found in the tenant. This can happen \
                 if the application has not been installed by the administrator of the tenant or consented to by any \
                 user in the tenant. You might have sent your authentication request to the wrong tenant.",
            ),
            LoginRequired => Aadsts::new(
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            ),
            InteractionRequired => Aadsts::mfa_required(),
            ConsentRequired => Aadsts::consent_required(client_id, app_name),
        }
    }

    pub fn server_error() -> Self {
        Aadsts::new(
            50000,
            "There was an error issuing a token or an issue with our sign-in service.",
        )
    }

    pub fn transient() -> Self {
        Aadsts::new(90033, "A transient error has occurred. Please try again.")
    }

    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        Aadsts::new(
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        )
    }

    pub fn missing_credential() -> Self {
        Aadsts::new(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    }

    pub fn wrong_secret(client_id: &str) -> Self {
        Aadsts::new(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
                 value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    }

    pub fn secret_expired(client_id: &str) -> Self {
        Aadsts::new(
            7000222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create \
                 new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for \
                 added security: https://aka.ms/certCreds"
            ),
        )
    }

    pub fn malformed_grant() -> Self {
        Aadsts::new(9002313, "Invalid request. Request is malformed or invalid.")
    }

    pub fn reply_address_mismatch(given: &str, original: &str) -> Self {
        Aadsts::new(
            500112,
            format!(
                "The reply address '{given}' does not match the reply address '{original}' provided when requesting \
                 Authorization code."
            ),
        )
    }

    pub fn code_redeemed() -> Self {
        Aadsts::new(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing \
             refresh token.",
        )
    }

    pub fn expired_grant() -> Self {
        Aadsts::new(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive \
             authorization request for this user and resource.",
        )
    }

    pub fn inactive_refresh_token(issued_at: DateTime<Utc>) -> Self {
        Aadsts::new(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for \
                 90.00:00:00.",
                dotnet_timestamp(issued_at)
            ),
        )
    }

    pub fn revoked_grant(issued_at: DateTime<Utc>, valid_from: DateTime<Utc>) -> Self {
        Aadsts::new(
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might \
                 have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date \
                 (before which tokens are not valid) for this user is '{}'.",
                dotnet_timestamp(issued_at),
                dotnet_timestamp(valid_from)
            ),
        )
    }

    pub fn consent_required(client_id: &str, app_name: &str) -> Self {
        Aadsts::new(
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' named \
                 '{app_name}'. Send an interactive authorization request for this user and resource."
            ),
        )
    }

    pub fn mfa_required() -> Self {
        Aadsts::new(
            50076,
            format!(
                "Due to a configuration change made by your administrator, or because you moved to a new location, \
                 you must use multi-factor authentication to access '{GRAPH_APP_ID}'."
            ),
        )
    }

    pub fn pkce_mismatch() -> Self {
        Aadsts::new(
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
        )
    }

    pub fn scopes_not_granted() -> Self {
        Aadsts::new(
            70000,
            "The request was denied because one or more scopes requested are unauthorized or expired. The user must \
             first sign in and grant the client application access to the requested scope.",
        )
    }
}

/// Microsoft's timestamp format in error bodies: `2024-05-01 12:00:00Z`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// .NET's round-trip format, with 100-nanosecond ticks: `2024-05-01T12:00:00.1234567Z`.
fn dotnet_timestamp(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.timestamp_subsec_nanos() / 100
    )
}

/// An error from the token endpoint.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    aadsts: Aadsts,
    suberror: Option<&'static str>,
    claims: Option<&'static str>,
}

/// The claims challenge that comes with an MFA requirement.
const MFA_CLAIMS: &str = r#"{"access_token":{"capolids":{"essential":true,"values":["5a2f7d4c-9c1e-4b8a-8f3e-2d6b1c0a9e71"]}}}"#;

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, aadsts: Aadsts) -> Self {
        OAuthError {
            status,
            error,
            aadsts,
            suberror: None,
            claims: None,
        }
    }

    /// The AADSTS number, as the body's `error_codes` carry it.
    pub fn code(&self) -> u32 {
        self.aadsts.code
    }

    pub fn invalid_request(aadsts: Aadsts) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", aadsts)
    }

    pub fn invalid_grant(aadsts: Aadsts) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", aadsts)
    }

    /// Client authentication failures are the only 401s.
    pub fn invalid_client(aadsts: Aadsts) -> Self {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", aadsts)
    }

    pub fn unauthorized_client(aadsts: Aadsts) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", aadsts)
    }

    pub fn invalid_scope(aadsts: Aadsts) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", aadsts)
    }

    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            Aadsts::unsupported_grant_type(grant_type),
        )
    }

    pub fn consent_required(client_id: &str, app_name: &str) -> Self {
        OAuthError {
            suberror: Some("consent_required"),
            ..Self::invalid_grant(Aadsts::consent_required(client_id, app_name))
        }
    }

    pub fn mfa_required() -> Self {
        OAuthError {
            suberror: Some("basic_action"),
            claims: Some(MFA_CLAIMS),
            ..Self::invalid_grant(Aadsts::mfa_required())
        }
    }

    /// What the token endpoint would send with `status`, for injected faults.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => OAuthError::invalid_request(Aadsts::malformed_grant()),
            401 => OAuthError::invalid_client(Aadsts::missing_credential()),
            429 => OAuthError::new(
                status,
                "temporarily_unavailable",
                Aadsts::new(
                    90055,
                    "There are too many incoming requests. Please try again later.",
                ),
            ),
            502..=504 => OAuthError::new(status, "temporarily_unavailable", Aadsts::transient()),
            _ => OAuthError::new(status, "server_error", Aadsts::server_error()),
        }
    }
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: &'a str,
    correlation_id: &'a str,
    error_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    suberror: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<&'a str>,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let context = RequestContext::current();
        let body = OAuthErrorBody {
            error: self.error,
            error_description: self.aadsts.description(&context),
            error_codes: [self.aadsts.code],
            timestamp: timestamp(context.timestamp),
            trace_id: &context.request_id,
            correlation_id: &context.correlation_id,
            error_uri: self.aadsts.error_uri(),
            suberror: self.suberror,
            claims: self.claims,
        };
        (
            self.status,
            [(header::CACHE_CONTROL, "no-store, no-cache")],
            Json(body),
        )
            .into_response()
    }
}

/// A failed sign-in step: either Microsoft's own error page (nothing goes back to the app, as
/// when the client or redirect URI cannot be trusted) or an error redirect to the app.
pub enum FlowError {
    Page(Aadsts),
    Redirect(Redirect),
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        match self {
            FlowError::Page(aadsts) => pages::error_page(&aadsts, &RequestContext::current()),
            FlowError::Redirect(redirect) => redirect.into_response(),
        }
    }
}

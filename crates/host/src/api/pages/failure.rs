//! A failed or refused authorization told to the person in front of the browser: the OAuth
//! engine's classification of the failure ([`OAuthErrorKind`]) in plain words, with the
//! provider's code and description underneath for whoever they ask for help.
//!
//! The application's name comes from `[ui] app_name`, which may be the default "the
//! application", so no sentence starts with it.

use axum::http::StatusCode;
use plugboard_core::oauth::{OAuthError, OAuthErrorKind, Stage};

use super::Message;

/// Whether the provider refused because nobody has consented to the scopes asked for, which
/// for an integration asking for admin-only scopes means an administrator must consent first
/// (Microsoft: AADSTS65001, `consent_required`).
pub(in crate::api) fn needs_admin_consent_first(error: &OAuthError) -> bool {
    error.stage() == Stage::Authorize
        && (error.aadsts() == Some(65001)
            || error.error() == Some("consent_required")
            || error.suberror() == Some("consent_required"))
}

/// The page for a failed flow. `admin_consent_first` (see [`needs_admin_consent_first`]) turns
/// it into the page that asks for an administrator.
pub(in crate::api) fn explain(
    error: &OAuthError,
    app: &str,
    provider: &str,
    admin_consent_first: bool,
) -> Message {
    use OAuthErrorKind::*;
    let (status, title, detail) = match error.kind() {
        _ if admin_consent_first => (
            StatusCode::FORBIDDEN,
            "An administrator must consent first",
            format!(
                "Some of the permissions {app} asks for can only be granted by an administrator \
                 of your organisation, and none has yet. Send the link below to an \
                 administrator; once they have consented for the organisation, connect again \
                 from {app}."
            ),
        ),
        UserDeclined if error.stage() == Stage::AdminConsent => (
            StatusCode::BAD_REQUEST,
            "Access was declined",
            format!(
                "The administrator declined to grant {app} access for the organisation, so \
                 nothing changed."
            ),
        ),
        UserDeclined => (
            StatusCode::BAD_REQUEST,
            "Access was declined",
            format!(
                "You declined to give {app} access to your {provider} account, so nothing was \
                 connected. If that was a mistake, connect again from {app} and accept."
            ),
        ),
        InteractionRequired => (
            StatusCode::BAD_REQUEST,
            "Sign-in or consent is needed",
            format!(
                "{provider} needs you to sign in and consent before your account can be \
                 connected. Connect again from {app}."
            ),
        ),
        ReconnectNeeded => (
            StatusCode::BAD_REQUEST,
            "Permission is missing",
            format!(
                "{provider} did not grant the access {app} asks for, so nothing was \
                 connected. Connect again from {app}."
            ),
        ),
        CodeAlreadyUsed => (
            StatusCode::BAD_REQUEST,
            "This sign-in was already used",
            format!("This sign-in was already completed once. Connect again from {app}."),
        ),
        CallbackRejected => (
            StatusCode::BAD_REQUEST,
            "Sign-in could not be completed",
            format!(
                "The answer from {provider} could not be used to finish signing in, so \
                 nothing was connected. Connect again from {app}."
            ),
        ),
        IntegrationMisconfigured => (
            StatusCode::BAD_GATEWAY,
            "The integration is misconfigured",
            format!(
                "Your account is fine: the settings {app} uses to connect to {provider} are \
                 wrong ({}), so nothing was connected. Let the people behind {app} know.",
                code(error)
            ),
        ),
        Transient => (
            StatusCode::BAD_GATEWAY,
            "The provider is unavailable",
            format!(
                "{provider} could not be reached or was too busy to answer, so nothing was \
                 connected. Try again in a few minutes from {app}."
            ),
        ),
    };
    let details = match error.description() {
        Some(description) => format!("Details: {error} ({provider} said: {description})"),
        None => format!("Details: {error}"),
    };
    Message {
        details: Some(details),
        ..Message::new(status, title, detail)
    }
}

/// The code that names the failure: Microsoft's AADSTS number, else the OAuth error.
fn code(error: &OAuthError) -> String {
    match (error.aadsts(), error.error()) {
        (Some(number), _) => format!("AADSTS{number}"),
        (None, Some(error)) => format!("error `{error}`"),
        (None, None) => "no error code".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_core::oauth::{ErrorFields, classify};

    fn callback_error(error: &str, code: u32, description: &str) -> OAuthError {
        classify(
            Stage::Authorize,
            None,
            &ErrorFields {
                error: Some(error.into()),
                error_description: Some(format!("AADSTS{code}: {description}")),
                ..ErrorFields::default()
            },
        )
    }

    #[test]
    fn each_failure_says_what_happened_in_plain_words() {
        let declined = callback_error("access_denied", 65004, "User declined to consent.");
        assert!(!needs_admin_consent_first(&declined));
        let page = explain(&declined, "Contoso CRM", "Microsoft People", false);
        assert_eq!(page.title, "Access was declined");
        assert!(
            page.detail.starts_with(
                "You declined to give Contoso CRM access to your Microsoft People account"
            ),
            "{}",
            page.detail
        );
        let details = page.details.unwrap();
        assert!(
            details.contains("AADSTS65004") && details.contains("User declined to consent."),
            "{details}"
        );

        let consent = callback_error(
            "consent_required",
            65001,
            "The user or administrator has not consented.",
        );
        assert!(needs_admin_consent_first(&consent));
        let page = explain(&consent, "the application", "Microsoft People", true);
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert_eq!(page.title, "An administrator must consent first");
        assert!(
            page.detail
                .contains("an administrator of your organisation"),
            "{}",
            page.detail
        );

        let token_error = |body: &str| {
            classify(
                Stage::CodeExchange,
                Some(401),
                &ErrorFields::from_body(body.as_bytes()),
            )
        };
        let wrong_secret = token_error(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#,
        );
        assert!(!needs_admin_consent_first(&wrong_secret));
        let page = explain(&wrong_secret, "the application", "Microsoft People", false);
        assert_eq!(page.status, StatusCode::BAD_GATEWAY);
        assert!(page.detail.contains("(AADSTS7000215)"), "{}", page.detail);
        assert!(
            page.detail.starts_with("Your account is fine"),
            "no sentence starts with the app's name"
        );
        let unnumbered = token_error(r#"{"error":"invalid_client"}"#);
        let page = explain(&unnumbered, "the application", "Microsoft People", false);
        assert!(
            page.detail.contains("(error `invalid_client`)"),
            "{}",
            page.detail
        );
    }
}

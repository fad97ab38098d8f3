use super::*;

#[test]
fn only_a_refused_client_credential_is_worth_another_credential() {
    use Stage::{CodeExchange as X, Refresh as R};
    let refused = |stage, status, error: &str, code| {
        classify(stage, Some(status), &token_error(error, code, None)).rejects_client_credential()
    };
    for code in [7000215, 7000222, 700027, 700024] {
        assert!(refused(R, 401, "invalid_client", Some(code)), "{code}");
        assert!(refused(X, 401, "invalid_client", Some(code)), "{code}");
    }
    // Other providers: the standard error, or a bare 401.
    assert!(refused(R, 401, "invalid_client", None));
    assert!(classify(R, Some(401), &ErrorFields::default()).rejects_client_credential());
    // The integration's other mistakes, the grant's, and the provider's troubles are not.
    for (status, error, code) in [
        (400, "invalid_client", Some(700016)),
        (400, "invalid_scope", Some(70011)),
        (400, "invalid_grant", Some(70008)),
        (401, "invalid_client", Some(700023)),
        (503, "temporarily_unavailable", None),
        (400, "invalid_request", None),
    ] {
        assert!(
            !refused(R, status, error, code),
            "{status} {error} {code:?}"
        );
    }
    let local = OAuthError::local(IntegrationMisconfigured, Stage::Local, "x");
    assert!(!local.rejects_client_credential());
}

fn token_error(error: &str, code: Option<u32>, suberror: Option<&str>) -> ErrorFields {
    ErrorFields {
        error: Some(error.into()),
        error_description: code.map(|c| {
            format!("AADSTS{c}: Something happened.\r\nTrace ID: 1 Correlation ID: 2 Timestamp: 3")
        }),
        error_codes: code.into_iter().collect(),
        suberror: suberror.map(Into::into),
    }
}

#[test]
fn token_endpoint_table() {
    use Stage::{CodeExchange as X, Refresh as R};
    type Row<'a> = (
        Stage,
        u16,
        &'a str,
        Option<u32>,
        Option<&'a str>,
        OAuthErrorKind,
    );
    let rows: &[Row] = &[
        (R, 400, "invalid_grant", Some(70000), None, ReconnectNeeded),
        (R, 400, "invalid_grant", Some(70008), None, ReconnectNeeded),
        (X, 400, "invalid_grant", Some(70008), None, CallbackRejected),
        (R, 400, "invalid_grant", Some(700082), None, ReconnectNeeded),
        (R, 400, "invalid_grant", Some(50173), None, ReconnectNeeded),
        (X, 400, "invalid_grant", Some(54005), None, CodeAlreadyUsed),
        (
            R,
            400,
            "invalid_grant",
            Some(65001),
            Some("consent_required"),
            ReconnectNeeded,
        ),
        (
            R,
            400,
            "invalid_grant",
            Some(50076),
            Some("basic_action"),
            ReconnectNeeded,
        ),
        (X, 400, "invalid_grant", Some(50148), None, CallbackRejected),
        (
            X,
            401,
            "invalid_client",
            Some(7000215),
            None,
            IntegrationMisconfigured,
        ),
        (
            R,
            401,
            "invalid_client",
            Some(7000222),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            400,
            "invalid_scope",
            Some(70011),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            400,
            "invalid_request",
            Some(50194),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            400,
            "invalid_request",
            Some(90002),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            400,
            "invalid_request",
            Some(9002313),
            None,
            CallbackRejected,
        ),
        (R, 400, "invalid_grant", None, None, ReconnectNeeded),
        (X, 400, "invalid_grant", None, None, CallbackRejected),
        (R, 400, "invalid_grant", Some(12345), None, ReconnectNeeded),
        (
            R,
            400,
            "unauthorized_client",
            None,
            None,
            IntegrationMisconfigured,
        ),
        (R, 503, "temporarily_unavailable", None, None, Transient),
        (
            R,
            503,
            "temporarily_unavailable",
            Some(90033),
            None,
            Transient,
        ),
        (
            R,
            429,
            "temporarily_unavailable",
            Some(90055),
            None,
            Transient,
        ),
        (
            X,
            400,
            "invalid_grant",
            Some(500112),
            None,
            CallbackRejected,
        ),
        (
            X,
            401,
            "invalid_client",
            Some(7000218),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            400,
            "unauthorized_client",
            Some(700016),
            None,
            IntegrationMisconfigured,
        ),
        (
            X,
            401,
            "invalid_client",
            Some(700027),
            None,
            IntegrationMisconfigured,
        ),
        (
            R,
            401,
            "invalid_client",
            Some(700024),
            None,
            IntegrationMisconfigured,
        ),
        (
            R,
            401,
            "invalid_client",
            Some(700023),
            None,
            IntegrationMisconfigured,
        ),
        (
            R,
            401,
            "invalid_client",
            Some(700021),
            None,
            IntegrationMisconfigured,
        ),
        (R, 401, "invalid_client", Some(7000274), None, Transient),
        (R, 500, "server_error", None, None, Transient),
        (R, 429, "invalid_request", None, None, Transient),
        (
            R,
            400,
            "something_new",
            None,
            None,
            IntegrationMisconfigured,
        ),
    ];
    for (stage, status, error, code, suberror, kind) in rows {
        let got = classify(*stage, Some(*status), &token_error(error, *code, *suberror));
        assert_eq!(
            got.kind(),
            *kind,
            "{stage:?} {status} {error} {code:?}: {got}"
        );
        assert_eq!(got.aadsts(), *code);
    }
}

#[test]
fn callback_table() {
    let rows: &[(Stage, &str, Option<&str>, OAuthErrorKind)] = &[
        (
            Stage::Authorize,
            "access_denied",
            Some("AADSTS65004: User declined to consent to access the app."),
            UserDeclined,
        ),
        (Stage::Authorize, "access_denied", None, UserDeclined),
        (Stage::AdminConsent, "access_denied", None, UserDeclined),
        (
            Stage::Authorize,
            "consent_required",
            None,
            InteractionRequired,
        ),
        (
            Stage::Authorize,
            "interaction_required",
            None,
            InteractionRequired,
        ),
        (
            Stage::Authorize,
            "login_required",
            None,
            InteractionRequired,
        ),
        (Stage::Authorize, "server_error", None, Transient),
        (Stage::Authorize, "temporarily_unavailable", None, Transient),
        (
            Stage::Authorize,
            "invalid_request",
            None,
            IntegrationMisconfigured,
        ),
        (
            Stage::Authorize,
            "unauthorized_client",
            None,
            IntegrationMisconfigured,
        ),
        (
            Stage::Authorize,
            "invalid_resource",
            None,
            IntegrationMisconfigured,
        ),
        (
            Stage::Authorize,
            "unsupported_response_type",
            None,
            IntegrationMisconfigured,
        ),
        (
            Stage::Authorize,
            "invalid_request",
            Some("AADSTS50194: Application is not configured as a multi-tenant application."),
            IntegrationMisconfigured,
        ),
        (Stage::Authorize, "weird", None, CallbackRejected),
        (
            Stage::Authorize,
            "interaction_required",
            Some(
                "AADSTS50076: Due to a configuration change, you must use multi-factor authentication.",
            ),
            InteractionRequired,
        ),
        (
            Stage::Authorize,
            "consent_required",
            Some("AADSTS65001: The user or administrator has not consented."),
            InteractionRequired,
        ),
    ];
    for (stage, error, description, kind) in rows {
        let fields = ErrorFields {
            error: Some((*error).into()),
            error_description: description.map(Into::into),
            ..ErrorFields::default()
        };
        let got = classify(*stage, None, &fields);
        assert_eq!(got.kind(), *kind, "{error} {description:?}: {got}");
    }
}

#[test]
fn failures_without_an_oauth_error_are_classified_by_status() {
    let rows = [
        (Some(502), Transient),
        (Some(429), Transient),
        (Some(401), IntegrationMisconfigured),
        (Some(404), IntegrationMisconfigured),
        (Some(400), IntegrationMisconfigured),
        (None, CallbackRejected),
    ];
    for (status, kind) in rows {
        let got = classify(
            Stage::Refresh,
            status,
            &ErrorFields::from_body(b"<html>oops</html>"),
        );
        assert_eq!(got.kind(), kind, "{status:?}: {got}");
    }
}

#[test]
fn reads_the_code_from_the_description_and_keeps_one_line() {
    let fields = ErrorFields::from_body(
        br#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'x' are expired.\r\nTrace ID: abc\r\nCorrelation ID: def\r\nTimestamp: 2024-01-01","timestamp":"x","trace_id":"abc"}"#,
    );
    let got = classify(Stage::Refresh, Some(401), &fields);
    assert_eq!(got.aadsts(), Some(7000222));
    assert_eq!(
        got.description(),
        Some("AADSTS7000222: The provided client secret keys for app 'x' are expired.")
    );
    assert_eq!(
        got.to_string(),
        "AADSTS7000222: the client secret has expired — create a new secret in Entra ID (Certificates & secrets) and update client_secret"
    );
    assert!(!got.kind().is_retryable());
}

#[test]
fn displays_the_error_or_status_when_there_is_no_code() {
    let got = classify(Stage::Refresh, Some(503), &ErrorFields::default());
    assert_eq!(
        got.to_string(),
        "HTTP 503: the provider is unavailable or throttling — retry later"
    );
    assert!(got.kind().is_retryable());
    let got = classify(
        Stage::Authorize,
        None,
        &ErrorFields {
            error: Some("login_required".into()),
            ..ErrorFields::default()
        },
    );
    assert!(got.to_string().starts_with("login_required: "), "{got}");
}

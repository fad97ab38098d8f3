//! Microsoft Graph specifics shared by the sync and the actions: the paths, reading a list
//! page into `Person`s, and error answers a person can act on.

use plugboard_core::spec::PaginationSpec;
use plugboard_core::{Context, ErrorKind, HttpResponse, ProviderError};
use serde_json::Value;

use crate::person::Person;

/// The signed-in user's relevant people.
pub(crate) const ME_PEOPLE: &str = "/v1.0/me/people";

/// Normalises the entries of a list page. Entries without an id are skipped with a warning
/// that says where they were, never what they held: people data stays out of logs.
pub(crate) fn people(ctx: &dyn Context, entries: &[Value], page: u64) -> Vec<Person> {
    let mut people = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        match Person::from_graph(entry) {
            Some(person) => people.push(person),
            None => ctx.warn(&format!(
                "skipped entry {position} of page {page}: it has no id, so it cannot be stored"
            )),
        }
    }
    people
}

/// The entries of a single-page answer, found where the pagination preset says records are.
pub(crate) fn entries(
    response: HttpResponse,
    preset: &PaginationSpec,
) -> Result<Vec<Value>, ProviderError> {
    let mut body: Value = response.json()?;
    match body.pointer_mut(preset.records_pointer()).map(Value::take) {
        Some(Value::Array(entries)) => Ok(entries),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(ProviderError::decode(format!(
            "`{}` in Graph's answer is not a list of people",
            preset.records_pointer()
        ))),
    }
}

/// Replaces the message of an error status with `advice` when there is some for the status,
/// keeping what Graph said at the end; other errors pass unchanged.
pub(crate) fn explain(
    error: ProviderError,
    advice: impl FnOnce(u16) -> Option<String>,
) -> ProviderError {
    match error.status().and_then(advice) {
        Some(advice) => ProviderError::new(error.kind, format!("{advice} ({})", error.message)),
        None => error,
    }
}

/// `Ok` for a success; else an error naming the status and Graph's own error code and
/// message (`{"error": {"code", "message"}}`), made actionable by `advice`.
pub(crate) fn check(
    response: HttpResponse,
    advice: impl FnOnce(u16) -> Option<String>,
) -> Result<HttpResponse, ProviderError> {
    if response.is_success() {
        return Ok(response);
    }
    let status = response.status;
    let said = graph_error(&response).unwrap_or_else(|| {
        String::from_utf8_lossy(&response.body)
            .chars()
            .take(300)
            .collect()
    });
    let error = ProviderError::new(
        ErrorKind::Http { status },
        format!("Microsoft Graph answered {status}: {said}"),
    );
    Err(explain(error, advice))
}

/// `code: message` from Graph's error body, when it has that shape.
fn graph_error(response: &HttpResponse) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let error = body.get("error")?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(
        format!("{code}: {message}")
            .trim_end_matches([':', ' '])
            .to_owned(),
    )
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters and
/// `@` (which user principal names hold and a path segment allows), so a guest's
/// `#EXT#` or a `?` cannot end the path early.
pub(crate) fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use plugboard_core::http::{ApiClient, api_base_url, http_client};
    use plugboard_core::testkit::TestContext;
    use plugboard_core::{LogLevel, Provider};
    use serde_json::json;

    use super::*;
    use crate::MicrosoftPeople;

    #[test]
    fn entries_without_an_id_are_skipped_with_a_warning_naming_only_their_place() {
        let provider = MicrosoftPeople::new().unwrap();
        let api = &provider.spec().api;
        let base = api_base_url(api, &Default::default()).unwrap();
        // Never sends a request: the context is only here to keep the log.
        let ctx = TestContext::new(ApiClient::new(http_client(), api, base), "unused".into());
        let entries = [
            json!({"id": "a"}),
            json!({"displayName": "Secret Name"}),
            json!({"id": "b"}),
        ];

        let people = people(&ctx, &entries, 3);

        let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            ctx.logs(),
            [(
                LogLevel::Warn,
                "skipped entry 1 of page 3: it has no id, so it cannot be stored".to_owned()
            )]
        );
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_carry_graph_code_and_message_and_the_advice() {
        let body = r#"{"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}"#;
        let error = check(response(403, body), |s| {
            (s == 403).then(|| "ask an admin".to_owned())
        })
        .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Http { status: 403 });
        assert_eq!(
            error.message,
            "ask an admin (Microsoft Graph answered 403: ErrorAccessDenied: Access is denied.)"
        );
        let other = check(response(500, "oops"), |_| None).unwrap_err();
        assert_eq!(other.message, "Microsoft Graph answered 500: oops");
    }

    #[test]
    fn path_segments_cannot_escape_their_segment() {
        assert_eq!(path_segment("AlexW@contoso.com"), "AlexW@contoso.com");
        assert_eq!(
            path_segment("ann_contoso.com#EXT#@fabrikam.onmicrosoft.com"),
            "ann_contoso.com%23EXT%23@fabrikam.onmicrosoft.com"
        );
        assert_eq!(path_segment("a?b=c&d%2F é"), "a%3Fb%3Dc%26d%252F%20%C3%A9");
    }
}

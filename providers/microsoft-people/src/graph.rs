//! Microsoft Graph specifics shared by the sync and the actions: the paths, turning a list
//! page's entries into `Person`s, and error answers a person can act on.

use plugboard_core::{Context, ErrorKind, HttpResponse, ProviderError};
use serde_json::Value;

use crate::person::{GraphEntry, Person};

/// The signed-in user's relevant people.
pub(crate) const ME_PEOPLE: &str = "/v1.0/me/people";

/// The people of a list page's entries. Entries without an id are skipped with a warning
/// that says where they were, never what they held: people data stays out of logs.
pub(crate) fn people(ctx: &dyn Context, entries: Vec<GraphEntry>, page: u64) -> Vec<Person> {
    let mut people = Vec::with_capacity(entries.len());
    for (position, GraphEntry(person)) in entries.into_iter().enumerate() {
        match person {
            Some(person) => people.push(person),
            None => ctx.warn(&format!(
                "skipped entry {position} of page {page}: it has no id, so it cannot be stored"
            )),
        }
    }
    people
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

    use super::*;
    use crate::MicrosoftPeople;

    /// A context that only keeps the log: it never sends a request.
    fn log_only() -> TestContext {
        let provider = MicrosoftPeople::new().unwrap();
        let api = &provider.spec().api;
        let base = api_base_url(api, &Default::default()).unwrap();
        TestContext::new(ApiClient::new(http_client(), api, base), "unused".into())
    }

    fn skipped(position: usize, page: u64) -> (LogLevel, String) {
        (
            LogLevel::Warn,
            format!(
                "skipped entry {position} of page {page}: it has no id, so it cannot be stored"
            ),
        )
    }

    #[test]
    fn entries_without_an_id_are_skipped_with_a_warning_naming_only_their_place() {
        let ctx = log_only();
        let entries =
            serde_json::from_str(r#"[{"id": "a"}, {"displayName": "Secret Name"}, {"id": "b"}]"#)
                .unwrap();

        let people = people(&ctx, entries, 3);

        let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(ctx.logs(), [skipped(1, 3)]);
    }

    #[test]
    fn a_page_mixing_good_and_bad_entries_keeps_the_good_ones() {
        let page = r#"{
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/people",
            "value": [
                {"id": "a", "displayName": "Ann", "phones": [{"number": "1"}]},
                "not an object",
                42,
                null,
                [{"id": "in an array"}],
                {"id": ""},
                {"id": 7, "displayName": "Numeric Id"},
                {"id": "b", "displayName": {"nested": [1, {"deep": true}]}, "phones": "none",
                 "scoredEmailAddresses": [{"address": ["x"]}, {"address": "b@c.d"}],
                 "somethingNew": {"with": [{"deep": {"values": null}}]}},
                {"id": "c", "id": null},
                {"id": null, "id": "d"}
            ],
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/people?$skip=10"
        }"#;
        let provider = MicrosoftPeople::new().unwrap();
        let preset = provider.spec().pagination("odata").unwrap();
        let ctx = log_only();

        let entries = preset.records(&response(200, page)).unwrap();
        let people = people(&ctx, entries, 1);

        let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d"]);
        assert_eq!(people[0].phones[0].number, "1");
        assert_eq!(people[1].display_name, None);
        assert!(people[1].phones.is_empty());
        assert_eq!(people[1].emails.len(), 1);
        assert_eq!(
            ctx.logs(),
            [1, 2, 3, 4, 5, 6, 8].map(|position| skipped(position, 1))
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

//! Walking a paginated list endpoint, driven by a pagination preset from the spec.
//!
//! The pager hands out each page's records together with the request for the following page.
//! That request is plain data, so a sync stores it as its checkpoint after every page and a
//! later run resumes exactly there with [`Pager::resume`].
//!
//! A page is read without building a [`Value`] tree, whose maps and keys cost a list sync more
//! than anything else it does per record: the body is split only as deep as the preset's JSON
//! pointers reach, into parts borrowed from its text ([`RawValue`]), and the records are
//! deserialised from their text straight into the caller's type ([`Pager::next_page_as`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::context::{Context, HttpRequest, HttpResponse};
use crate::error::{ErrorKind, ProviderError};
use crate::spec::PaginationSpec;

/// One page of a list, its records as `T`: as the provider sent them ([`Value`]) unless the
/// caller asked for a type of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T = Value> {
    pub records: Vec<T>,
    /// The request for the next page; `None` on the last page.
    pub next: Option<HttpRequest>,
}

pub struct Pager<'a> {
    ctx: &'a dyn Context,
    preset: &'a PaginationSpec,
    next: Option<HttpRequest>,
    /// Every page request made so far, to stop a provider that links back to an earlier page.
    seen: HashSet<String>,
}

impl<'a> Pager<'a> {
    /// Starts at the first page. The page size the integration chose for the run
    /// ([`RunInfo::page_size`](crate::RunInfo)) replaces any the request sets, capped at the
    /// preset's `max_page_size`; otherwise the preset's page size is added unless the request
    /// sets one. Later pages keep the first one's size: next links carry it.
    pub fn new(ctx: &'a dyn Context, preset: &'a PaginationSpec, mut first: HttpRequest) -> Self {
        if let Some(param) = preset.page_size_param() {
            match ctx.run_info().page_size {
                Some(chosen) => {
                    let size = preset.max_page_size().map_or(chosen, |max| chosen.min(max));
                    first.query.retain(|(name, _)| name != param);
                    first = first.query(param, size.to_string());
                }
                None => {
                    if let Some((_, size)) = preset.page_size()
                        && !first.has_query(param)
                    {
                        first = first.query(param, size.to_string());
                    }
                }
            }
        }
        Self::resume(ctx, preset, first)
    }

    /// Continues from a request that an earlier page returned as `next`.
    pub fn resume(ctx: &'a dyn Context, preset: &'a PaginationSpec, next: HttpRequest) -> Self {
        Pager {
            ctx,
            preset,
            next: Some(next),
            seen: HashSet::new(),
        }
    }

    /// Fetches the next page, or `None` once the last page was returned.
    pub async fn next_page(&mut self) -> Result<Option<Page>, ProviderError> {
        self.next_page_as().await
    }

    /// Fetches the next page with its records deserialised as `T`, or `None` once the last
    /// page was returned. A `T` that reads every entry (one that never fails, keeping what it
    /// cannot use as "not known") keeps one bad entry from failing the page.
    pub async fn next_page_as<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<Page<T>>, ProviderError> {
        let Some(request) = self.next.take() else {
            return Ok(None);
        };
        let key = format!("{} {}?{:?}", request.method, request.url, request.query);
        if !self.seen.insert(key) {
            return Err(ProviderError::new(
                ErrorKind::Pagination,
                format!(
                    "pagination loops: the provider pointed back to `{}`, a page already fetched",
                    request.url
                ),
            ));
        }
        let response = self.ctx.http(request.clone()).await?.error_for_status()?;
        let (records, link) = self.preset.read_page(&response)?;
        let next = link.map(|link| self.preset.next_request(&request, link));
        self.next = next.clone();
        Ok(Some(Page { records, next }))
    }
}

impl PaginationSpec {
    /// The records of an answer that is not paged through (a search, say), read from where
    /// the preset says a page has them, as [`Pager::next_page_as`] reads a page's. The
    /// response's status is the caller's to check first.
    pub fn records<T: DeserializeOwned>(
        &self,
        response: &HttpResponse,
    ) -> Result<Vec<T>, ProviderError> {
        Body::parse(response)?.records(self.records_pointer())
    }

    /// A page's records and the next link or cursor, when there is a non-empty one.
    fn read_page<T: DeserializeOwned>(
        &self,
        response: &HttpResponse,
    ) -> Result<(Vec<T>, Option<String>), ProviderError> {
        let body = Body::parse(response)?;
        let link = body.pointer(self.next_pointer()).and_then(non_empty_string);
        Ok((body.records(self.records_pointer())?, link))
    }

    /// JSON pointer to the next link or cursor.
    fn next_pointer(&self) -> &str {
        match self {
            PaginationSpec::NextLink { next_link, .. } => next_link,
            PaginationSpec::Cursor { cursor, .. } => cursor,
        }
    }

    /// The request for the page after `current`, given the next link or cursor its body held.
    fn next_request(&self, current: &HttpRequest, link: String) -> HttpRequest {
        match self {
            PaginationSpec::NextLink { .. } => HttpRequest {
                url: link,
                query: Vec::new(),
                ..current.clone()
            },
            PaginationSpec::Cursor { cursor_param, .. } => {
                let mut next = current.clone();
                next.query.retain(|(name, _)| name != cursor_param);
                next.query(cursor_param.clone(), link)
            }
        }
    }
}

/// A JSON string that is not empty; any other value is no link.
fn non_empty_string(json: &str) -> Option<String> {
    serde_json::from_str::<String>(json)
        .ok()
        .filter(|s| !s.is_empty())
}

/// A response body, checked to be JSON and split into the parts of its top level; deeper
/// levels are split only when a pointer goes there.
struct Body<'a> {
    bytes: &'a [u8],
    top: Parts<'a>,
}

impl<'a> Body<'a> {
    /// Reading the whole body once checks it is JSON, with [`HttpResponse::json`]'s error.
    fn parse(response: &'a HttpResponse) -> Result<Self, ProviderError> {
        Ok(Body {
            bytes: &response.body,
            top: response.json()?,
        })
    }

    /// The JSON text a JSON pointer refers to, as [`Value::pointer`] finds it: the empty
    /// pointer is the whole body, each `/`-separated token (with `~1` for `/` and `~0` for
    /// `~`) a key of an object or an index into an array.
    fn pointer(&self, pointer: &str) -> Option<&'a str> {
        if pointer.is_empty() {
            // The parse succeeded, and serde_json accepts only UTF-8.
            return std::str::from_utf8(self.bytes).ok().map(str::trim_ascii);
        }
        let mut tokens = pointer.strip_prefix('/')?.split('/').map(unescape);
        let first = tokens.next()?;
        let mut part = self.top.get(&first)?;
        for token in tokens {
            part = Parts::of(part).get(&token)?;
        }
        Some(part.get())
    }

    /// The records at `pointer`: none when it is missing or `null`, an error when it is not
    /// an array.
    fn records<T: DeserializeOwned>(&self, pointer: &str) -> Result<Vec<T>, ProviderError> {
        match self.pointer(pointer) {
            None | Some("null") => Ok(Vec::new()),
            Some(array) if array.starts_with('[') => serde_json::from_str(array).map_err(|e| {
                ProviderError::decode(format!(
                    "`{pointer}` in the response holds a record that cannot be read: {e}"
                ))
            }),
            Some(_) => Err(ProviderError::decode(format!(
                "`{pointer}` in the response is not an array of records"
            ))),
        }
    }
}

/// A pointer token's key: `~1` stands for `/` and `~0` for `~`, replaced in that order so that
/// `~01` is `~1`.
fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// The members of an object or the elements of an array, each kept as its JSON text.
enum Parts<'a> {
    /// Keys are copied: the objects a pointer goes through have few members.
    Object(Vec<(String, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
    /// A string, number, boolean or `null`: nothing a pointer can go into.
    Scalar,
}

impl<'a> Parts<'a> {
    /// Splits a part of a body that was already read once, so the parse cannot fail.
    fn of(json: &'a RawValue) -> Self {
        serde_json::from_str(json.get()).unwrap_or(Parts::Scalar)
    }

    fn get(&self, token: &str) -> Option<&'a RawValue> {
        match self {
            // The last of duplicate keys wins, as in a `Value`.
            Parts::Object(members) => members
                .iter()
                .rev()
                .find(|(key, _)| key == token)
                .map(|(_, value)| *value),
            Parts::Array(elements) => array_index(token).and_then(|i| elements.get(i).copied()),
            Parts::Scalar => None,
        }
    }
}

/// An array index as a JSON pointer writes it: digits without a sign or leading zeros.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

impl<'de> Deserialize<'de> for Parts<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PartsVisitor)
    }
}

struct PartsVisitor;

impl<'de> Visitor<'de> for PartsVisitor {
    type Value = Parts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Parts::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = seq.next_element()? {
            elements.push(element);
        }
        Ok(Parts::Array(elements))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Parts::Scalar)
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::context::{LogLevel, Record, RunInfo, SyncMode};

    fn next_link() -> PaginationSpec {
        PaginationSpec::NextLink {
            next_link: "/@odata.nextLink".into(),
            records: "/value".into(),
            page_size_param: None,
            page_size: None,
            max_page_size: None,
        }
    }

    /// Slack's: the cursor two levels down, empty on the last page.
    fn cursor() -> PaginationSpec {
        PaginationSpec::Cursor {
            cursor: "/response_metadata/next_cursor".into(),
            cursor_param: "cursor".into(),
            records: "/members".into(),
            page_size_param: None,
            page_size: None,
            max_page_size: None,
        }
    }

    fn with_records(pointer: &str) -> PaginationSpec {
        PaginationSpec::NextLink {
            next_link: "/next".into(),
            records: pointer.into(),
            page_size_param: None,
            page_size: None,
            max_page_size: None,
        }
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn page(preset: &PaginationSpec, body: &str) -> (Vec<Value>, Option<String>) {
        preset.read_page(&response(200, body)).unwrap()
    }

    #[test]
    fn a_page_reads_as_its_value_does() {
        let body = json!({
            "@odata.context": "https://graph/$metadata#people",
            "value": [{"id": "a", "n": [1, 2.5, null]}, "odd", 7],
            "@odata.nextLink": "https://graph/v1.0/me/people?$skip=2",
        });
        let (records, link) = page(&next_link(), &body.to_string());
        assert_eq!(Value::Array(records), body["value"]);
        assert_eq!(
            link.as_deref(),
            Some("https://graph/v1.0/me/people?$skip=2")
        );
    }

    #[test]
    fn a_nested_cursor_is_found_and_replaces_the_previous_one() {
        let body = r#"{"ok": true, "members": [{"id": "U1"}],
            "response_metadata": {"next_cursor": "dXNlcjpVMDYxTkZUVDI="}}"#;
        let (records, link) = page(&cursor(), body);
        assert_eq!(records, [json!({"id": "U1"})]);
        let link = link.unwrap();
        assert_eq!(link, "dXNlcjpVMDYxTkZUVDI=");

        let current = HttpRequest::get("/users.list")
            .query("limit", "2")
            .query("cursor", "old");
        let next = cursor().next_request(&current, link);
        assert_eq!(next.url, "/users.list");
        assert_eq!(
            next.query,
            [
                ("limit".into(), "2".into()),
                ("cursor".into(), "dXNlcjpVMDYxTkZUVDI=".into())
            ]
        );
    }

    #[test]
    fn a_next_link_replaces_the_request_and_its_query() {
        let current = HttpRequest::get("/v1.0/me/people").query("$top", "2");
        let next = next_link().next_request(&current, "https://graph/next".into());
        assert_eq!(next, HttpRequest::get("https://graph/next"));
    }

    #[test]
    fn a_missing_null_empty_or_non_string_link_ends_the_list() {
        for body in [
            r#"{"members": []}"#,
            r#"{"members": [], "response_metadata": null}"#,
            r#"{"members": [], "response_metadata": {"next_cursor": ""}}"#,
            r#"{"members": [], "response_metadata": {"next_cursor": null}}"#,
            r#"{"members": [], "response_metadata": {"next_cursor": 7}}"#,
            r#"{"members": [], "response_metadata": {"next_cursor": {"a": "b"}}}"#,
            r#"{"members": [], "response_metadata": "next_cursor"}"#,
            r#"{"members": [], "response_metadata": {"next_cursor": "x"},
                "response_metadata": {}}"#,
        ] {
            assert_eq!(page(&cursor(), body).1, None, "{body}");
        }
        // Escapes in the string are read as JSON escapes.
        let escaped = r#"{"@odata.nextLink": "https:\/\/graph\/next?\u0024skip=2"}"#;
        assert_eq!(
            page(&next_link(), escaped).1.as_deref(),
            Some("https://graph/next?$skip=2")
        );
    }

    #[test]
    fn pointers_read_escaped_tokens_keys_and_array_indices_as_value_pointer_does() {
        let body = json!({
            "a/b": {"c~d": [[1], [2, 3]]},
            "~1": ["tilde one"],
            "": {"": ["empty keys"]},
            "list": [{"items": ["first"]}, {"items": ["second"]}],
        });
        let text = body.to_string();
        // As JSON escapes in the text, too: the key `a/b` written `a\/b`.
        let escaped_text = text.replace("a/b", "a\\/b");
        assert_ne!(escaped_text, text);
        for pointer in [
            "/a~1b/c~0d",
            "/a~1b/c~0d/1",
            "/~01",
            "//",
            "/list/1/items",
            "/list/01/items",
            "/list/+1/items",
            "/list/2/items",
            "/missing/items",
            "/a~1b/c~0d/0/0/deeper",
        ] {
            let expected = match body.pointer(pointer) {
                Some(Value::Array(records)) => records.clone(),
                None => Vec::new(),
                Some(other) => panic!("{pointer} points at {other}"),
            };
            for text in [&text, &escaped_text] {
                let records: Vec<Value> =
                    with_records(pointer).records(&response(200, text)).unwrap();
                assert_eq!(records, expected, "{pointer} in {text}");
            }
        }
    }

    #[test]
    fn the_empty_pointer_is_the_whole_body() {
        let records: Vec<Value> = with_records("")
            .records(&response(200, " \n[1, {\"a\": 2}]\t"))
            .unwrap();
        assert_eq!(records, [json!(1), json!({"a": 2})]);
    }

    #[test]
    fn missing_or_null_records_are_none_and_anything_but_an_array_an_error() {
        for body in [r#"{}"#, r#"{"value": null}"#, r#"[1]"#, r#""text""#, "null"] {
            assert_eq!(page(&next_link(), body).0, Vec::<Value>::new(), "{body}");
        }
        for body in [
            r#"{"value": {"id": "a"}}"#,
            r#"{"value": "a"}"#,
            r#"{"value": 0}"#,
        ] {
            let error = next_link()
                .read_page::<Value>(&response(200, body))
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::Decode);
            assert_eq!(
                error.message,
                "`/value` in the response is not an array of records"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_fails_as_the_responses_json_does() {
        for body in [
            "<html>",
            "",
            r#"{"value": []} trailing"#,
            "{\"value\": [\"\u{fffd}\"",
            "\u{feff}{}",
        ] {
            let response = response(200, body);
            let expected = response.json::<Value>().unwrap_err();
            assert!(
                expected
                    .message
                    .starts_with("response (status 200) is not the expected JSON: ")
            );
            assert_eq!(
                next_link().read_page::<Value>(&response).unwrap_err(),
                expected
            );
            assert_eq!(
                next_link().records::<Value>(&response).unwrap_err(),
                expected
            );
        }
        let invalid_utf8 = HttpResponse {
            body: b"{\"value\": [\"\xff\"]}".to_vec(),
            ..response(200, "")
        };
        assert_eq!(
            next_link().records::<Value>(&invalid_utf8).unwrap_err(),
            invalid_utf8.json::<Value>().unwrap_err()
        );
    }

    #[test]
    fn records_are_read_into_the_callers_type() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Item {
            id: String,
        }
        let body = r#"{"value": [{"id": "a", "extra": [1]}, {"id": "b"}]}"#;
        let items: Vec<Item> = next_link().records(&response(200, body)).unwrap();
        assert_eq!(items, [Item { id: "a".into() }, Item { id: "b".into() }]);

        let error = next_link()
            .records::<Item>(&response(200, r#"{"value": [{"id": 1}]}"#))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Decode);
        assert!(
            error
                .message
                .starts_with("`/value` in the response holds a record that cannot be read: "),
            "{error}"
        );
    }

    /// Answers each request with the canned body for its `cursor` query parameter.
    struct Canned {
        pages: Vec<(Option<&'static str>, HttpResponse)>,
        asked: Mutex<Vec<HttpRequest>>,
    }

    #[async_trait]
    impl Context for Canned {
        async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
            let cursor = request
                .query
                .iter()
                .find(|(name, _)| name == "cursor")
                .map(|(_, value)| value.as_str());
            let answer = self.pages.iter().find(|(c, _)| *c == cursor).unwrap();
            self.asked.lock().unwrap().push(request);
            Ok(answer.1.clone())
        }

        async fn save_records(&self, _: &str, _: Vec<Record>) -> Result<(), ProviderError> {
            unreachable!("the pager only reads")
        }

        async fn delete_records(&self, _: &str, _: Vec<String>) -> Result<(), ProviderError> {
            unreachable!("the pager only reads")
        }

        async fn begin_crawl(&self, _: &str) -> Result<(), ProviderError> {
            unreachable!("the pager only reads")
        }

        async fn end_crawl(&self, _: &str) -> Result<u64, ProviderError> {
            unreachable!("the pager only reads")
        }

        async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
            unreachable!("the pager only reads")
        }

        async fn set_checkpoint(&self, _: Value) -> Result<(), ProviderError> {
            unreachable!("the pager only reads")
        }

        fn run_info(&self) -> RunInfo {
            RunInfo {
                connection_id: "c".into(),
                connection_config: Default::default(),
                mode: SyncMode::Full,
                previous: None,
                page_size: None,
            }
        }

        fn log(&self, _: LogLevel, _: &str) {}
    }

    fn canned(pages: Vec<(Option<&'static str>, HttpResponse)>) -> Canned {
        Canned {
            pages,
            asked: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test]
    async fn the_pager_follows_cursors_into_typed_records_until_the_last_page() {
        let ctx = canned(vec![
            (
                None,
                response(
                    200,
                    r#"{"members": [1, 2], "response_metadata": {"next_cursor": "p2"}}"#,
                ),
            ),
            (
                Some("p2"),
                response(
                    200,
                    r#"{"members": [3], "response_metadata": {"next_cursor": ""}}"#,
                ),
            ),
        ]);
        let preset = cursor();
        let mut pager = Pager::new(&ctx, &preset, HttpRequest::get("/users.list"));
        let mut pages = Vec::new();
        while let Some(page) = pager.next_page_as::<u8>().await.unwrap() {
            pages.push(page);
        }
        let second = HttpRequest::get("/users.list").query("cursor", "p2");
        assert_eq!(
            pages,
            [
                Page {
                    records: vec![1, 2],
                    next: Some(second.clone())
                },
                Page {
                    records: vec![3],
                    next: None
                },
            ]
        );
        assert_eq!(
            *ctx.asked.lock().unwrap(),
            [HttpRequest::get("/users.list"), second]
        );
    }

    #[tokio::test]
    async fn the_pager_stops_a_loop_and_fails_on_an_error_status() {
        let looping = canned(vec![
            (
                None,
                response(
                    200,
                    r#"{"members": [], "response_metadata": {"next_cursor": "p2"}}"#,
                ),
            ),
            (
                Some("p2"),
                response(
                    200,
                    r#"{"members": [], "response_metadata": {"next_cursor": "p2"}}"#,
                ),
            ),
        ]);
        let preset = cursor();
        let mut pager = Pager::new(&looping, &preset, HttpRequest::get("/users.list"));
        pager.next_page().await.unwrap().unwrap();
        pager.next_page().await.unwrap().unwrap();
        let error = pager.next_page().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Pagination);
        assert_eq!(
            error.message,
            "pagination loops: the provider pointed back to `/users.list`, a page already fetched"
        );

        let failing = canned(vec![(None, response(429, "slow down"))]);
        let mut pager = Pager::new(&failing, &preset, HttpRequest::get("/users.list"));
        let error = pager.next_page().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Http { status: 429 });
    }
}

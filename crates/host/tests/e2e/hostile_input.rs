//! Hostile input against every route: malformed and wrongly typed JSON, unknown fields, deep
//! nesting, bodies over `[server] max_body_size`, invalid UTF-8, CR, LF and NUL in headers and
//! ids, odd ids (empty, 10 KB, `..`, emoji). Each must get a clear 4xx — in the API's error
//! shape on API routes, a short page on browser routes — and never a 5xx, a panic or an answer
//! that echoes kilobytes of what it was sent.
//!
//! The routes come from the running server's `/openapi.json`, so a new route is covered without
//! touching this file, plus [`UNDOCUMENTED`], the routes the document leaves out on purpose.
//! Every request goes over a raw TCP connection, written byte for byte: HTTP clients refuse or
//! normalise most of what is sent here (`..` segments, CR, NUL, bytes that are not UTF-8).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{API_KEY, World};

/// The limit the test's host is given, so that "too large" stays cheap to send.
const MAX_BODY_SIZE: usize = 64 * 1024;

/// The longest error message an API answer may have: enough for every field named, never an
/// echo of a 10 KB id.
const MAX_MESSAGE: usize = 2048;
/// The longest body a refusal may have (an API error, or a browser route's page): more than
/// any page needs, less than a 10 KB value quoted back.
const MAX_REFUSAL: usize = 8 * 1024;

/// Query parameters that take any text, so an odd value is no error: `GET /records`' `ids`
/// are the provider's record ids, whatever they are.
const FREE_TEXT: &[&str] = &["ids"];

/// Routes `/openapi.json` leaves out on purpose (the dashboard's pages and forms), and the
/// browser routes it must describe: each is added if missing, so none goes untested.
const UNDOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/ui"),
    ("GET", "/ui/sign-in"),
    ("POST", "/ui/sign-in"),
    ("POST", "/ui/sign-out"),
    ("GET", "/ui/connections"),
    ("GET", "/ui/connection/{tab}"),
    ("POST", "/ui/connection/connect-link"),
    ("POST", "/ui/connection/delete"),
    ("POST", "/ui/connection/sync"),
    ("GET", "/ui/activity"),
    ("POST", "/ui/webhooks/redeliver"),
    ("GET", "/ui/assets/console.css"),
    ("GET", "/proxy/{path}"),
    ("POST", "/proxy/{path}"),
    ("GET", "/oauth/callback"),
    ("GET", "/oauth/connect/{integration}"),
    ("POST", "/oauth/connect/{integration}"),
];

/// What a route takes, as the test needs it.
#[derive(Debug, Clone)]
struct Route {
    method: &'static str,
    template: String,
    /// Browser routes answer with pages; API routes with `{"error": {"code", "message"}}`.
    browser: bool,
    path_params: Vec<String>,
    /// Each with whether it is required; the ordinary request has only the required ones.
    query_params: Vec<(String, bool)>,
    header_params: Vec<String>,
    /// Takes a JSON body.
    json: bool,
    /// Takes a form (`application/x-www-form-urlencoded`).
    form: bool,
    /// Needs the API key.
    authenticated: bool,
    /// The proxy's: an answer that is not Plugboard's own is the provider's, passed through.
    passes_through: bool,
}

impl Route {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// What a variant must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx.
    Refused,
    /// Exactly this status.
    Status(u16),
    /// Anything but a 5xx: the input is odd but harmless (an unknown query parameter).
    NoServerError,
}

/// One request, as bytes.
#[derive(Debug, Clone)]
struct Raw {
    method: String,
    /// The path and query, exactly as sent.
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// What the context of a run gives each variant: the dashboard session for browser routes.
struct Session {
    cookie: String,
    csrf: String,
}

/// A hostile variant: its name, what it must get, whether hyper may refuse it before the API
/// sees it (an answer with no body then), and the requests it makes of a route.
struct Variant {
    name: &'static str,
    expect: Expect,
    before_api: bool,
    make: Make,
}

enum Make {
    /// One request, if the variant applies to the route.
    Request(fn(&Route, &Session) -> Option<Raw>),
    /// The route's ordinary request with one query parameter set to this value, once for each
    /// of its query parameters, so that every one reaches the check that reads it.
    EachQueryParam(fn() -> String),
}

impl Variant {
    /// The requests for the route, each with what it changed and what it must get.
    fn requests(&self, route: &Route, session: &Session) -> Vec<(String, Raw, Expect)> {
        match self.make {
            Make::Request(make) => make(route, session)
                .map(|raw| (String::new(), raw, self.expect))
                .into_iter()
                .collect(),
            Make::EachQueryParam(value) => route
                .query_params
                .iter()
                .map(|(name, _)| {
                    let raw = with_query_param(route, session, name, &value());
                    let expect = match FREE_TEXT.contains(&name.as_str()) {
                        true => Expect::NoServerError,
                        false => self.expect,
                    };
                    (format!(" in `{name}`"), raw, expect)
                })
                .collect(),
        }
    }
}

const TEN_KB: usize = 10 * 1024;

/// Every variant, each applied to every route it fits.
fn variants() -> Vec<Variant> {
    use Expect::*;
    let v = |name, expect, make| Variant {
        name,
        expect,
        before_api: false,
        make: Make::Request(make),
    };
    let raw = |name, expect, make| Variant {
        name,
        expect,
        before_api: true,
        make: Make::Request(make),
    };
    let each_query_param = |name, expect, value| Variant {
        name,
        expect,
        before_api: false,
        make: Make::EachQueryParam(value),
    };
    vec![
        // JSON bodies.
        v("malformed JSON", Refused, |r, s| {
            json_body(r, s, br#"{"integration": "#)
        }),
        v("JSON of the wrong types", Refused, |r, s| {
            json_body(
                r,
                s,
                br#"{"integration": 7, "connection_id": ["x"], "syncs": "all", "mode": {}, "input": 1}"#,
            )
        }),
        v("a JSON array", Refused, |r, s| json_body(r, s, b"[1, 2]")),
        v("JSON null", Refused, |r, s| json_body(r, s, b"null")),
        v("an unknown field", Refused, |r, s| {
            json_body(
                r,
                s,
                br#"{"integration": "microsoft", "connection_id": "nobody", "surprise": true}"#,
            )
        }),
        v("a number out of range", Refused, |r, s| {
            json_body(
                r,
                s,
                br#"{"integration": "microsoft", "connection_id": 1e999}"#,
            )
        }),
        v("JSON nested 100000 deep", Refused, |r, s| {
            let depth = 100_000;
            let mut body =
                br#"{"integration": "microsoft", "connection_id": "nobody", "input": "#.to_vec();
            body.extend(std::iter::repeat_n(b'[', depth));
            body.extend(std::iter::repeat_n(b']', depth));
            body.push(b'}');
            json_body(r, s, &body)
        }),
        v("JSON over max_body_size", Status(413), |r, s| {
            let big = "x".repeat(MAX_BODY_SIZE + 1);
            json_body(r, s, json!({"integration": big}).to_string().as_bytes())
        }),
        v("JSON that is not UTF-8", Refused, |r, s| {
            json_body(r, s, b"{\"integration\": \"micro\xff\xfesoft\"}")
        }),
        v("an empty JSON body", Refused, |r, s| json_body(r, s, b"")),
        v("JSON without a content type", Refused, |r, s| {
            let mut raw = json_body(r, s, br#"{"integration": "microsoft"}"#)?;
            raw.headers.retain(|(name, _)| name != "Content-Type");
            Some(raw)
        }),
        v("JSON sent as text/plain", Refused, |r, s| {
            let mut raw = json_body(r, s, br#"{"integration": "microsoft"}"#)?;
            set_header(&mut raw, "Content-Type", b"text/plain");
            Some(raw)
        }),
        v("10 KB strings in JSON", Refused, |r, s| {
            let big = "x".repeat(TEN_KB);
            let body = json!({
                "integration": big, "connection_id": big, "return_url": big,
                "connection_config": {big.clone(): big}, "syncs": [big], "frequency": big,
            });
            json_body(r, s, body.to_string().as_bytes())
        }),
        v("a 10 KB unknown field", Refused, |r, s| {
            let body = json!({"x".repeat(TEN_KB): 1, "integration": "microsoft"});
            json_body(r, s, body.to_string().as_bytes())
        }),
        v("NUL, CR, LF and emoji in JSON ids", Refused, |r, s| {
            let odd = "a\u{0}b\r\nc😀";
            let body = json!({"integration": "microsoft", "connection_id": odd, "syncs": [odd]});
            json_body(r, s, body.to_string().as_bytes())
        }),
        v("an unknown integration named `..`", Refused, |r, s| {
            let body = json!({"integration": "..", "connection_id": ".."});
            json_body(r, s, body.to_string().as_bytes())
        }),
        // Forms (the browser routes').
        v("a malformed form", Refused, |r, s| {
            form_body(r, s, b"csrf=%zz&key=%&&=&session_token")
        }),
        v("a form that is not UTF-8", Refused, |r, s| {
            form_body(r, s, b"csrf=\xff\xfe&key=\xc3&session_token=%ff%fe")
        }),
        v("a form over max_body_size", Status(413), |r, s| {
            let mut body = b"session_token=".to_vec();
            body.extend(std::iter::repeat_n(b'x', MAX_BODY_SIZE + 1));
            form_body(r, s, &body)
        }),
        v("a form with 10 KB values", Refused, |r, s| {
            let big = "x".repeat(TEN_KB);
            let body = format!(
                "csrf={big}&key={big}&session_token={big}&integration={big}&connection_id={big}"
            );
            form_body(r, s, body.as_bytes())
        }),
        // Path parameters.
        v("an empty path parameter", Refused, |r, s| {
            with_path(r, s, "")
        }),
        v("a 10 KB path parameter", Refused, |r, s| {
            with_path(r, s, &"x".repeat(TEN_KB))
        }),
        v("`..` as a path parameter", Refused, |r, s| {
            with_path(r, s, "..")
        }),
        v("`%2e%2e` as a path parameter", Refused, |r, s| {
            with_path(r, s, "%2e%2e")
        }),
        v("an encoded NUL in a path parameter", Refused, |r, s| {
            with_path(r, s, "a%00b")
        }),
        v("an encoded CR LF in a path parameter", Refused, |r, s| {
            with_path(r, s, "a%0D%0Ab")
        }),
        v("an emoji path parameter", Refused, |r, s| {
            with_path(r, s, "%F0%9F%98%80")
        }),
        v("an encoded slash in a path parameter", Refused, |r, s| {
            with_path(r, s, "a%2Fb")
        }),
        v(
            "encoded invalid UTF-8 in a path parameter",
            Refused,
            |r, s| with_path(r, s, "a%FF%FEb"),
        ),
        raw("raw invalid UTF-8 in the path", Refused, |r, s| {
            with_path(r, s, "a\u{ff}b").map(|mut raw| {
                // The byte 0xFF itself, not its UTF-8 encoding.
                raw.target = replace_bytes(&raw.target, "a\u{ff}b".as_bytes(), b"a\xffb");
                raw
            })
        }),
        raw("a raw NUL in the path", Refused, |r, s| {
            let mut raw = base(r, s);
            raw.target = replace_bytes(&raw.target, b"?", b"\0?");
            Some(raw)
        }),
        // Query parameters.
        v("a query parameter given twice", Refused, |r, s| {
            let (first, _) = r.query_params.first()?;
            let mut raw = base(r, s);
            raw.target
                .extend(format!("&{first}={}&{first}=other", plausible(first)).as_bytes());
            Some(raw)
        }),
        each_query_param("a 10 KB query value", Refused, || "x".repeat(TEN_KB)),
        each_query_param("NUL, CR, LF and emoji in a query value", Refused, || {
            "a%00b%0D%0Ac%F0%9F%98%80".into()
        }),
        each_query_param("encoded invalid UTF-8 in a query value", Refused, || {
            "%FF%FE".into()
        }),
        each_query_param("a query value of the wrong type", Refused, || {
            "-1e999".into()
        }),
        each_query_param("`..` as a query value", Refused, || "..".into()),
        // Only of reads: the ordinary request of a `DELETE` would delete the connection.
        v("an unknown query parameter", NoServerError, |r, s| {
            if r.method != "GET" {
                return None;
            }
            let mut raw = base(r, s);
            raw.target.extend(b"&surprise=1");
            Some(raw)
        }),
        raw("a 100 KB query string", Refused, |r, s| {
            let mut raw = base(r, s);
            raw.target.extend(b"&pad=");
            raw.target.extend(std::iter::repeat_n(b'x', 100 * 1024));
            Some(raw)
        }),
        // Headers.
        v("a 10 KB API key", Refused, |r, s| {
            let mut raw = base(r, s);
            if !r.authenticated {
                return None;
            }
            set_header(
                &mut raw,
                "Authorization",
                format!("Bearer {}", "x".repeat(TEN_KB)).as_bytes(),
            );
            Some(raw)
        }),
        v("an API key that is not ASCII", Refused, |r, s| {
            let mut raw = base(r, s);
            if !r.authenticated {
                return None;
            }
            set_header(&mut raw, "Authorization", b"Bearer \xf0\x9f\x98\x80\xff");
            Some(raw)
        }),
        raw("a CR in a header value", Refused, |r, s| {
            let mut raw = base(r, s);
            raw.headers.push(("X-Hostile".into(), b"a\rb".to_vec()));
            Some(raw)
        }),
        raw("a NUL in a header value", Refused, |r, s| {
            let mut raw = base(r, s);
            raw.headers.push(("X-Hostile".into(), b"a\0b".to_vec()));
            Some(raw)
        }),
        raw("a header line without a colon", Refused, |r, s| {
            let mut raw = base(r, s);
            raw.headers
                .push(("X-Hostile without colon".into(), Vec::new()));
            Some(raw)
        }),
        // The proxy's headers, which name the connection.
        v("an empty Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", b"")
        }),
        v("a 10 KB Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", "x".repeat(TEN_KB).as_bytes())
        }),
        v("`..` as the Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", b"..")
        }),
        v("an emoji Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", "😀".as_bytes())
        }),
        v("a Connection-Id that is not UTF-8", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", b"a\xff\xfeb")
        }),
        raw("a NUL in the Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", b"a\0b")
        }),
        raw("a CR LF in the Connection-Id", Refused, |r, s| {
            with_header_param(r, s, "Connection-Id", b"a\r\nIntegration: admin")
        }),
        v("a 10 KB Integration", Refused, |r, s| {
            with_header_param(r, s, "Integration", "x".repeat(TEN_KB).as_bytes())
        }),
        v("a Retries header out of range", Refused, |r, s| {
            with_header_param(r, s, "Retries", b"99999999999999999999")
        }),
    ]
}

/// The route's ordinary request: its path parameters, required query parameters (and those
/// naming the connection), headers
/// and credentials filled with valid values, naming the connection [`CONNECTED`].
fn base(route: &Route, session: &Session) -> Raw {
    let mut path = route.template.clone();
    for param in &route.path_params {
        path = path.replace(&format!("{{{param}}}"), &plausible(param));
    }
    let query: Vec<String> = route
        .query_params
        .iter()
        .filter(|(name, required)| *required || names_connection(name))
        .map(|(name, _)| format!("{name}={}", plausible(name)))
        .collect();
    let target = format!("{path}?{}", query.join("&"));
    let mut headers = Vec::new();
    if route.authenticated {
        headers.push((
            "Authorization".into(),
            format!("Bearer {API_KEY}").into_bytes(),
        ));
    }
    for name in &route.header_params {
        headers.push((name.clone(), plausible(name).into_bytes()));
    }
    if route.template.starts_with("/ui") {
        headers.push(("Cookie".into(), session.cookie.clone().into_bytes()));
    }
    Raw {
        method: route.method.to_owned(),
        target: target.into_bytes(),
        headers,
        body: Vec::new(),
    }
}

/// Whether the query parameter is part of a connection's key: optional on some routes
/// (`GET /connections/{connection_id}` answers 400 without it), given in every ordinary request.
fn names_connection(name: &str) -> bool {
    name == "integration" || name == "connection_id"
}

/// The connection every ordinary request names, connected before the hostile ones, so that
/// they get past "no such connection" to the checks of what they sent.
const CONNECTED: &str = "c1";

/// A valid value for a parameter.
fn plausible(name: &str) -> String {
    match name {
        "connection_id" | "Connection-Id" => CONNECTED,
        "model" => "Person",
        "integration" | "Integration" => "microsoft",
        "path" => "v1.0/me",
        "tab" => "overview",
        "sync" => "people",
        "limit" => "10",
        "refresh" => "false",
        "mode" => "full",
        "Retries" => "0",
        "tenant" => "common",
        _ => "nobody",
    }
    .to_owned()
}

fn set_header(raw: &mut Raw, name: &str, value: &[u8]) {
    raw.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    raw.headers.push((name.to_owned(), value.to_vec()));
}

fn json_body(route: &Route, session: &Session, body: &[u8]) -> Option<Raw> {
    if !route.json {
        return None;
    }
    let mut raw = base(route, session);
    raw.headers
        .push(("Content-Type".into(), b"application/json".to_vec()));
    raw.body = body.to_vec();
    Some(raw)
}

fn form_body(route: &Route, session: &Session, body: &[u8]) -> Option<Raw> {
    if !route.form {
        return None;
    }
    let mut raw = base(route, session);
    raw.headers.push((
        "Content-Type".into(),
        b"application/x-www-form-urlencoded".to_vec(),
    ));
    let csrf = format!("csrf={}&", session.csrf);
    raw.body = [csrf.as_bytes(), body].concat();
    Some(raw)
}

/// The route's request with every path parameter written as `segment`.
fn with_path(route: &Route, session: &Session, segment: &str) -> Option<Raw> {
    if route.path_params.is_empty() {
        return None;
    }
    let mut raw = base(route, session);
    let mut path = route.template.clone();
    for param in &route.path_params {
        path = path.replace(&format!("{{{param}}}"), segment);
    }
    let query = raw
        .target
        .splitn(2, |b| *b == b'?')
        .nth(1)
        .unwrap()
        .to_vec();
    raw.target = [path.as_bytes(), b"?", &query].concat();
    Some(raw)
}

/// The route's ordinary request with the query parameter `name` set to `value`.
fn with_query_param(route: &Route, session: &Session, name: &str, value: &str) -> Raw {
    let mut raw = base(route, session);
    let path = raw.target.split(|b| *b == b'?').next().unwrap().to_vec();
    let mut query: Vec<String> = route
        .query_params
        .iter()
        .filter(|(other, required)| (*required || names_connection(other)) && other != name)
        .map(|(other, _)| format!("{other}={}", plausible(other)))
        .collect();
    query.push(format!("{name}={value}"));
    raw.target = [path.as_slice(), b"?", query.join("&").as_bytes()].concat();
    raw
}

/// The route's request with its header parameter `name` (the proxy's) set to `value`.
fn with_header_param(route: &Route, session: &Session, name: &str, value: &[u8]) -> Option<Raw> {
    if !route.header_params.iter().any(|h| h == name) {
        return None;
    }
    let mut raw = base(route, session);
    set_header(&mut raw, name, value);
    Some(raw)
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match haystack.windows(from.len()).position(|w| w == from) {
        Some(at) => [&haystack[..at], to, &haystack[at + from.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

/// An answer, read off the wire.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Sends the request as written, on a connection of its own, and reads the whole answer.
async fn send(address: &str, raw: &Raw) -> Answer {
    let mut request = format!("{} ", raw.method).into_bytes();
    request.extend(&raw.target);
    request.extend(format!(" HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n").as_bytes());
    for (name, value) in &raw.headers {
        request.extend(name.as_bytes());
        if !value.is_empty() || !name.contains(' ') {
            request.extend(b": ");
        }
        request.extend(value);
        request.extend(b"\r\n");
    }
    if !raw.body.is_empty() || raw.method == "POST" {
        request.extend(format!("Content-Length: {}\r\n", raw.body.len()).as_bytes());
    }
    request.extend(b"\r\n");
    request.extend(&raw.body);
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Written while the answer is read: a server that refuses a large body early answers
    // before it has all of it.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer));
    let outcome = read.await.expect("the host answers within 30 s");
    if let Err(error) = outcome {
        // A reset after the answer arrived is how a server drops a body it did not read.
        assert!(!answer.is_empty(), "no answer: {error}");
    }
    drop(writing.await);
    parse(&answer)
}

fn parse(answer: &[u8]) -> Answer {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = answer[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        content_type,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        body.extend(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    body
}

/// What the answer breaks of the rules, if anything.
fn problem(route: &Route, variant: &Variant, expect: Expect, answer: &Answer) -> Option<String> {
    let status = answer.status;
    if route.passes_through && api_error(answer).is_err() {
        // The provider's answer to what was forwarded, not Plugboard's.
        return (status >= 500).then(|| "a server error from the provider".into());
    }
    match expect {
        _ if status >= 500 => return Some("a server error".into()),
        Expect::Refused if !(400..500).contains(&status) => return Some("not a 4xx".into()),
        Expect::Status(expected) if status != expected => return Some(format!("not a {expected}")),
        _ if !(400..500).contains(&status) => return None,
        _ => {}
    }
    // A refusal: short, and in the route's shape.
    if answer.body.len() > MAX_REFUSAL {
        return Some(format!("a refusal of {} bytes", answer.body.len()));
    }
    // hyper's own refusal of a request it could not parse, before any route: no body at all.
    if variant.before_api && answer.body.is_empty() {
        return None;
    }
    if route.browser {
        let page = answer.content_type.starts_with("text/html")
            || answer.content_type.starts_with("text/plain");
        // A URL no route matches (`/oauth/connect/` with its integration left out) gets the
        // router's fallback, the API's `not_found`.
        return match page || api_error(answer).is_ok_and(|code| code == "not_found") {
            true => None,
            false => Some(format!("a browser route answered {}", answer.content_type)),
        };
    }
    api_error(answer).err()
}

/// The API error's code, or what is wrong with the answer as one.
fn api_error(answer: &Answer) -> Result<String, String> {
    if !answer.content_type.starts_with("application/json") {
        return Err(format!("content type {}", answer.content_type));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else {
        return Err("a body that is not JSON".into());
    };
    let (Some(code), Some(message)) = (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) else {
        return Err("not the API's error shape".into());
    };
    if code.is_empty() || message.is_empty() {
        return Err("an empty code or message".into());
    }
    if message.len() > MAX_MESSAGE {
        return Err(format!("a message of {} bytes", message.len()));
    }
    Ok(code.to_owned())
}

/// Every route the running server describes, and the [`UNDOCUMENTED`] ones.
async fn routes(base: &str) -> Vec<Route> {
    let document: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let params = |place: &str| -> Vec<(String, bool)> {
                operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == place)
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_owned(),
                            p["required"] == true,
                        )
                    })
                    .collect()
            };
            let names = |place: &str| params(place).into_iter().map(|(name, _)| name).collect();
            let content = &operation["requestBody"]["content"];
            routes.push(Route {
                method: method_name(method),
                template: template.clone(),
                browser: is_browser(template),
                path_params: names("path"),
                query_params: params("query"),
                header_params: names("header"),
                json: content.get("application/json").is_some(),
                form: content.get("application/x-www-form-urlencoded").is_some(),
                authenticated: operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
                passes_through: template.starts_with("/proxy/"),
            });
        }
    }
    for (method, template) in UNDOCUMENTED {
        if routes
            .iter()
            .any(|r| r.method == *method && r.template == *template)
        {
            continue;
        }
        let proxy = template.starts_with("/proxy/");
        routes.push(Route {
            method: method_name(&method.to_ascii_lowercase()),
            template: (*template).to_owned(),
            browser: is_browser(template),
            path_params: ["integration", "tab", "path"]
                .into_iter()
                .filter(|p| template.contains(&format!("{{{p}}}")))
                .map(str::to_owned)
                .collect(),
            query_params: match *template {
                "/oauth/callback" => vec![("state".into(), true), ("code".into(), false)],
                "/oauth/connect/{integration}" if *method == "GET" => {
                    vec![("session_token".into(), true)]
                }
                "/ui/connection/{tab}"
                | "/ui/connection/connect-link"
                | "/ui/connection/delete"
                | "/ui/connection/sync" => {
                    vec![("integration".into(), true), ("connection_id".into(), true)]
                }
                _ => Vec::new(),
            },
            header_params: if proxy {
                vec![
                    "Integration".into(),
                    "Connection-Id".into(),
                    "Retries".into(),
                ]
            } else {
                Vec::new()
            },
            // The proxy takes any body, and streams it: nothing of it is read as JSON.
            json: false,
            form: *method == "POST" && !proxy,
            authenticated: proxy,
            passes_through: proxy,
        });
    }
    routes
}

fn method_name(method: &str) -> &'static str {
    match method {
        "get" => "GET",
        "put" => "PUT",
        "post" => "POST",
        "delete" => "DELETE",
        _ => "PATCH",
    }
}

fn is_browser(template: &str) -> bool {
    template.starts_with("/oauth/") || template.starts_with("/ui")
}

/// Signs in to the dashboard: the session cookie and the CSRF token its forms carry.
async fn console_session(base: &str) -> Session {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap()
    };
    let form = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let form_cookie = cookie_of(&form, "plugboard_console_form");
    let page = form.text().await.unwrap();
    let csrf = crate::support::attribute_after(&page, "name=\"csrf\" value=\"").to_owned();
    let signed_in = http
        .post(format!("{base}/ui/sign-in"))
        .header("cookie", form_cookie)
        .form(&[("csrf", csrf.as_str()), ("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&signed_in, "plugboard_console");
    let overview = http
        .get(format!("{base}/ui"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::support::attribute_after(&overview, "name=\"csrf\" value=\"").to_owned();
    Session { cookie, csrf }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_hostile_input_with_a_clear_4xx() {
    let mut world = World::start().await;
    world
        .restart_with(|config| {
            config.replacen(
                "[server]\n",
                &format!("[server]\nmax_body_size = {MAX_BODY_SIZE}\n"),
                1,
            )
        })
        .await;
    let base = world.host.url.clone();
    let address = base.trim_start_matches("http://").to_owned();
    let routes = routes(&base).await;
    for expected in ["/connections/{connection_id}", "/proxy/{path}", "/ui"] {
        assert!(
            routes.iter().any(|r| r.template == expected),
            "{expected} is not among the routes"
        );
    }
    world.connect("microsoft", CONNECTED).await;
    let session = console_session(&base).await;
    let variants = variants();
    let mut failures = Vec::new();
    let mut sent = 0;
    for route in &routes {
        for variant in &variants {
            for (detail, raw, expect) in variant.requests(route, &session) {
                sent += 1;
                let answer = send(&address, &raw).await;
                if let Some(problem) = problem(route, variant, expect, &answer) {
                    let body = String::from_utf8_lossy(&answer.body);
                    let shown: String = body.chars().take(300).collect();
                    failures.push(format!(
                        "{} with {}{detail}: {problem}: {} {shown}",
                        route.name(),
                        variant.name,
                        answer.status
                    ));
                }
            }
        }
        // Still up, and nothing panicked.
        let health = reqwest::get(format!("{base}/health")).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK, "after {}", route.name());
        assert!(
            !world.host.logs().contains("panicked"),
            "a panic after {}:\n{}",
            route.name(),
            world.host.logs()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} hostile requests were answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent > routes.len() * 5, "only {sent} requests were sent");
    eprintln!("{sent} hostile requests to {} routes", routes.len());
    // None of them did anything: the connection they named is still there.
    world.host.credentials("microsoft", CONNECTED).await;

    // The proxy streams bodies through, so `max_body_size` does not bind it (its own bound is
    // memory: bodies over 1 MiB are streamed, not held for a retry).
    world.connect("echo", "e1").await;
    let large = vec![b'x'; 4 * MAX_BODY_SIZE];
    let response = world
        .host
        .proxy(reqwest::Method::POST, "echo", "e1", "/upload")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len(), large.len());
    world.finish().await;
}

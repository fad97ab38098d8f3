//! Turning a provider's request target into an absolute URL below the API base URL.
//!
//! Provider code (and, through the host's proxy, API callers) name what they want as a path or
//! as an absolute URL copied from a response (a next link). Either way the request must stay on
//! the provider's origin and below the base path: a bearer token sent to another host, or a path
//! that climbs out of `/v1.0`, is a leak. So this refuses every form that URL parsers normalise
//! into something else — dot segments, encoded dots and slashes, backslashes, stripped control
//! characters — instead of trusting the normalised result.

use url::Url;

/// Why a request target was refused. The message names the target and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request target `{target}` refused: {why}")]
pub struct UrlRefused {
    /// The target with control characters escaped, so the message stays one line.
    pub target: String,
    pub why: String,
}

/// Resolves `target` against `base`.
///
/// `target` is either a path starting with `/` that is appended to the base URL's own path
/// (`/v1.0/me/people` below `https://graph.microsoft.com`), or an absolute `http(s)` URL with
/// exactly the base URL's scheme, host and port whose path lies below the base path. Either may
/// carry a query string; fragments are refused. Percent-encoded dots, slashes and backslashes
/// are refused in the path only, because opaque query values such as `$skiptoken` legitimately
/// contain `%2F`.
pub fn resolve_url(base: &Url, target: &str) -> Result<Url, UrlRefused> {
    let refuse = |why: &str| UrlRefused {
        target: target.escape_debug().to_string(),
        why: why.to_owned(),
    };
    if target.chars().any(char::is_control) {
        return Err(refuse("it contains control characters"));
    }
    if target.contains('\\') {
        return Err(refuse("it contains a backslash"));
    }
    // URL parsing trims surrounding spaces, which would make a segment such as `.. ` pass the
    // dot-segment check below and then be normalised away.
    if target.trim() != target {
        return Err(refuse("it starts or ends with spaces"));
    }
    if target.contains('#') {
        return Err(refuse("it contains a fragment (`#`)"));
    }
    if target.starts_with("//") {
        return Err(refuse(
            "a scheme-relative URL (`//host/...`) could name another host",
        ));
    }
    let base_path = base.path().trim_end_matches('/');

    let (raw_path, resolved) = if target.starts_with('/') {
        let mut joined = base.clone();
        joined.set_query(None);
        joined.set_fragment(None);
        let (path, query) = split_query(target);
        joined.set_path(&[base_path, path].concat());
        joined.set_query(query);
        (path, joined)
    } else {
        let parsed = Url::parse(target)
            .map_err(|_| refuse("it is neither a path starting with `/` nor an absolute URL"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse("it carries user information (`user@`)"));
        }
        if parsed.scheme() != base.scheme()
            || parsed.host_str() != base.host_str()
            || parsed.port_or_known_default() != base.port_or_known_default()
        {
            return Err(refuse(&format!(
                "it is not on the API's origin `{}`",
                base.origin().ascii_serialization()
            )));
        }
        (raw_absolute_path(target), parsed)
    };

    check_path(raw_path).map_err(refuse)?;
    let path = resolved.path();
    let below_base = base_path.is_empty()
        || path == base_path
        || path
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.starts_with('/'));
    if !below_base {
        return Err(refuse(&format!("its path is not below `{base_path}`")));
    }
    Ok(resolved)
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// The path of an absolute URL exactly as written, before any normalisation.
fn raw_absolute_path(target: &str) -> &str {
    let after_scheme = target.split_once("://").map_or(target, |(_, rest)| rest);
    let path_and_query = after_scheme
        .find(['/', '?'])
        .map_or("", |start| &after_scheme[start..]);
    split_query(path_and_query).0
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if escapes(path, b"2e") {
        return Err("its path contains a percent-encoded dot (`%2e`)");
    }
    if escapes(path, b"2f") {
        return Err("its path contains a percent-encoded slash (`%2f`)");
    }
    if escapes(path, b"5c") {
        return Err("its path contains a percent-encoded backslash (`%5c`)");
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("its path contains a `.` or `..` segment");
    }
    Ok(())
}

/// Whether `path` holds the escape `%<hex>`, in either case, without a lowercased copy.
fn escapes(path: &str, hex: &[u8; 2]) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1..].eq_ignore_ascii_case(hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> Url {
        Url::parse(url).unwrap()
    }

    #[test]
    fn resolves_paths_and_same_origin_urls() {
        let cases = [
            (
                "https://graph.example",
                "/v1.0/me/people",
                "https://graph.example/v1.0/me/people",
            ),
            (
                "https://graph.example/",
                "/v1.0/me?$top=10",
                "https://graph.example/v1.0/me?$top=10",
            ),
            (
                "http://127.0.0.1:8080/graph",
                "/v1.0/me",
                "http://127.0.0.1:8080/graph/v1.0/me",
            ),
            (
                "http://127.0.0.1:8080/graph/",
                "/v1.0/me",
                "http://127.0.0.1:8080/graph/v1.0/me",
            ),
            (
                "https://graph.example",
                "https://graph.example/v1.0/me/people?$skiptoken=a%2Fb%2e",
                "https://graph.example/v1.0/me/people?$skiptoken=a%2Fb%2e",
            ),
            (
                "https://graph.example",
                "https://graph.example:443/v1.0/me",
                "https://graph.example/v1.0/me",
            ),
            (
                "http://127.0.0.1:8080/graph",
                "http://127.0.0.1:8080/graph/v1.0/me?x=1",
                "http://127.0.0.1:8080/graph/v1.0/me?x=1",
            ),
            (
                "https://graph.example",
                "/v1.0/users/a@b.example",
                "https://graph.example/v1.0/users/a@b.example",
            ),
        ];
        for (b, target, expected) in cases {
            assert_eq!(
                resolve_url(&base(b), target).unwrap().as_str(),
                expected,
                "{target}"
            );
        }
    }

    #[test]
    fn refuses_escapes_with_a_reason() {
        let cases = [
            ("https://evil.example/v1.0/me", "origin"),
            ("http://graph.example/v1.0/me", "origin"),
            ("https://graph.example:8443/v1.0/me", "origin"),
            ("https://graph.example.evil/v1.0/me", "origin"),
            ("//evil.example/v1.0/me", "scheme-relative"),
            ("/v1.0/../admin", "`..` segment"),
            ("/v1.0/./me", "`..` segment"),
            ("/v1.0/..", "`..` segment"),
            ("/v1.0/%2e%2e/admin", "percent-encoded dot"),
            ("/v1.0/%2E%2E/admin", "percent-encoded dot"),
            ("/v1.0/.%2e/admin", "percent-encoded dot"),
            ("/v1.0%2fadmin", "percent-encoded slash"),
            ("/v1.0%2Fadmin", "percent-encoded slash"),
            ("/v1.0%5cadmin", "percent-encoded backslash"),
            ("/v1.0\\..\\admin", "backslash"),
            ("https://graph.example\\@evil.example/", "backslash"),
            ("https://user@graph.example/v1.0/me", "user information"),
            ("https://user:pw@graph.example/v1.0/me", "user information"),
            ("/v1.0/me\n/x", "control characters"),
            ("/v1.0/me\t", "control characters"),
            ("/v1.0/\u{0}", "control characters"),
            ("v1.0/me", "neither a path"),
            ("javascript:alert(1)", "origin"),
            ("/v1.0/me#frag", "fragment"),
            ("https://graph.example/v1.0/../x", "`..` segment"),
            ("https://graph.example/v1.0/%2e%2e/x", "percent-encoded dot"),
            ("https://graph.example/v1.0/x/.. ", "spaces"),
            (" /v1.0/me", "spaces"),
        ];
        let b = base("https://graph.example");
        for (target, reason) in cases {
            let err = resolve_url(&b, target).expect_err(target);
            assert!(err.to_string().contains(reason), "{target}: {err}");
        }
    }

    #[test]
    fn refuses_absolute_urls_outside_the_base_path() {
        let b = base("http://127.0.0.1:8080/graph");
        for target in [
            "http://127.0.0.1:8080/admin",
            "http://127.0.0.1:8080/graphx/v1.0",
            "http://127.0.0.1:8080/",
        ] {
            let err = resolve_url(&b, target).expect_err(target);
            assert!(
                err.to_string().contains("not below `/graph`"),
                "{target}: {err}"
            );
        }
    }
}

/// Properties of `resolve_url` over generated bases and targets: paths and absolute URLs
/// built from segments a parser might normalise (dot segments, encoded dots, slashes and
/// backslashes, user information, other origins), and arbitrary text. What is accepted is
/// checked by a model of how a server could read it, independent of the resolver's rules.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Percent-decodes as a lenient server would: invalid escapes are kept as they are.
    fn decode(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes[i],
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 3;
                }
                (byte, ..) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        decoded
    }

    /// The path as a lenient server reads it: percent-decoded, backslashes as slashes, dot
    /// segments removed (RFC 3986, 5.2.4).
    fn as_a_server_reads(path: &str) -> String {
        let decoded = String::from_utf8_lossy(&decode(path)).replace('\\', "/");
        let mut output: Vec<&str> = Vec::new();
        let segments: Vec<&str> = decoded.split('/').collect();
        for (n, segment) in segments.iter().enumerate().skip(1) {
            let last = n == segments.len() - 1;
            match *segment {
                "." if last => output.push(""),
                "." => {}
                ".." => {
                    output.pop();
                    if last {
                        output.push("");
                    }
                }
                other => output.push(other),
            }
        }
        format!("/{}", output.join("/"))
    }

    fn base() -> impl Strategy<Value = Url> {
        (
            prop::sample::select(vec!["http", "https"]),
            prop::sample::select(vec!["graph.example", "127.0.0.1", "api.example.com"]),
            prop::option::of(prop::sample::select(vec![80u16, 443, 8080])),
            prop::collection::vec(prop::sample::select(vec!["v1.0", "graph", "api"]), 0..3),
            any::<bool>(),
        )
            .prop_map(|(scheme, host, port, path, slash)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let slash = if slash && !path.is_empty() { "/" } else { "" };
                Url::parse(&format!(
                    "{scheme}://{host}{port}/{}{slash}",
                    path.join("/")
                ))
                .unwrap()
            })
    }

    /// A path segment: ordinary, or one of the forms that climb, hide a separator or
    /// change the authority once decoded or normalised.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[A-Za-z0-9_~$-]{1,8}",
            3 => prop::sample::select(vec![
                "", ".", "..", "...", ".%2e", "%2e.", "%2e%2e", "%2E%2E", "%2e", "%252e%252e",
                "..%2f", "%2f", "%2F", "%5c", "%5C", "\\", "..\\", "@", "user@evil.example",
                ":", "evil.example:80", "%40", "%", "%zz", "%2", ";", "..;", "é", "%C3%A9", " ",
                ". ", " ..", "\t", "\u{0}", "\u{7f}", "\u{3002}", "%u002e", "?", "#", "//",
                "graphx", "v1.0x",
            ]).prop_map(str::to_owned),
            1 => "\\PC{1,4}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 0..6)
            .prop_map(|segments| format!("/{}", segments.join("/")))
    }

    fn query() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "\\?[a-zA-Z0-9=&%$./?@:_-]{0,16}",
            "\\?\\PC{0,8}",
        ]
    }

    /// An origin: the base's own, spelled as it is or differently, or another one.
    fn origin(base: &Url) -> impl Strategy<Value = String> + use<> {
        let own = base.origin().ascii_serialization();
        let host = base.host_str().unwrap().to_owned();
        let port = base.port_or_known_default().unwrap();
        let other_scheme = if base.scheme() == "https" {
            "http"
        } else {
            "https"
        };
        prop::sample::select(vec![
            own.clone(),
            own.to_uppercase(),
            format!("{}://{host}:{port}", base.scheme()),
            format!("{}://user@{host}", base.scheme()),
            format!("{}://user:pw@{host}", base.scheme()),
            format!("{}://{host}@evil.example", base.scheme()),
            format!("{}://evil.example#@{host}", base.scheme()),
            format!("{}://{host}.", base.scheme()),
            format!("{}://{host}:{}", base.scheme(), port + 1),
            format!("{other_scheme}://{host}"),
            format!("{}://evil.example", base.scheme()),
            format!("{}://{host}.evil.example", base.scheme()),
            format!("{}:{host}", base.scheme()),
            format!("{}:///{host}", base.scheme()),
            "file://".to_owned(),
            "javascript:".to_owned(),
        ])
    }

    /// A target below the base or trying to leave it: a path, an absolute URL (often below
    /// the base path, or beside it), or any text at all.
    fn target(base: Url) -> impl Strategy<Value = String> {
        let base_path = base.path().trim_end_matches('/').to_owned();
        let beside = vec![base_path.clone(), String::new(), format!("{base_path}x")];
        prop_oneof![
            4 => (path(), query()).prop_map(|(p, q)| format!("{p}{q}")),
            4 => (origin(&base), prop::sample::select(beside), path(), query())
                .prop_map(|(o, b, p, q)| format!("{o}{b}{p}{q}")),
            1 => "\\PC{0,24}",
            1 => "/\\PC{0,24}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever is accepted goes to the base's origin, below its path as any server
        /// would read it, with nothing lost in normalisation and no user information.
        #[test]
        fn nothing_accepted_leaves_the_base_url(
            (base, target) in base().prop_flat_map(|b| (Just(b.clone()), target(b))),
        ) {
            let Ok(url) = resolve_url(&base, &target) else { return Ok(()) };
            prop_assert_eq!(url.scheme(), base.scheme());
            prop_assert_eq!(url.host_str(), base.host_str());
            prop_assert_eq!(url.port_or_known_default(), base.port_or_known_default());
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", url);
            prop_assert_eq!(url.fragment(), None);
            let base_path = base.path().trim_end_matches('/');
            let read = as_a_server_reads(url.path());
            prop_assert!(
                read == base_path || read.starts_with(&format!("{base_path}/")),
                "{target:?} from {base} became {url}, read as {read}"
            );
            // A path is sent as asked: only escaped where it must be, never normalised.
            if let Some(asked) = target.strip_prefix('/') {
                let asked = split_query(asked).0;
                prop_assert_eq!(decode(url.path()), decode(&format!("{base_path}/{asked}")));
            }
            // The URL is sent as serialised: parsing it again changes nothing.
            prop_assert_eq!(Url::parse(url.as_str()).unwrap(), url);
        }

        /// Paths of ordinary segments with a query are accepted, below the base path.
        #[test]
        fn ordinary_paths_are_accepted(
            base in base(),
            segments in prop::collection::vec("[A-Za-z0-9_~$@!'()*+,;=:-]{1,8}", 1..5),
            query in "(\\?[A-Za-z0-9=&%$./?@:_-]{0,16})?",
            absolute in any::<bool>(),
        ) {
            let path = format!("/{}", segments.join("/"));
            let base_path = base.path().trim_end_matches('/');
            let target = if absolute {
                format!("{}{base_path}{path}{query}", base.origin().ascii_serialization())
            } else {
                format!("{path}{query}")
            };
            let url = resolve_url(&base, &target).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(url.path(), format!("{base_path}{path}"));
            prop_assert_eq!(url.query(), query.strip_prefix('?'));
        }
    }
}

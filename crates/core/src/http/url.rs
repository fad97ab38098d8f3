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
        joined.set_path(&format!("{base_path}{path}"));
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
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") {
        return Err("its path contains a percent-encoded dot (`%2e`)");
    }
    if lower.contains("%2f") {
        return Err("its path contains a percent-encoded slash (`%2f`)");
    }
    if lower.contains("%5c") {
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

//! URL templates such as `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
//!
//! Values come from per-connection config, which end users may influence, so each value is
//! checked to be a single safe path segment before it is placed into a URL: a tenant of
//! `evil.example/x?` must never change which host or path a token request goes to.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{` in `{0}`")]
    Unclosed(String),
    #[error("placeholder `{{{0}}}` has no value")]
    Missing(String),
    #[error("value for `{{{name}}}` is invalid: {why}")]
    InvalidValue { name: String, why: String },
}

/// The placeholder names in a template, in order of appearance.
pub fn template_placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| TemplateError::Unclosed(template.to_owned()))?;
        names.push(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Replaces every `{name}` with its value; each value must be a safe URL path segment.
///
/// The template is read once from left to right, as [`template_placeholders`] reads it, so
/// each placeholder is replaced where it was found: replacing by search would also hit text
/// that merely contains a placeholder's spelling (`{{t}` holds `{t}`).
pub fn fill_template(
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    for name in template_placeholders(template)? {
        let value = values
            .get(&name)
            .ok_or_else(|| TemplateError::Missing(name.clone()))?;
        check_value(value).map_err(|why| TemplateError::InvalidValue {
            name: name.clone(),
            why,
        })?;
        let open = rest.find('{').expect("each placeholder begins with `{`");
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &rest[open + name.len() + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value is allowed in a URL when it is one non-empty segment of letters, digits, `.`, `-` and
/// `_` that is not `.` or `..` — enough for tenants, GUIDs, domains, regions and subdomains.
pub(crate) fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters".to_owned());
    }
    if value == "." || value == ".." {
        return Err(format!("`{value}` is not allowed"));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some(bad) => Err(format!(
            "`{value}` contains `{bad}`; only letters, digits, `.`, `-` and `_` are allowed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_placeholders() {
        let url = fill_template(
            "https://login.example/{tenant}/oauth2/{tenant}/token",
            &values(&[("tenant", "contoso.onmicrosoft.com")]),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://login.example/contoso.onmicrosoft.com/oauth2/contoso.onmicrosoft.com/token"
        );
    }

    #[test]
    fn refuses_values_that_would_change_the_url() {
        for bad in [
            "a/b",
            "..",
            "x?y=1",
            "a#b",
            "user@host",
            "",
            "a b",
            "%2e%2e",
        ] {
            let err = fill_template("https://h/{t}/x", &values(&[("t", bad)])).unwrap_err();
            assert!(
                matches!(err, TemplateError::InvalidValue { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn reports_missing_and_unclosed() {
        assert_eq!(
            fill_template("https://h/{t}", &BTreeMap::new()).unwrap_err(),
            TemplateError::Missing("t".into())
        );
        assert!(matches!(
            template_placeholders("https://h/{t"),
            Err(TemplateError::Unclosed(_))
        ));
    }
}

/// Properties of filling templates over generated templates and values, against a model that
/// reads the template once from left to right.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The model: each `{` opens a placeholder that the next `}` closes, and a template with
    /// one left open is refused whatever the values; placeholders are checked in order (a
    /// missing value or an invalid one, whichever comes first, is the error) and replaced by
    /// their values, everything else is kept as it is.
    fn model(template: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        let allowed = |value: &str| {
            (1..=253).contains(&value.len())
                && value != "."
                && value != ".."
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if template.rfind('{') > template.rfind('}') {
            return Err(TemplateError::Unclosed(template.to_owned()));
        }
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                return Err(TemplateError::Unclosed(template.to_owned()));
            };
            let name = &rest[open + 1..open + close];
            let value = values
                .get(name)
                .ok_or_else(|| TemplateError::Missing(name.to_owned()))?;
            if !allowed(value) {
                return Err(TemplateError::InvalidValue {
                    name: name.to_owned(),
                    why: String::new(),
                });
            }
            out.push_str(value);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Values: mostly allowed ones, sometimes the edge of what is allowed, sometimes text
    /// that would change a URL.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z0-9._-]{1,12}",
            1 => prop::sample::select(vec![
                "", ".", "..", "...", "a/b", "x?y=1", "a#b", "user@host", "h:80", "%2e%2e",
                "a b", "a\\b", "é", "a\nb", "{t}", "}", "{", "-", "_",
            ]).prop_map(str::to_owned),
            1 => "\\PC{0,6}",
            1 => "[a-z]{253,254}",
        ]
    }

    /// Templates of literal text (which may hold a stray `}`) and placeholders, some of them
    /// named oddly or left open.
    fn template() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["t", "tenant", "region", "x"]);
        let odd = prop::sample::select(vec!["{}", "{{t}", "{t{}", "{", "{ t}", "{unknown}"]);
        let piece = prop_oneof![
            3 => "[a-z:/.?=&}-]{0,6}",
            3 => name.prop_map(|n| format!("{{{n}}}")),
            2 => odd.prop_map(str::to_owned),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
    }

    fn values() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(
            prop::sample::select(vec!["t", "tenant", "region", "x", "", "{t", "t{", " t"])
                .prop_map(str::to_owned),
            value(),
            0..6,
        )
    }

    /// The same error as the model's, the reason aside.
    fn same(
        actual: &Result<String, TemplateError>,
        expected: &Result<String, TemplateError>,
    ) -> bool {
        match (actual, expected) {
            (
                Err(TemplateError::InvalidValue { name, .. }),
                Err(TemplateError::InvalidValue { name: expected, .. }),
            ) => name == expected,
            _ => actual == expected,
        }
    }

    /// Found by `filling_matches_the_model`: the placeholder `{{t}` holds the spelling of
    /// `{t}`, and `{}{t{}` that of `{}`; replacing by search made `a{a` and `0{t0` of them.
    #[test]
    fn each_placeholder_is_replaced_where_it_stands() {
        let values = BTreeMap::from([
            ("t".to_owned(), "a".to_owned()),
            ("{t".to_owned(), "b".to_owned()),
            (String::new(), "0".to_owned()),
            ("t{".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(fill_template("{t}{{t}", &values).unwrap(), "ab");
        assert_eq!(fill_template("{}{t{}", &values).unwrap(), "01");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Filling gives the model's URL or the model's error.
        #[test]
        fn filling_matches_the_model(template in template(), values in values()) {
            let filled = fill_template(&template, &values);
            let expected = model(&template, &values);
            prop_assert!(
                same(&filled, &expected),
                "{template:?} with {values:?}: {filled:?}, expected {expected:?}"
            );
        }

        /// Whatever a connection's value, a tenant stays one path segment of the token URL:
        /// the host, the path around it and the absence of a query never change.
        #[test]
        fn a_value_never_changes_the_host_or_path(tenant in value()) {
            let values = BTreeMap::from([("tenant".to_owned(), tenant.clone())]);
            let template = "https://login.example/{tenant}/oauth2/v2.0/token";
            if let Ok(url) = fill_template(template, &values) {
                let middle = url
                    .strip_prefix("https://login.example/")
                    .and_then(|rest| rest.strip_suffix("/oauth2/v2.0/token"));
                prop_assert_eq!(middle, Some(tenant.as_str()));
                let one_segment = !tenant.contains(['/', '\\', '?', '#', '@', ':', '%'])
                    && tenant != "."
                    && tenant != "..";
                prop_assert!(one_segment, "{:?}", tenant);
            }
        }
    }
}

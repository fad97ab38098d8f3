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
pub fn fill_template(
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let mut out = template.to_owned();
    for name in template_placeholders(template)? {
        let value = values
            .get(&name)
            .ok_or_else(|| TemplateError::Missing(name.clone()))?;
        check_value(value).map_err(|why| TemplateError::InvalidValue {
            name: name.clone(),
            why,
        })?;
        out = out.replace(&format!("{{{name}}}"), value);
    }
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

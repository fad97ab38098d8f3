//! `${VAR}` interpolation in config values, in the style of vector's config files.
//!
//! Supported forms: `${VAR}` (the variable must be set), `${VAR:-default}` (the default when
//! the variable is unset or empty), `${VAR:?message}` (an error with that message when it is
//! unset or empty), and `$$` for a literal `$`. Interpolation happens on parsed string values,
//! never on the file's text, so a variable's value can never change the TOML structure.

use std::collections::HashMap;

/// Replaces every reference in `text`; the error says which reference failed and why.
pub fn interpolate(text: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            // Errors never quote the value: it may be a secret's (the text after the `$`
            // included), or hold a line break of its own.
            let close = body
                .find('}')
                .ok_or_else(|| "a `${` is not closed with `}`".to_owned())?;
            out.push_str(&expand(&body[..close], env)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(reference: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let (name, operator) = match reference.find(":-").or_else(|| reference.find(":?")) {
        Some(at) => (
            &reference[..at],
            Some((&reference[at..at + 2], &reference[at + 2..])),
        ),
        None => (reference, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(
            "a `${…}` does not name an environment variable (letters, digits and `_`)".to_owned(),
        );
    }
    let value = env.get(name).filter(|v| !v.is_empty());
    match (value, operator) {
        (Some(value), _) => Ok(value.clone()),
        (None, Some((":-", default))) => Ok(default.to_owned()),
        (None, Some((_, message))) => Err(format!("${{{name}}}: {message}")),
        (None, None) if env.contains_key(name) => Ok(String::new()),
        (None, None) => Err(format!("environment variable `{name}` is not set")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([
            ("SECRET".to_owned(), "s3cr3t".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ])
    }

    #[test]
    fn expands_the_supported_forms() {
        let env = env();
        assert_eq!(interpolate("a${SECRET}b", &env).unwrap(), "as3cr3tb");
        assert_eq!(
            interpolate("${MISSING:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            interpolate("cost: $$5 or $5", &env).unwrap(),
            "cost: $5 or $5"
        );
    }

    #[test]
    fn explains_what_is_missing() {
        let env = env();
        assert_eq!(
            interpolate("${MISSING}", &env).unwrap_err(),
            "environment variable `MISSING` is not set"
        );
        assert_eq!(
            interpolate("${MISSING:?set it to the key}", &env).unwrap_err(),
            "${MISSING}: set it to the key"
        );
        assert!(
            interpolate("${OPEN", &env)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            interpolate("${a b}", &env)
                .unwrap_err()
                .contains("does not name")
        );
    }

    /// A value with a broken reference may be a secret's: the error names the problem without
    /// quoting the value (found by the `config_file` fuzz target).
    #[test]
    fn errors_never_quote_the_value() {
        let env = env();
        for value in ["x${literal-secret", "${literal secret}", "${\0A\nB}"] {
            let error = interpolate(value, &env).unwrap_err();
            assert!(
                !error.contains("secret") && !error.contains(char::is_control),
                "{error}"
            );
        }
    }
}

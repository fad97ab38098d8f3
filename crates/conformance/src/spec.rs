//! Spec files: valid, spec-only ones asking for no code, no blank left from the scaffold.

use plugboard_core::{ProviderSpec, SpecOnlyProvider};

/// What the scaffold writes where only the provider's author knows the answer (a display name,
/// what a scope grants).
pub const BLANK: &str = "TODO(provider-author)";

/// The blank where the value must be an HTTP token (a header name cannot hold parentheses).
pub const TOKEN_BLANK: &str = "TODO-provider-author";

/// The host of the URLs the scaffold writes when it was not told them. `.invalid` is reserved
/// (RFC 2606), so such a URL can never reach a real server, yet the spec still parses and the
/// new provider's tests run before the facts are filled in.
pub const PLACEHOLDER_HOST: &str = "todo.invalid";

/// Every problem of the spec file `source` with contents `text`, each prefixed with the
/// provider (or the file, when the spec has no readable id) and naming its key. `spec_only`:
/// the file is loaded without code (`providers/specs/`), so it must declare no syncs or actions.
pub fn check_spec(source: &str, text: &str, spec_only: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let parsed = match spec_only {
        true => SpecOnlyProvider::parse(source, text).map(drop),
        false => ProviderSpec::parse(source, text).map(drop),
    };
    if let Err(error) = parsed {
        problems.extend(error.problems);
    }
    let table = text.parse::<toml::Table>().ok();
    if let Some(table) = &table {
        blanks(&mut problems, "", &toml::Value::Table(table.clone()));
        let stem = std::path::Path::new(source).file_stem();
        let dir = std::path::Path::new(source)
            .parent()
            .and_then(|d| d.file_name());
        let expected = match spec_only {
            true => stem,
            false => dir,
        };
        if let (Some(expected), Some(toml::Value::String(id))) = (expected, table.get("id"))
            && expected.to_string_lossy() != *id
        {
            problems.push(format!(
                "id: `{id}` must match its {} `{}`",
                if spec_only { "file name" } else { "directory" },
                expected.to_string_lossy()
            ));
        }
    }
    let who = match table.as_ref().and_then(|t| t.get("id")?.as_str()) {
        Some(id) => format!("provider `{id}` ({source})"),
        None => format!("spec {source}"),
    };
    problems
        .into_iter()
        .map(|problem| format!("{who}: {problem}"))
        .collect()
}

/// A problem per string still holding a scaffold blank, named by its key.
fn blanks(problems: &mut Vec<String>, key: &str, value: &toml::Value) {
    match value {
        toml::Value::String(text)
            if text.contains(BLANK)
                || text.contains(TOKEN_BLANK)
                || text.contains(PLACEHOLDER_HOST) =>
        {
            problems.push(format!(
                "{key}: `{text}` is a blank left by the scaffold; fill it in"
            ));
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                blanks(problems, &format!("{key}[{i}]"), item);
            }
        }
        toml::Value::Table(table) => {
            for (name, item) in table {
                let key = match key.is_empty() {
                    true => name.clone(),
                    false => format!("{key}.{name}"),
                };
                blanks(problems, &key, item);
            }
        }
        _ => {}
    }
}

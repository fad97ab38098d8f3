//! Reading a spec file: TOML syntax and types first, then every semantic problem at once.

use std::fmt;

use super::ProviderSpec;

/// Everything wrong with a spec file, each problem naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Where the spec came from, e.g. `providers/microsoft-people/provider.toml`.
    pub source: String,
    pub problems: Vec<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid provider spec `{}`:", self.source)?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

impl ProviderSpec {
    /// Parses and validates a spec. `source` names the file in error messages.
    ///
    /// Unknown keys are collected rather than rejected one at a time, so a spec author sees every
    /// typo and every semantic problem in one go. The exception is the tables serde reads by
    /// their tag (`[auth]`, `[[auth.scopes]]`, `[api.pagination.<name>]`): `serde_ignored` cannot
    /// see into them, so they refuse an unknown key themselves, and that error is the only one
    /// reported.
    pub fn parse(source: &str, text: &str) -> Result<ProviderSpec, SpecError> {
        let fail = |problems: Vec<String>| SpecError {
            source: source.to_owned(),
            // A value quoted in a problem may hold a line break or a terminal escape: written
            // as an escape, each problem stays one line of the list, and of a log.
            problems: problems
                .iter()
                .map(|p| crate::text::escape_controls(p))
                .collect(),
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| fail(vec![one_line(&e.to_string())]))?;
        let mut unknown = Vec::new();
        let spec: ProviderSpec = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(format!("{path}: unknown key"));
        })
        .map_err(|e| fail(vec![one_line(&e.to_string())]))?;
        let mut problems = unknown;
        problems.extend(spec.problems());
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(fail(problems))
        }
    }
}

/// toml's messages span several lines with a source excerpt; keep the position and the reason
/// on one line so they read well in a list.
fn one_line(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim)
        .filter(|line| !is_excerpt(line));
    let first = lines.next().unwrap_or_default();
    let rest = lines.collect::<Vec<_>>().join(" ");
    match first.strip_prefix("TOML parse error at ") {
        Some(position) => format!("{position}: {rest}"),
        None => format!("{first} {rest}").trim().to_owned(),
    }
}

/// An excerpt line such as `36 | frequency = "often"` or the `^^^^` under it.
fn is_excerpt(line: &str) -> bool {
    let gutter = line
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    line.is_empty() || gutter.starts_with('|') || line.chars().all(|c| c == '^' || c == ' ')
}

//! Reading the page: its sections, their rows, and its TOML examples.

use std::collections::BTreeMap;

use super::trace::{NAME, TableId};

pub struct Page {
    pub sections: BTreeMap<TableId, Section>,
    pub examples: Vec<Example>,
    /// What the page gets wrong in its own form (two sections for one table, say).
    pub problems: Vec<String>,
}

pub struct Section {
    pub line: usize,
    /// By key.
    pub rows: BTreeMap<String, Row>,
}

pub struct Row {
    pub line: usize,
    pub text: String,
}

pub struct Example {
    /// The line of the opening fence.
    pub line: usize,
    pub text: String,
}

impl Example {
    /// A complete spec sets `id`; a fragment does not.
    pub fn is_complete(&self) -> bool {
        self.text
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("id"))
    }
}

impl Page {
    pub fn read(text: &str) -> Page {
        let mut page = Page {
            sections: BTreeMap::new(),
            examples: Vec::new(),
            problems: Vec::new(),
        };
        let mut section: Option<TableId> = None;
        // The open code block: its first line, its language and its text so far.
        let mut block: Option<(usize, String, String)> = None;
        for (line, text) in (1..).zip(text.lines()) {
            let trimmed = text.trim_start();
            if let Some((start, language, body)) = &mut block {
                if trimmed.starts_with("```") {
                    if language == "toml" {
                        page.examples.push(Example {
                            line: *start,
                            text: std::mem::take(body),
                        });
                    }
                    block = None;
                } else {
                    body.push_str(text);
                    body.push('\n');
                }
            } else if let Some(language) = trimmed.strip_prefix("```") {
                block = Some((line, language.trim().to_owned(), String::new()));
            } else if text.starts_with('#') {
                section = table_of_heading(text);
                if let Some(table) = &section {
                    let new = Section {
                        line,
                        rows: BTreeMap::new(),
                    };
                    if let Some(old) = page.sections.insert(table.clone(), new) {
                        page.problems.push(format!(
                            "line {line}: a second section for {table} (the first is at line {})",
                            old.line
                        ));
                    }
                }
            } else if let Some(table) = &section
                && let Some(key) = key_of_row(text)
            {
                let rows = &mut page.sections.get_mut(table).expect("opened").rows;
                let row = Row {
                    line,
                    text: text.to_owned(),
                };
                if let Some(old) = rows.insert(key.to_owned(), row) {
                    page.problems.push(format!(
                        "line {line}: a second row for {table} key `{key}` (the first is at line {})",
                        old.line
                    ));
                }
            }
        }
        page
    }
}

/// The table a heading names: ``### `[auth]` with `mode = "oauth2"` `` is `[auth]`'s
/// `oauth2` variant.
fn table_of_heading(heading: &str) -> Option<TableId> {
    let text = heading.trim_start_matches('#').trim();
    if text == "Top-level keys" {
        return Some(TableId::new("", None));
    }
    let spans = code_spans(text);
    let header = spans.first().filter(|span| span.starts_with('['))?;
    let variant = spans.iter().skip(1).find(|span| span.contains(" = \""));
    Some(TableId::new(&any_name(header), variant.map(|v| v.as_str())))
}

/// `[models.<Name>]` as the tracer writes it, `[models.<name>]`.
fn any_name(header: &str) -> String {
    let mut out = String::new();
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(NAME);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The key of a row such as ``| `pkce` | boolean | … |``.
fn key_of_row(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("| `")?;
    let key = &rest[..rest.find('`')?];
    (!key.is_empty()).then_some(key)
}

//! Walking the merged `config` tree by hand, so that every problem is collected (serde stops at
//! the first) and each one names its key and where the value came from: the file, or the
//! `PLUGBOARD__…` variable that overrode it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use config::{Value, ValueKind};
use plugboard_core::text::escape_controls;
use secrecy::SecretString;

use super::interpolate::interpolate;

/// What the `config` crate records as the origin of values taken from the environment.
const ENV_ORIGIN: &str = "the environment";
pub(super) const ENV_PREFIX: &str = "PLUGBOARD";

/// The variable that overrides a key: `server.bind` → `PLUGBOARD__SERVER__BIND`.
pub(super) fn env_var(key: &str) -> String {
    let mut name = ENV_PREFIX.to_owned();
    for segment in key.split('.') {
        name.push_str("__");
        name.push_str(&segment.to_ascii_uppercase());
    }
    name
}

/// One value with its full key, e.g. `integrations.microsoft.client_id`.
pub(super) struct Field {
    pub key: String,
    value: Value,
}

/// Problems and warnings found so far, and what is needed to describe where values came from.
pub(super) struct Ctx<'a> {
    pub file: &'a str,
    /// The config file's directory, where relative paths in it start.
    pub dir: PathBuf,
    env: &'a HashMap<String, String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, env: &'a HashMap<String, String>) -> Self {
        Ctx {
            file,
            dir: PathBuf::new(),
            env,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Relative paths in the configuration start from `dir`.
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = dir.to_owned();
        self
    }

    fn from_env(field: &Field) -> bool {
        field.value.origin() == Some(ENV_ORIGIN)
    }

    fn origin(&self, field: &Field) -> String {
        if Self::from_env(field) {
            format!("environment variable {}", env_var(&field.key))
        } else {
            self.file.to_owned()
        }
    }

    pub fn error(&mut self, field: &Field, message: impl AsRef<str>) {
        let line = format!(
            "{} (from {}): {}",
            field.key,
            self.origin(field),
            message.as_ref()
        );
        self.problem(line);
    }

    pub fn warn(&mut self, field: &Field, message: impl AsRef<str>) {
        let line = format!(
            "{} (from {}): {}",
            field.key,
            self.origin(field),
            message.as_ref()
        );
        self.warning(line);
    }

    /// A problem with a key that has no value of its own to name its origin (an entry of an
    /// array of tables, which only the file can hold).
    pub fn error_at(&mut self, key: &str, message: impl AsRef<str>) {
        let line = format!("{key} (from {}): {}", self.file, message.as_ref());
        self.problem(line);
    }

    /// A warning about such a key.
    pub fn warn_at(&mut self, key: &str, message: impl AsRef<str>) {
        let line = format!("{key} (from {}): {}", self.file, message.as_ref());
        self.warning(line);
    }

    /// Every problem and warning is one line of a list, and of a log: a key or a value quoted
    /// in it (a quoted TOML key, a string from the file) has its control characters written
    /// as escapes.
    fn problem(&mut self, line: String) {
        self.problems.push(escape_controls(&line));
    }

    fn warning(&mut self, line: String) {
        self.warnings.push(escape_controls(&line));
    }

    pub fn missing(&mut self, key: &str, expected: &str) {
        self.problem(format!(
            "{key}: required, not set; expected {expected} in {} or in {}",
            self.file,
            env_var(key)
        ));
    }

    /// Like [`Ctx::missing`] for a table whose keys are names, set by one variable per entry.
    pub fn missing_entries(&mut self, key: &str, expected: &str) {
        self.problem(format!(
            "{key}: required, not set; expected {expected} in {} or in {}__<ID>",
            self.file,
            env_var(key)
        ));
    }

    /// A string; file values have `${VAR}` references expanded. `reveal` puts the value in
    /// messages, which secrets never do.
    fn text(&mut self, field: &Field, expected: &str, reveal: bool) -> Option<String> {
        let raw = match &field.value.kind {
            ValueKind::String(s) => s.clone(),
            _ => {
                let found = describe(&field.value.kind, reveal);
                self.error(field, format!("expected {expected}, found {found}"));
                return None;
            }
        };
        if Self::from_env(field) {
            return Some(raw);
        }
        match interpolate(&raw, self.env) {
            Ok(text) => Some(text),
            Err(why) => {
                self.error(field, why);
                None
            }
        }
    }

    pub fn string(&mut self, field: &Field, expected: &str) -> Option<String> {
        self.text(field, expected, true)
    }

    /// A boolean; `"true"` and `"false"` are accepted too, as environment variables give them.
    pub fn boolean(&mut self, field: &Field) -> Option<bool> {
        match &field.value.kind {
            ValueKind::Boolean(b) => Some(*b),
            _ => match self.string(field, "true or false")?.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                other => {
                    self.error(field, format!("expected true or false, found `{other}`"));
                    None
                }
            },
        }
    }

    /// A number of bytes: a whole number, or a string with a unit (`"512KiB"`, `"1MiB"`,
    /// `"1MB"`; `B`, `KB`, `MB`, `GB` are powers of 1000, `KiB`, `MiB`, `GiB` of 1024).
    pub fn byte_size(&mut self, field: &Field, expected: &str) -> Option<u64> {
        if !matches!(field.value.kind, ValueKind::String(_)) {
            let number = self.integer(field, expected)?;
            return u64::try_from(number).ok().or_else(|| {
                self.error(field, format!("expected {expected}, found {number}"));
                None
            });
        }
        let text = self.string(field, expected)?;
        let parsed = parse_size(&text);
        if parsed.is_none() {
            self.error(field, format!("expected {expected}, found `{text}`"));
        }
        parsed
    }

    /// A whole number; a string of digits is accepted too, as environment variables give them.
    pub fn integer(&mut self, field: &Field, expected: &str) -> Option<i64> {
        let number = match &field.value.kind {
            ValueKind::I64(n) => Some(*n),
            ValueKind::U64(n) => i64::try_from(*n).ok(),
            ValueKind::I128(n) => i64::try_from(*n).ok(),
            ValueKind::U128(n) => i64::try_from(*n).ok(),
            ValueKind::String(_) => {
                let text = self.string(field, expected)?;
                let parsed = text.trim().parse().ok();
                if parsed.is_none() {
                    self.error(field, format!("expected {expected}, found `{text}`"));
                }
                return parsed;
            }
            _ => None,
        };
        if number.is_none() {
            let found = describe(&field.value.kind, true);
            self.error(field, format!("expected {expected}, found {found}"));
        }
        number
    }

    pub fn secret(&mut self, field: &Field, expected: &str) -> Option<SecretString> {
        self.text(field, expected, false).map(SecretString::from)
    }

    /// An array of strings. A variable cannot hold an array, so there a comma- or
    /// space-separated string is accepted.
    pub fn strings(&mut self, field: &Field, expected: &str) -> Option<Vec<String>> {
        match &field.value.kind {
            ValueKind::String(s) if Self::from_env(field) => Some(
                s.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            ValueKind::Array(items) => {
                let mut out = Vec::new();
                for (i, value) in items.iter().enumerate() {
                    let item = Field {
                        key: format!("{}[{i}]", field.key),
                        value: value.clone(),
                    };
                    out.push(self.string(&item, expected)?);
                }
                Some(out)
            }
            other => {
                let found = describe(other, true);
                self.error(
                    field,
                    format!("expected an array of {expected}, found {found}"),
                );
                None
            }
        }
    }

    pub fn table(&mut self, field: Field) -> Option<Table> {
        match field.value.kind {
            ValueKind::Table(map) => Some(Table {
                key: field.key,
                entries: map.into_iter().collect(),
            }),
            ref other => {
                let found = describe(other, true);
                self.error(&field, format!("expected a table, found {found}"));
                None
            }
        }
    }

    /// The elements of an array, each keyed `name[i]`.
    pub fn array(&mut self, field: Field) -> Option<Vec<Field>> {
        self.elements(field, true)
    }

    /// [`Ctx::array`] of an array that holds secrets: a value given instead is not repeated.
    pub fn secret_array(&mut self, field: Field) -> Option<Vec<Field>> {
        self.elements(field, false)
    }

    fn elements(&mut self, field: Field, reveal: bool) -> Option<Vec<Field>> {
        match field.value.kind {
            ValueKind::Array(items) => Some(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Field {
                        key: format!("{}[{i}]", field.key),
                        value,
                    })
                    .collect(),
            ),
            ref other => {
                let found = describe(other, reveal);
                self.error(
                    &field,
                    format!("expected an array of tables, found {found}"),
                );
                None
            }
        }
    }
}

/// A table being read: keys are taken out as they are understood, and what is left at the end
/// is unknown.
pub(super) struct Table {
    key: String,
    entries: BTreeMap<String, Value>,
}

impl Table {
    pub fn root(entries: HashMap<String, Value>) -> Table {
        Table {
            key: String::new(),
            entries: entries.into_iter().collect(),
        }
    }

    pub fn empty(key: &str) -> Table {
        Table {
            key: key.to_owned(),
            entries: BTreeMap::new(),
        }
    }

    /// The table's own key, e.g. `integrations.microsoft`.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn key_of(&self, name: &str) -> String {
        if self.key.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.key)
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Field> {
        let value = self.entries.remove(name)?;
        Some(Field {
            key: self.key_of(name),
            value,
        })
    }

    pub fn required(&mut self, ctx: &mut Ctx<'_>, name: &str, expected: &str) -> Option<Field> {
        let field = self.take(name);
        if field.is_none() {
            ctx.missing(&self.key_of(name), expected);
        }
        field
    }

    /// Every remaining entry, for tables whose keys are names (integrations, key ids).
    pub fn drain(self) -> Vec<(String, Field)> {
        let key = self.key;
        self.entries
            .into_iter()
            .map(|(name, value)| {
                let field = Field {
                    key: format!("{key}.{name}"),
                    value,
                };
                (name, field)
            })
            .collect()
    }

    /// Reports every key nobody took.
    pub fn finish(self, ctx: &mut Ctx<'_>) {
        for (_, field) in self.drain() {
            let key = field.key.trim_start_matches('.').to_owned();
            ctx.error(&Field { key, ..field }, "unknown key");
        }
    }
}

fn describe(kind: &ValueKind, reveal: bool) -> String {
    let (what, value) = match kind {
        ValueKind::Nil => return "nothing".to_owned(),
        ValueKind::Boolean(b) => ("a boolean", b.to_string()),
        ValueKind::I64(n) => ("an integer", n.to_string()),
        ValueKind::I128(n) => ("an integer", n.to_string()),
        ValueKind::U64(n) => ("an integer", n.to_string()),
        ValueKind::U128(n) => ("an integer", n.to_string()),
        ValueKind::Float(n) => ("a number", n.to_string()),
        ValueKind::String(s) => ("a string", format!("{s:?}")),
        ValueKind::Table(_) => return "a table".to_owned(),
        ValueKind::Array(_) => return "an array".to_owned(),
    };
    if reveal {
        format!("{what} `{value}`")
    } else {
        what.to_owned()
    }
}

/// `"1MiB"`, `"64 KB"`, `"1048576"`: a number of bytes with an optional unit.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit)
}

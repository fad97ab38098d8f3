//! The actions: one-off reads of people on a connection's behalf.
//!
//! Each returns `{"people": [Person, …]}`: the first `top` people, most relevant first, from a
//! single Graph request (a search cannot page, and "the most relevant few" is what a caller of
//! an action wants).

use plugboard_core::spec::PaginationSpec;
use plugboard_core::{Context, HttpRequest, ProviderError};
use serde_json::{Map, Value, json};

use crate::graph;
use crate::person::GraphEntry;

/// Graph's own default page size; sent explicitly so the answer does not depend on it.
const DEFAULT_TOP: u64 = 10;
/// The largest `$top` the people API accepts.
const MAX_TOP: u64 = 1000;
/// The longest text input taken, in characters: far beyond any name, address or search, and
/// short enough that the request URL stays within what servers accept. A 70,000-character
/// query otherwise failed as an unreachable provider, after every retry.
const MAX_TEXT_CHARS: usize = 1000;

/// `search-people`: `{"query": "…", "top"?: n}`, a fuzzy match on names and email addresses.
pub(crate) async fn search_people(
    ctx: &dyn Context,
    preset: &PaginationSpec,
    input: &Value,
) -> Result<Value, ProviderError> {
    let input = Input::new("search-people", input, &["query", "top"])?;
    let query = input.text("query")?;
    if query.contains('"') {
        return Err(input.invalid("query", "must not contain `\"`"));
    }
    let top = input.top()?;
    // Quoted, so a query of several words is one search phrase.
    let request = HttpRequest::get(graph::ME_PEOPLE)
        .query("$search", format!("\"{query}\""))
        .query("$top", top.to_string());
    let response = graph::check(ctx.http(request).await?, |status| {
        (status == 403).then(|| {
            "Microsoft Graph refused to search the connected user's people: the connection \
             needs People.Read; reconnect and grant it"
                .to_owned()
        })
    })?;
    Ok(people_output(ctx, preset.records(&response)?))
}

/// `list-user-people`: `{"user": "<id or userPrincipalName>", "top"?: n}`, the people most
/// relevant to another user of the organisation.
pub(crate) async fn list_user_people(
    ctx: &dyn Context,
    preset: &PaginationSpec,
    input: &Value,
) -> Result<Value, ProviderError> {
    let input = Input::new("list-user-people", input, &["user", "top"])?;
    let user = input.text("user")?;
    // The user becomes a path segment: a `/` (or `\`, which some servers read as one), `.` or
    // `..` would address a different resource than the caller named.
    if user.contains(['/', '\\']) || user == "." || user == ".." {
        return Err(input.invalid(
            "user",
            "must be a user id or userPrincipalName, without `/`",
        ));
    }
    let top = input.top()?;
    let request = HttpRequest::get(format!("/v1.0/users/{}/people", graph::path_segment(user)))
        .query("$top", top.to_string());
    let response = ctx.http(request).await?;
    // An unknown user is the caller's mistake, not a provider failure.
    if response.status == 404 {
        return Err(ProviderError::not_found(format!(
            "list-user-people: no user `{user}` in the connected organisation"
        )));
    }
    let response = graph::check(response, |status| match status {
        403 => Some(
            "Microsoft Graph refused to list another user's people: People.Read.All needs \
             admin consent. An administrator must grant it to the app for the organisation \
             (the provider's admin consent URL), then the connection must be reconnected \
             asking for People.Read.All"
                .to_owned(),
        ),
        _ => None,
    })?;
    Ok(people_output(ctx, preset.records(&response)?))
}

fn people_output(ctx: &dyn Context, entries: Vec<GraphEntry>) -> Value {
    json!({ "people": graph::people(ctx, entries, 1) })
}

/// An action's input object, checked field by field so every refusal names its field.
struct Input<'a> {
    action: &'static str,
    fields: &'a Map<String, Value>,
}

impl<'a> Input<'a> {
    /// Refuses anything but an object, and fields the action does not know: a misspelt
    /// `top` would otherwise be silently ignored.
    fn new(action: &'static str, input: &'a Value, known: &[&str]) -> Result<Self, ProviderError> {
        let Some(fields) = input.as_object() else {
            return Err(ProviderError::invalid_input(format!(
                "{action}: the input must be a JSON object (fields: {})",
                known.join(", ")
            )));
        };
        let input = Input { action, fields };
        if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(input.invalid(unknown, "unknown field"));
        }
        Ok(input)
    }

    /// A required, non-blank string of at most [`MAX_TEXT_CHARS`] characters, trimmed.
    fn text(&self, field: &str) -> Result<&'a str, ProviderError> {
        match self.fields.get(field) {
            Some(Value::String(text)) if text.chars().count() > MAX_TEXT_CHARS => Err(self
                .invalid(
                    field,
                    &format!("must be at most {MAX_TEXT_CHARS} characters"),
                )),
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
            Some(Value::String(_)) => Err(self.invalid(field, "must not be empty")),
            Some(_) => Err(self.invalid(field, "must be a string")),
            None => Err(self.invalid(field, "required")),
        }
    }

    /// The optional `top`: how many people to return.
    fn top(&self) -> Result<u64, ProviderError> {
        match self.fields.get("top") {
            None | Some(Value::Null) => Ok(DEFAULT_TOP),
            Some(value) => value
                .as_u64()
                .filter(|top| (1..=MAX_TOP).contains(top))
                .ok_or_else(|| {
                    self.invalid(
                        "top",
                        &format!("must be a whole number from 1 to {MAX_TOP}"),
                    )
                }),
        }
    }

    fn invalid(&self, field: &str, why: &str) -> ProviderError {
        ProviderError::invalid_input(format!("{}: `{field}` {why}", self.action))
    }
}

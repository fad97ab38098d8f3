//! List pages shaped as a spec's pagination preset says, for scripts and fakes.

use plugboard_core::spec::PaginationSpec;
use serde_json::{Map, Value};

/// A page body with `entries` where the preset's `records` pointer points and `next` (a
/// cursor, or a next page's URL for a `next_link` preset) where its cursor or next link
/// pointer points; `None` leaves it out, as a last page does.
///
/// # Panics
/// On a pointer that goes into an array (`/data/0`): a page this helper cannot build.
pub fn page_body(preset: &PaginationSpec, entries: Vec<Value>, next: Option<String>) -> Value {
    let mut body = Value::Object(Map::new());
    put(&mut body, preset.records_pointer(), Value::Array(entries));
    if let Some(next) = next {
        let pointer = match preset {
            PaginationSpec::Cursor { cursor, .. } => cursor,
            PaginationSpec::NextLink { next_link, .. } => next_link,
        };
        put(&mut body, pointer, Value::String(next));
    }
    body
}

/// Sets `value` at a JSON pointer, creating the objects on the way (`~1` is `/`, `~0` is `~`).
fn put(body: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *body = value;
        return;
    }
    let mut at = body;
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, path) = tokens.split_last().expect("a pointer with a token");
    for token in path {
        at = at
            .as_object_mut()
            .unwrap_or_else(|| panic!("`{pointer}` goes into an array"))
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    at.as_object_mut()
        .unwrap_or_else(|| panic!("`{pointer}` goes into an array"))
        .insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_and_cursor_go_where_the_preset_points() {
        let preset: PaginationSpec = serde_json::from_value(json!({
            "type": "cursor", "cursor": "/meta/next~1cursor", "cursor_param": "after", "records": "/data"
        }))
        .unwrap();
        assert_eq!(
            page_body(&preset, vec![json!({"id": 1})], Some("c2".into())),
            json!({"data": [{"id": 1}], "meta": {"next/cursor": "c2"}})
        );
        assert_eq!(page_body(&preset, vec![], None), json!({"data": []}));
    }
}

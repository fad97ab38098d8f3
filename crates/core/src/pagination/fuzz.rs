//! Fuzz target `graph_page`: a page of a list as a provider (Graph's OData lists, or a cursor
//! API) sends it.
//!
//! The pager reads a page without a `Value` tree, splitting the body only as deep as the
//! preset's pointers go; whatever the body, it must read exactly what `serde_json`'s `Value`
//! and [`Value::pointer`] read — the same records and the same next link — or fail with a
//! decode error, and never panic. The request for the next page is the link (or the cursor)
//! as read.

use plugboard_fuzz::proptest::prelude::*;
use plugboard_fuzz::{Target, inputs};
use serde_json::Value;

use crate::context::{HttpRequest, HttpResponse};
use crate::error::ErrorKind;
use crate::spec::PaginationSpec;

const KEYS: &[&str] = &[
    "value",
    "@odata.nextLink",
    "@odata.context",
    "data",
    "meta",
    "next",
    "a/b",
    "~",
    "0",
    "01",
    "id",
    "displayName",
];

const SEEDS: &[&str] = &[
    r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('x')/people","value":[{"id":"1","displayName":"Ann"},{"id":"2"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/me/people?$skip=10"}"#,
    r#"{"value":[]}"#,
    r#"{"data":[{"id":1}],"meta":{"next":"c2"}}"#,
    r#"{"data":null,"meta":{"next":""},"a/b":[[1],{"01":2}]}"#,
    r#"[{"id":"top-level array"}]"#,
];

/// Presets with pointers of every kind: Graph's, nested ones, escaped tokens, array indices,
/// the whole body.
fn presets() -> Vec<PaginationSpec> {
    let next_link = |next_link: &str, records: &str| PaginationSpec::NextLink {
        next_link: next_link.into(),
        records: records.into(),
        page_size_param: None,
        page_size: None,
        max_page_size: None,
    };
    vec![
        next_link("/@odata.nextLink", "/value"),
        next_link("/a~1b/1/01", "/a~1b/0"),
        next_link("/~0", ""),
        PaginationSpec::Cursor {
            cursor: "/meta/next".into(),
            cursor_param: "cursor".into(),
            records: "/data".into(),
            page_size_param: None,
            page_size: None,
            max_page_size: None,
        },
    ]
}

#[test]
fn fuzz_graph_page() {
    let json = inputs::mutate(
        inputs::json(KEYS).prop_map(|v| serde_json::to_vec(&v).expect("a value writes")),
        KEYS,
    );
    let presets = presets();
    Target::new(env!("CARGO_MANIFEST_DIR"), "graph_page").run(
        prop_oneof![inputs::mixed(SEEDS, KEYS), json],
        |body: &Vec<u8>| presets.iter().try_for_each(|preset| check(preset, body)),
    );
}

fn check(preset: &PaginationSpec, body: &[u8]) -> Result<(), String> {
    let response = HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: body.to_vec(),
    };
    let read = preset.read_page::<Value>(&response);
    if let Err(error) = &read
        && (error.kind != ErrorKind::Decode || error.message.is_empty())
    {
        return Err(format!("not a decode error: {error:?}"));
    }
    // A body `Value` cannot read (a number out of range where no pointer goes) may still be
    // read by the pager, which does not look there: only a body `Value` reads is compared.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let records = match value.pointer(preset.records_pointer()) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(records)) => Some(records.clone()),
        Some(_) => None,
    };
    let link = value
        .pointer(preset.next_pointer())
        .and_then(Value::as_str)
        .filter(|link| !link.is_empty());
    let read_link = match (read, records) {
        (Ok((read, link)), Some(records)) if read == records => link,
        (Err(_), None) => return Ok(()),
        (read, records) => {
            return Err(format!(
                "with {preset:?} the pager read {read:?}, a Value {records:?}"
            ));
        }
    };
    if read_link.as_deref() != link {
        return Err(format!(
            "with {preset:?} the pager read the link {read_link:?}, a Value {link:?}"
        ));
    }
    let current = HttpRequest::get("/v1.0/me/people").query("cursor", "old");
    if let Some(link) = read_link {
        let next = preset.next_request(&current, link.clone());
        let followed = match preset {
            PaginationSpec::NextLink { .. } => next.url == link && next.query.is_empty(),
            PaginationSpec::Cursor { cursor_param, .. } => {
                next.url == current.url && next.query == [(cursor_param.clone(), link)]
            }
        };
        if !followed {
            return Err(format!("with {preset:?} the next request is {next:?}"));
        }
    }
    Ok(())
}

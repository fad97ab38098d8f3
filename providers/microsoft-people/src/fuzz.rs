//! Fuzz target `people_page`: a page of Graph's `/me/people` as the people reader reads it.
//!
//! The reader never fails on valid JSON (an odd property reads as unknown, an entry without a
//! usable id as none), reads each entry from the page's text exactly as [`Person::from_graph`]
//! reads its `Value`, and the records it stores carry the person's id and, as data, the text
//! of the person's sorted JSON `Value` — what the host hashes. An error answer is reported
//! with its status, whatever its body.

use plugboard_core::HttpResponse;
use plugboard_fuzz::proptest::prelude::*;
use plugboard_fuzz::{Target, inputs};
use serde_json::Value;

use crate::MicrosoftPeople;
use crate::graph;
use crate::person::{GraphEntry, Person};

const KEYS: &[&str] = &[
    "value",
    "@odata.nextLink",
    "id",
    "displayName",
    "givenName",
    "surname",
    "birthday",
    "companyName",
    "department",
    "imAddress",
    "isFavorite",
    "jobTitle",
    "personNotes",
    "officeLocation",
    "profession",
    "userPrincipalName",
    "yomiCompany",
    "scoredEmailAddresses",
    "address",
    "relevanceScore",
    "phones",
    "type",
    "number",
    "postalAddresses",
    "street",
    "city",
    "state",
    "countryOrRegion",
    "postalCode",
    "websites",
    "personType",
    "class",
    "subclass",
    "error",
    "code",
    "message",
];

#[test]
fn fuzz_people_page() {
    let person = include_str!("../tests/fixtures/full-person.json");
    let seeds = [
        format!(r#"{{"value":[{person},{{"id":"b","displayName":"Bo"}}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/me/people?$skip=2"}}"#),
        r#"{"value":[{"id":"x","displayName":7,"isFavorite":"yes","phones":{"type":"mobile"},"scoredEmailAddresses":["plain@string",{"address":"a@b.c","relevanceScore":"high"}]}]}"#.to_owned(),
        r#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#.to_owned(),
    ];
    let pages = inputs::mutate(
        inputs::json(KEYS).prop_map(|entry| {
            let page = serde_json::json!({"value": [entry, {"id": "y", "value": entry}]});
            serde_json::to_vec(&page).expect("a value writes")
        }),
        KEYS,
    );
    let reader = MicrosoftPeople::new().expect("the provider's spec");
    Target::new(env!("CARGO_MANIFEST_DIR"), "people_page").run(
        prop_oneof![inputs::mixed(&seeds, KEYS), pages],
        |body: &Vec<u8>| check(&reader, body),
    );
}

fn check(reader: &MicrosoftPeople, body: &[u8]) -> Result<(), String> {
    let response = HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: body.to_vec(),
    };
    let entries = reader.pagination.records::<GraphEntry>(&response);
    for status in [400, 403, 429, 503] {
        let answer = HttpResponse {
            status,
            ..response.clone()
        };
        match graph::check(answer, |_| None) {
            Err(e) if e.status() == Some(status) => {}
            other => return Err(format!("an error answer {status} read as {other:?}")),
        }
    }
    let Some(Value::Array(values)) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|page| page.get("value").cloned())
    else {
        return Ok(());
    };
    let entries = entries.map_err(|e| format!("a page of valid JSON refused: {e}"))?;
    let people: Vec<Person> = entries.into_iter().filter_map(|entry| entry.0).collect();
    let expected: Vec<Person> = values.iter().filter_map(Person::from_graph).collect();
    if people != expected {
        return Err(format!(
            "the page's text reads {people:?}, its Value {expected:?}"
        ));
    }
    let batch = Person::encode_records(&people).map_err(|e| format!("cannot encode: {e}"))?;
    let records = batch
        .raw()
        .map_err(|e| format!("the encoded batch is refused: {e}"))?;
    for (record, person) in records.iter().zip(&people) {
        let value = serde_json::to_value(person).map_err(|e| e.to_string())?;
        let text = value.to_string();
        if record.id != person.id || record.data != text {
            return Err(format!(
                "{person:?} is stored as {record:?}, not as its id and sorted JSON {value}"
            ));
        }
    }
    Ok(())
}

//! Graph `person` entries to `Person` records, one fixture per shape Graph sends.
//!
//! The snapshots are the record's public JSON: a change in them is a change in the data
//! contract and needs a deliberate review.

use plugboard_microsoft_people::Person;
use serde_json::Value;

fn map(fixture: &str) -> Person {
    let path = format!(
        "{}/tests/fixtures/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let entry: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let person = Person::from_graph(&entry).unwrap_or_else(|| panic!("{fixture} has an id"));
    assert_eq!(
        Some(person.id.as_str()),
        entry["id"].as_str(),
        "the id is kept byte for byte"
    );
    person
}

#[test]
fn a_full_organisation_user() {
    insta::assert_json_snapshot!(map("full-person"));
}

#[test]
fn a_personal_contact_keeps_its_exchange_id() {
    insta::assert_json_snapshot!(map("personal-contact"));
}

#[test]
fn a_group_with_blank_and_null_properties() {
    insta::assert_json_snapshot!(map("group"));
}

#[test]
fn null_and_missing_properties_read_the_same() {
    let all_null = map("all-null");
    assert_eq!(all_null, map("only-id"));
    insta::assert_json_snapshot!(all_null);
}

#[test]
fn unknown_fields_and_incomplete_entries_are_dropped() {
    insta::assert_json_snapshot!(map("unknown-fields"));
}

//! The conformance harness: every declared sync and action runs against canned Graph answers
//! (the mapping fixtures), saves records with ids of the declared model, and asks only for
//! what it is expected to ask.

use plugboard_conformance::{Call, Conformance, Script};
use plugboard_microsoft_people::MicrosoftPeople;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_sync_and_action_conforms() {
    let provider = MicrosoftPeople::new().unwrap();
    let page =
        json!({"value": [fixture("full-person"), fixture("personal-contact"), fixture("group")]});
    let script = Script::new()
        .respond("GET", "/v1.0/me/people", 200, page.clone())
        .respond("GET", "/v1.0/users/adele@contoso.com/people", 200, page)
        .action_input("search-people", json!({"query": "adele"}))
        .action_input("list-user-people", json!({"user": "adele@contoso.com"}));
    let report = Conformance::new(&provider, script).run();
    report.assert_ok();

    let sync = &report.calls["sync `people`"];
    assert_eq!(sync[0], Call::BeginCrawl("Person".to_owned()));
    assert!(
        sync.contains(&Call::EndCrawl("Person".to_owned())),
        "{sync:?}"
    );
}

//! The embedded spec: it parses, says what the references say, and changes only on purpose.

use plugboard_core::{Provider, ProviderSpec};
use plugboard_microsoft_people::{MicrosoftPeople, SPEC_PATH, spec_text};

/// The whole parsed spec, defaults applied: a change to any fact shows up in review.
#[test]
fn the_parsed_spec_is_as_reviewed() {
    let provider = MicrosoftPeople::new().expect("the embedded spec is valid");
    insta::assert_json_snapshot!(provider.spec());
}

#[test]
fn the_spec_text_parses_on_its_own() {
    let spec = ProviderSpec::parse(SPEC_PATH, spec_text()).expect("valid");
    let oauth = spec.auth.as_oauth2().expect("oauth2");
    assert_eq!(
        oauth.default_scopes(),
        ["People.Read", "User.Read", "offline_access"]
    );
    let all = oauth.scope("People.Read.All").expect("declared");
    assert!(all.admin_consent && !all.default);
    assert_eq!(
        spec.resolve_connection_config(&Default::default()).unwrap()["tenant"],
        "common"
    );
}

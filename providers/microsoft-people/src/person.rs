//! The `Person` record: Graph's `person` resource, normalised.
//!
//! This is a public data contract: it is what the `people` sync stores and what the actions
//! return, so consumers read it without knowing Graph. Every key is always present (`null` or
//! `[]` when Graph said nothing), keys are snake_case, and Graph's quirks stay here: any
//! property but `id` may be missing, null or of an unexpected type, and all of those read as
//! "not known" rather than failing the page.

use plugboard_core::{EncodedRecords, ProviderError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::lenient::{AnyString, Flag, Items, Number, Object, Text, members};

/// A person relevant to a user: an organisation user, a personal contact or a group.
///
/// Fields here and in the types below are declared in the sorted order of their JSON keys: see
/// [`Person::encode_records`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// As Graph gives it (usually `YYYY-MM-DD`); not parsed, since contacts hold partial dates.
    pub birthday: Option<String>,
    pub company_name: Option<String>,
    pub department: Option<String>,
    /// The name to show, e.g. `Alex Wilber` or a group's name.
    pub display_name: Option<String>,
    /// Email addresses, most relevant first as Graph ranks them.
    #[serde(default)]
    pub emails: Vec<Email>,
    pub given_name: Option<String>,
    /// Graph's id, byte for byte: a GUID for organisation users and groups, an Exchange item id
    /// (base64, may hold `+`, `/` and `=`) for personal contacts. Also the record id.
    pub id: String,
    /// Instant messaging address, e.g. `sip:alexw@contoso.onmicrosoft.com`.
    pub im_address: Option<String>,
    /// Whether the user marked the person as a favourite; `None` when Graph does not say.
    pub is_favorite: Option<bool>,
    pub job_title: Option<String>,
    /// Free-text notes the user keeps about the person (Graph's `personNotes`).
    pub notes: Option<String>,
    /// E.g. a building and room, `131/1104`.
    pub office_location: Option<String>,
    /// Whether this is a person or a group, and which kind. `None` when Graph does not say.
    pub person_type: Option<PersonType>,
    #[serde(default)]
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub postal_addresses: Vec<PostalAddress>,
    pub profession: Option<String>,
    pub surname: Option<String>,
    /// The sign-in name of an organisation user; `None` for contacts and groups.
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub websites: Vec<Website>,
    /// Phonetic spelling of the company name, for Japanese sorting (Graph's `yomiCompany`).
    pub yomi_company: Option<String>,
}

/// One of a person's email addresses (Graph's `scoredEmailAddress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub address: String,
    /// How relevant the address is to the user; higher is more relevant. `None` when Graph
    /// does not say.
    pub relevance_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    /// As the user or directory wrote it, e.g. `+1 858 555 0110`; not normalised.
    pub number: String,
    /// Graph's phone type: `business`, `mobile`, `home`, `businessFax`, `other`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Website {
    pub address: String,
    /// Graph's website type: `work`, `home`, `blog`, `profile`, `other`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A postal address. Graph lists `location`s whose `address` is a `physicalAddress`; the
/// fields are read from the entry itself when it has no `address`, so a bare
/// `physicalAddress` (as some Graph versions return) is understood too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostalAddress {
    pub city: Option<String>,
    pub country_or_region: Option<String>,
    /// The location's name, when it has one.
    pub display_name: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    pub street: Option<String>,
    /// `home`, `business` or `other` when Graph says.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonType {
    /// `Person` or `Group`.
    pub class: Option<String>,
    /// E.g. `OrganizationUser`, `PersonalContact`, `UnifiedGroup`.
    pub subclass: Option<String>,
}

impl Person {
    /// Normalises one entry of a Graph people list given as a `Value`, exactly as the sync and
    /// the actions read entries straight from a page's text: `None` when the entry has no
    /// usable id (not a non-empty string). Nothing else makes an entry fail.
    pub fn from_graph(entry: &Value) -> Option<Person> {
        // Reading a `Value` cannot fail: an entry is read leniently from any JSON.
        GraphEntry::deserialize(entry).ok()?.0
    }

    /// The records the sync stores: Graph's id as the record id, the struct as the data,
    /// encoded straight from the structs (no `serde_json::Value` on the way): the sync's
    /// largest cost per person otherwise. The fields of `Person` and of its parts are declared
    /// in the sorted order of their keys, so the text is the same as the `Value`'s and a record
    /// hashes the same however it was encoded (a test checks it).
    pub fn encode_records(people: &[Person]) -> Result<EncodedRecords, ProviderError> {
        EncodedRecords::encode_each(people.iter().map(|person| (person.id.as_str(), person)))
    }
}

/// One entry of a Graph people list, normalised: `None` when the entry has no usable id (not a
/// non-empty string), as without one it can be neither stored nor deleted later; the caller
/// skips it. Nothing else makes an entry `None`, and no valid JSON makes reading one fail, so
/// a page reads straight into these, without a `Value` per entry.
pub(crate) struct GraphEntry(pub(crate) Option<Person>);

impl<'de> Deserialize<'de> for GraphEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entry = Object::<PersonFields>::deserialize(deserializer)?;
        Ok(GraphEntry(entry.0))
    }
}

members! {
    /// Graph's `person`, as far as [`Person`] reads it.
    PersonFields(PersonKey) -> Person {
        id: AnyString = "id",
        birthday: Text = "birthday",
        company_name: Text = "companyName",
        department: Text = "department",
        display_name: Text = "displayName",
        emails: Items<EmailFields> = "scoredEmailAddresses",
        given_name: Text = "givenName",
        im_address: Text = "imAddress",
        is_favorite: Flag = "isFavorite",
        job_title: Text = "jobTitle",
        notes: Text = "personNotes",
        office_location: Text = "officeLocation",
        person_type: Object<PersonTypeFields> = "personType",
        phones: Items<PhoneFields> = "phones",
        postal_addresses: Items<LocationFields> = "postalAddresses",
        profession: Text = "profession",
        surname: Text = "surname",
        user_principal_name: Text = "userPrincipalName",
        websites: Items<WebsiteFields> = "websites",
        yomi_company: Text = "yomiCompany",
    }
    finish(read) {
        Some(Person {
            id: read.id.0.filter(|id| !id.is_empty())?,
            birthday: read.birthday.0,
            company_name: read.company_name.0,
            department: read.department.0,
            display_name: read.display_name.0,
            emails: read.emails.0,
            given_name: read.given_name.0,
            im_address: read.im_address.0,
            is_favorite: read.is_favorite.0,
            job_title: read.job_title.0,
            notes: read.notes.0,
            office_location: read.office_location.0,
            person_type: read.person_type.0,
            phones: read.phones.0,
            postal_addresses: read.postal_addresses.0,
            profession: read.profession.0,
            surname: read.surname.0,
            user_principal_name: read.user_principal_name.0,
            websites: read.websites.0,
            yomi_company: read.yomi_company.0,
        })
    }
}

members! {
    /// Graph's `scoredEmailAddress`; kept only with an address.
    EmailFields(EmailKey) -> Email {
        address: Text = "address",
        relevance_score: Number = "relevanceScore",
    }
    finish(read) {
        Some(Email {
            address: read.address.0?,
            relevance_score: read.relevance_score.0,
        })
    }
}

members! {
    /// Graph's `phone`; kept only with a number.
    PhoneFields(PhoneKey) -> Phone {
        number: Text = "number",
        kind: Text = "type",
    }
    finish(read) {
        Some(Phone {
            number: read.number.0?,
            kind: read.kind.0,
        })
    }
}

members! {
    /// Graph's `website`; kept only with an address.
    WebsiteFields(WebsiteKey) -> Website {
        address: Text = "address",
        kind: Text = "type",
    }
    finish(read) {
        Some(Website {
            address: read.address.0?,
            kind: read.kind.0,
        })
    }
}

members! {
    /// Graph's `personType`; kept only when it names a class or a subclass.
    PersonTypeFields(PersonTypeKey) -> PersonType {
        class: Text = "class",
        subclass: Text = "subclass",
    }
    finish(read) {
        (read.class.0.is_some() || read.subclass.0.is_some()).then_some(PersonType {
            class: read.class.0,
            subclass: read.subclass.0,
        })
    }
}

members! {
    /// Graph's `physicalAddress`, without a name: a location's `address`.
    AddressFields(AddressKey) -> PostalAddress {
        city: Text = "city",
        country_or_region: Text = "countryOrRegion",
        postal_code: Text = "postalCode",
        state: Text = "state",
        street: Text = "street",
        kind: Text = "type",
    }
    finish(read) {
        Some(PostalAddress {
            city: read.city.0,
            country_or_region: read.country_or_region.0,
            display_name: None,
            postal_code: read.postal_code.0,
            state: read.state.0,
            street: read.street.0,
            kind: read.kind.0,
        })
    }
}

members! {
    /// An entry of `postalAddresses`: Graph's `location`, whose `address` is a
    /// `physicalAddress`, or a bare `physicalAddress`. The address fields are read from
    /// `address` when it is an object and from the entry itself otherwise, the name always from
    /// the entry; an entry that says nothing but a type is dropped.
    LocationFields(LocationKey) -> PostalAddress {
        display_name: Text = "displayName",
        address: Object<AddressFields> = "address",
        city: Text = "city",
        country_or_region: Text = "countryOrRegion",
        postal_code: Text = "postalCode",
        state: Text = "state",
        street: Text = "street",
        kind: Text = "type",
    }
    finish(read) {
        let own = || AddressFields {
            city: read.city,
            country_or_region: read.country_or_region,
            postal_code: read.postal_code,
            state: read.state,
            street: read.street,
            kind: read.kind,
        };
        let address = read.address.0.or_else(|| own().finish())?;
        let postal = PostalAddress {
            display_name: read.display_name.0,
            ..address
        };
        let says_something = [
            &postal.display_name,
            &postal.street,
            &postal.city,
            &postal.state,
            &postal.postal_code,
            &postal.country_or_region,
        ]
        .iter()
        .any(|field| field.is_some());
        says_something.then_some(postal)
    }
}

#[cfg(test)]
mod tests {
    use plugboard_core::Record;
    use serde_json::json;

    use super::*;

    #[test]
    fn an_entry_without_a_usable_id_is_refused() {
        for entry in [
            json!({"displayName": "No Id"}),
            json!({"id": null}),
            json!({"id": ""}),
            json!({"id": 42}),
            json!("not an object"),
        ] {
            assert_eq!(Person::from_graph(&entry), None, "{entry}");
        }
    }

    #[test]
    fn wrong_types_read_as_unknown_rather_than_failing() {
        let person = Person::from_graph(&json!({
            "id": "x",
            "displayName": 7,
            "isFavorite": "yes",
            "phones": {"type": "mobile"},
            "scoredEmailAddresses": [
                "plain@string",
                {"address": "a@b.c", "relevanceScore": "high"},
                {"relevanceScore": 3.0}
            ],
            "personType": {"class": "", "subclass": null}
        }))
        .unwrap();
        assert_eq!(person.display_name, None);
        assert_eq!(person.is_favorite, None);
        assert!(person.phones.is_empty());
        assert_eq!(
            person.emails,
            vec![Email {
                address: "a@b.c".into(),
                relevance_score: None
            }]
        );
        assert_eq!(person.person_type, None);
    }

    /// Reads an entry as a page does, from its text, and checks that its `Value` reads the same.
    fn read(entry: &str) -> Option<Person> {
        let typed = serde_json::from_str::<GraphEntry>(entry).unwrap().0;
        let value: Value = serde_json::from_str(entry).unwrap();
        assert_eq!(Person::from_graph(&value), typed, "{entry}");
        typed
    }

    fn person(entry: &str) -> Person {
        read(entry).unwrap_or_else(|| panic!("{entry} has an id"))
    }

    #[test]
    fn entries_that_are_not_objects_or_lack_a_usable_id_read_as_none() {
        for entry in [
            r#""a""#,
            "42",
            "null",
            "true",
            r#"[{"id": "a"}]"#,
            "{}",
            r#"{"id": null}"#,
            r#"{"id": ""}"#,
            r#"{"id": 42}"#,
            r#"{"id": ["a"]}"#,
            r#"{"id": {"id": "a"}}"#,
            r#"{"id": "a", "id": 1}"#,
        ] {
            assert_eq!(read(entry), None, "{entry}");
        }
        assert_eq!(
            person(r#"{"id": " "}"#).id,
            " ",
            "an id is kept byte for byte"
        );
        assert_eq!(
            person(r#"{"i\u0064": "a\/b"}"#).id,
            "a/b",
            "keys and ids unescape"
        );
    }

    #[test]
    fn text_is_none_when_missing_null_blank_or_not_a_string() {
        for value in [
            "null",
            r#""""#,
            r#"" \t\n""#,
            "0",
            "true",
            "[]",
            r#"["Ann"]"#,
            r#"{"value": "Ann"}"#,
        ] {
            let entry = format!(r#"{{"id": "x", "displayName": {value}}}"#);
            assert_eq!(person(&entry).display_name, None, "{entry}");
        }
        assert_eq!(person(r#"{"id": "x"}"#).display_name, None);
        let entry = r#"{"id": "x", "display\u004eame": " A\u006en "}"#;
        assert_eq!(
            person(entry).display_name.as_deref(),
            Some(" Ann "),
            "not trimmed"
        );
    }

    #[test]
    fn lists_keep_only_the_objects_that_say_what_they_must() {
        for phones in ["null", r#""+1 555""#, r#"{"number": "1"}"#, "[]"] {
            let entry = format!(r#"{{"id": "x", "phones": {phones}}}"#);
            assert!(person(&entry).phones.is_empty(), "{entry}");
        }
        let entry = r#"{"id": "x",
            "phones": [null, "1", 1, [], {"type": "mobile"}, {"number": " "},
                       {"number": "1", "type": 5}, {"number": "2", "type": "home", "more": {}}],
            "websites": [{"address": "https://a"}, {"type": "blog"}, {"address": {"url": "b"}}]}"#;
        let person = person(entry);
        let phone = |number: &str, kind: Option<&str>| Phone {
            number: number.into(),
            kind: kind.map(Into::into),
        };
        assert_eq!(person.phones, [phone("1", None), phone("2", Some("home"))]);
        let website = Website {
            address: "https://a".into(),
            kind: None,
        };
        assert_eq!(person.websites, [website]);
    }

    #[test]
    fn scores_are_any_number_and_favourites_only_booleans() {
        let score = |value: &str| {
            let entry = format!(
                r#"{{"id": "x", "scoredEmailAddresses": [{{"address": "a@b.c", "relevanceScore": {value}}}]}}"#
            );
            person(&entry).emails[0].relevance_score
        };
        assert_eq!(score("3"), Some(3.0));
        assert_eq!(score("-2"), Some(-2.0));
        assert_eq!(score("0.25"), Some(0.25));
        assert_eq!(score("18446744073709551615"), Some(u64::MAX as f64));
        for value in [r#""3""#, "true", "null", "[3]", r#"{"score": 3}"#] {
            assert_eq!(score(value), None, "{value}");
        }

        let favourite =
            |value: &str| person(&format!(r#"{{"id": "x", "isFavorite": {value}}}"#)).is_favorite;
        assert_eq!(favourite("true"), Some(true));
        assert_eq!(favourite("false"), Some(false));
        for value in [r#""true""#, "1", "null", "[true]"] {
            assert_eq!(favourite(value), None, "{value}");
        }
    }

    #[test]
    fn a_person_type_needs_an_object_naming_a_class_or_subclass() {
        let person_type =
            |value: &str| person(&format!(r#"{{"id": "x", "personType": {value}}}"#)).person_type;
        for value in [
            r#""Person""#,
            r#"["Person"]"#,
            "{}",
            r#"{"class": " ", "subclass": 1}"#,
        ] {
            assert_eq!(person_type(value), None, "{value}");
        }
        assert_eq!(
            person_type(r#"{"subclass": "OrganizationUser", "other": {}}"#),
            Some(PersonType {
                class: None,
                subclass: Some("OrganizationUser".into())
            })
        );
    }

    #[test]
    fn postal_addresses_read_the_address_object_or_else_the_entry_itself() {
        let entry = r#"{"id": "x", "postalAddresses": [
            {"displayName": "HQ", "street": "not this one",
             "address": {"street": "1 Main St", "type": "business", "displayName": "nor this"}},
            {"street": "2 Side St", "address": null},
            {"city": "Oslo", "address": "somewhere"},
            {"type": "home"},
            {"address": {"type": "home"}, "city": "not read: there is an address"},
            {"address": {"city": "not read: overridden"}, "address": 1, "city": "Bergen"},
            {"displayName": "Only a name"}
        ]}"#;
        let address = |display_name: Option<&str>, street: Option<&str>, city: Option<&str>| {
            (
                display_name.map(str::to_owned),
                street.map(str::to_owned),
                city.map(str::to_owned),
            )
        };
        let addresses = person(entry).postal_addresses;
        assert_eq!(addresses[0].kind.as_deref(), Some("business"));
        let read: Vec<_> = addresses
            .into_iter()
            .map(|a| (a.display_name, a.street, a.city))
            .collect();
        assert_eq!(
            read,
            [
                address(Some("HQ"), Some("1 Main St"), None),
                address(None, Some("2 Side St"), None),
                address(None, None, Some("Oslo")),
                address(None, None, Some("Bergen")),
                address(Some("Only a name"), None, None),
            ]
        );
    }

    #[test]
    fn duplicate_keys_take_the_last_and_nesting_anywhere_is_skipped() {
        let person = person(
            r#"{"id": "a", "displayName": "First", "displayName": "Second",
                "phones": [{"number": "1"}], "phones": null,
                "somethingNew": {"deep": [[[{"x": null}]]]},
                "surname": {"a": {"b": [1, {"c": "d"}]}}, "givenName": [["Ann"]],
                "id": "b"}"#,
        );
        assert_eq!(person.id, "b");
        assert_eq!(person.display_name.as_deref(), Some("Second"));
        assert!(person.phones.is_empty());
        assert_eq!((person.surname, person.given_name), (None, None));
    }

    #[test]
    fn records_encode_as_their_sorted_json_values() {
        let fixture = include_str!("../tests/fixtures/full-person.json");
        let person = Person::from_graph(&serde_json::from_str(fixture).unwrap()).unwrap();
        assert!(!person.phones.is_empty() && !person.postal_addresses.is_empty());
        assert!(!person.websites.is_empty() && person.person_type.is_some());
        let record = Record::new(person.id.clone(), serde_json::to_value(&person).unwrap());
        assert_eq!(
            Person::encode_records(&[person]).unwrap(),
            EncodedRecords::encode(&[record]).unwrap()
        );
    }

    #[test]
    fn the_record_round_trips_through_its_json() {
        let person = Person::from_graph(&json!({"id": "AAMk+/=", "displayName": "Ann"})).unwrap();
        let json = serde_json::to_value(&person).unwrap();
        assert_eq!(serde_json::from_value::<Person>(json).unwrap(), person);
    }
}

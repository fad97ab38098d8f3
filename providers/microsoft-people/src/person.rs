//! The `Person` record: Graph's `person` resource, normalised.
//!
//! This is a public data contract: it is what the `people` sync stores and what the actions
//! return, so consumers read it without knowing Graph. Every key is always present (`null` or
//! `[]` when Graph said nothing), keys are snake_case, and Graph's quirks stay here: any
//! property but `id` may be missing, null or of an unexpected type, and all of those read as
//! "not known" rather than failing the page.

use plugboard_core::{EncodedRecords, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Normalises one entry of a Graph people list. `None` when the entry has no usable id
    /// (not a non-empty string): without one it can be neither stored nor deleted later, so the
    /// caller skips it. Nothing else makes an entry fail.
    pub fn from_graph(entry: &Value) -> Option<Person> {
        let fields = entry.as_object()?;
        let id = fields.get("id")?.as_str().filter(|id| !id.is_empty())?;
        Some(Person {
            id: id.to_owned(),
            display_name: text(fields, "displayName"),
            given_name: text(fields, "givenName"),
            surname: text(fields, "surname"),
            emails: list(fields, "scoredEmailAddresses", |e| {
                Some(Email {
                    address: text(e, "address")?,
                    relevance_score: e.get("relevanceScore").and_then(Value::as_f64),
                })
            }),
            phones: list(fields, "phones", |p| {
                Some(Phone {
                    kind: text(p, "type"),
                    number: text(p, "number")?,
                })
            }),
            job_title: text(fields, "jobTitle"),
            department: text(fields, "department"),
            company_name: text(fields, "companyName"),
            office_location: text(fields, "officeLocation"),
            profession: text(fields, "profession"),
            user_principal_name: text(fields, "userPrincipalName"),
            im_address: text(fields, "imAddress"),
            person_type: fields
                .get("personType")
                .and_then(Value::as_object)
                .map(|t| PersonType {
                    class: text(t, "class"),
                    subclass: text(t, "subclass"),
                })
                .filter(|t| t.class.is_some() || t.subclass.is_some()),
            is_favorite: fields.get("isFavorite").and_then(Value::as_bool),
            birthday: text(fields, "birthday"),
            notes: text(fields, "personNotes"),
            websites: list(fields, "websites", |w| {
                Some(Website {
                    kind: text(w, "type"),
                    address: text(w, "address")?,
                })
            }),
            postal_addresses: list(fields, "postalAddresses", postal_address),
            yomi_company: text(fields, "yomiCompany"),
        })
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

fn postal_address(location: &Map<String, Value>) -> Option<PostalAddress> {
    let address = location
        .get("address")
        .and_then(Value::as_object)
        .unwrap_or(location);
    let postal = PostalAddress {
        kind: text(address, "type"),
        display_name: text(location, "displayName"),
        street: text(address, "street"),
        city: text(address, "city"),
        state: text(address, "state"),
        postal_code: text(address, "postalCode"),
        country_or_region: text(address, "countryOrRegion"),
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

/// A string property; missing, null, blank or not a string all read as `None`, because Graph
/// sends empty strings where it has nothing to say.
fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    let value = fields.get(key)?.as_str()?;
    (!value.trim().is_empty()).then(|| value.to_owned())
}

/// A collection property; entries that are not objects or that `item` rejects are dropped.
fn list<T>(
    fields: &Map<String, Value>,
    key: &str,
    item: impl Fn(&Map<String, Value>) -> Option<T>,
) -> Vec<T> {
    let Some(entries) = fields.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(Value::as_object)
        .filter_map(item)
        .collect()
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

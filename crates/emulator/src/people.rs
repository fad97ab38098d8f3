//! The Person resource and each user's list of relevant people.
//!
//! People are stored typed (not as JSON maps) so that 100,000 of them stay small and serialise
//! quickly, with [`Prop`] keeping the difference between a missing property and a null one,
//! which Graph makes and clients must cope with.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A property that may be absent, present but null, or set.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Prop<T> {
    #[default]
    Missing,
    Null,
    Value(T),
}

impl<T> Prop<T> {
    pub fn is_missing(&self) -> bool {
        matches!(self, Prop::Missing)
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Prop::Value(value) => Some(value),
            Prop::Missing | Prop::Null => None,
        }
    }
}

impl<T> From<T> for Prop<T> {
    fn from(value: T) -> Self {
        Prop::Value(value)
    }
}

impl<T: Serialize> Serialize for Prop<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Prop::Value(value) => value.serialize(serializer),
            Prop::Missing | Prop::Null => serializer.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Prop<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Prop::Null, Prop::Value))
    }
}

/// A Graph `person`, with exactly the properties the reference lists.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Empty when a person is added through the control API without one; an id is then minted.
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub display_name: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub given_name: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub surname: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub birthday: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub person_notes: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub is_favorite: Prop<bool>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub job_title: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub company_name: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub yomi_company: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub department: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub office_location: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub profession: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub user_principal_name: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub im_address: Prop<String>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub scored_email_addresses: Prop<Vec<ScoredEmailAddress>>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub phones: Prop<Vec<Phone>>,
    /// Kept as raw JSON: the emulator never looks inside addresses or websites.
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub postal_addresses: Prop<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub websites: Prop<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Prop::is_missing")]
    pub person_type: Prop<PersonType>,
}

/// The property names `$select` accepts, in Graph's spelling.
pub const PERSON_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "birthday",
    "personNotes",
    "isFavorite",
    "jobTitle",
    "companyName",
    "yomiCompany",
    "department",
    "officeLocation",
    "profession",
    "userPrincipalName",
    "imAddress",
    "scoredEmailAddresses",
    "phones",
    "postalAddresses",
    "websites",
    "personType",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoredEmailAddress {
    pub address: String,
    pub relevance_score: f64,
    #[serde(default = "not_specified")]
    pub selection_likelihood: String,
}

fn not_specified() -> String {
    "notSpecified".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    #[serde(rename = "type")]
    pub kind: String,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonType {
    pub class: String,
    pub subclass: String,
}

impl Person {
    pub fn class(&self) -> Option<&str> {
        self.person_type.value().map(|t| t.class.as_str())
    }

    pub fn subclass(&self) -> Option<&str> {
        self.person_type.value().map(|t| t.subclass.as_str())
    }

    /// The strings `$search` looks at: names and email addresses.
    pub fn searchable(&self) -> impl Iterator<Item = &str> {
        let names = [&self.display_name, &self.given_name, &self.surname]
            .into_iter()
            .filter_map(|p| p.value().map(String::as_str));
        let emails = self
            .scored_email_addresses
            .value()
            .into_iter()
            .flatten()
            .map(|e| e.address.as_str());
        names.chain(emails)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("no person with id '{0}'")]
    NotFound(String),
    #[error("a person with id '{0}' already exists")]
    Duplicate(String),
    #[error("invalid person: {0}")]
    Invalid(String),
}

/// A user's relevant people, in relevance order, with an id index and a lazily built
/// display-name order so neither lookups nor `$orderby` pages cost a full scan or sort each.
#[derive(Default)]
pub struct PeopleList {
    items: Vec<Person>,
    index: HashMap<String, usize>,
    by_display_name: OnceLock<Vec<u32>>,
}

impl PeopleList {
    pub fn new(items: Vec<Person>) -> Self {
        let mut list = PeopleList {
            items,
            ..PeopleList::default()
        };
        list.reindex();
        list
    }

    pub fn all(&self) -> &[Person] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Positions into [`Self::all`] sorted by display name (people without one last).
    pub fn display_name_order(&self) -> &[u32] {
        self.by_display_name.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.items.len() as u32).collect();
            order.sort_by_cached_key(|&i| {
                let name = self.items[i as usize].display_name.value();
                (name.is_none(), name.map(|n| n.to_lowercase()))
            });
            order
        })
    }

    pub fn add(&mut self, mut person: Person) -> Result<&Person, PeopleError> {
        if person.id.is_empty() {
            person.id = crate::random::guid();
        }
        if self.index.contains_key(&person.id) {
            return Err(PeopleError::Duplicate(person.id));
        }
        self.index.insert(person.id.clone(), self.items.len());
        self.items.push(person);
        self.by_display_name = OnceLock::new();
        Ok(self.items.last().expect("just pushed"))
    }

    /// Applies a JSON merge patch (RFC 7396); `null` removes a property. The id cannot change.
    pub fn patch(&mut self, id: &str, patch: &Value) -> Result<&Person, PeopleError> {
        let position = *self
            .index
            .get(id)
            .ok_or_else(|| PeopleError::NotFound(id.to_owned()))?;
        let mut json = serde_json::to_value(&self.items[position]).expect("a person serialises");
        merge_patch(&mut json, patch);
        let patched: Person =
            serde_json::from_value(json).map_err(|e| PeopleError::Invalid(e.to_string()))?;
        if patched.id != id {
            return Err(PeopleError::Invalid(
                "the id of a person cannot change".into(),
            ));
        }
        self.items[position] = patched;
        self.by_display_name = OnceLock::new();
        Ok(&self.items[position])
    }

    pub fn remove(&mut self, id: &str) -> Result<Person, PeopleError> {
        let position = self
            .index
            .remove(id)
            .ok_or_else(|| PeopleError::NotFound(id.to_owned()))?;
        let removed = self.items.remove(position);
        self.reindex();
        Ok(removed)
    }

    fn reindex(&mut self) {
        self.index = self
            .items
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        self.by_display_name = OnceLock::new();
    }
}

fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (key, change) in changes {
        if change.is_null() {
            fields.remove(key);
        } else {
            merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_null_survive_a_round_trip() {
        let raw = json!({"id": "a", "displayName": "Ann", "jobTitle": null});
        let person: Person = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(person.job_title, Prop::Null);
        assert_eq!(person.department, Prop::Missing);
        assert_eq!(serde_json::to_value(&person).unwrap(), raw);
    }

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut list = PeopleList::default();
        list.add(
            serde_json::from_value(json!({"id": "a", "displayName": "Ann", "jobTitle": "CEO"}))
                .unwrap(),
        )
        .unwrap();
        let patched = list
            .patch("a", &json!({"jobTitle": null, "department": "Sales"}))
            .unwrap();
        assert_eq!(
            serde_json::to_value(patched).unwrap(),
            json!({"id": "a", "displayName": "Ann", "department": "Sales"})
        );
        assert!(list.patch("a", &json!({"id": "b"})).is_err());
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        let mut list = PeopleList::new(
            ["a", "b", "c"]
                .map(|id| Person {
                    id: id.into(),
                    ..Person::default()
                })
                .to_vec(),
        );
        list.remove("a").unwrap();
        assert_eq!(
            list.patch("c", &json!({"displayName": "C"})).unwrap().id,
            "c"
        );
        assert_eq!(list.len(), 2);
    }
}

//! OData query options of the people endpoints, and the page they select.
//!
//! A page costs O(top) without `$filter` or `$search`, as on Graph, where late pages of a long
//! list are no slower than early ones: it is a slice of the list in relevance (or cached
//! display-name) order. With them it costs O(skip + top), not O(people): candidates are walked
//! lazily. Only the page's people are serialised.

use axum::http::StatusCode;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use url::form_urlencoded;

use super::RequestUrl;
use super::error::GraphError;
use crate::people::{PERSON_PROPERTIES, PeopleList, Person};

const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 1000;

/// `$search` is only supported on `/me/people`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    Allowed,
    NotAllowed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Class,
    Subclass,
}

#[derive(Debug)]
pub struct PeopleQuery {
    top: usize,
    skip: usize,
    /// Canonical property names; `id` is always added when rendering.
    select: Option<Vec<&'static str>>,
    filter: Vec<(Field, String)>,
    order_by_display_name: bool,
    /// Lower-cased search term.
    search: Option<String>,
    /// The request's options other than `$top` and `$skip`, carried into next links.
    carried: Vec<(String, String)>,
}

impl PeopleQuery {
    /// Parses the raw query string. `$` may come percent-encoded (`%24top`).
    pub fn parse(raw: Option<&str>, search: Search) -> Result<PeopleQuery, GraphError> {
        let mut query = PeopleQuery {
            top: DEFAULT_TOP,
            skip: 0,
            select: None,
            filter: Vec::new(),
            order_by_display_name: false,
            search: None,
            carried: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let Some(option) = key.strip_prefix('$').map(str::to_ascii_lowercase) else {
                query.carried.push((key.into_owned(), value.into_owned()));
                continue;
            };
            if seen.contains(&option) {
                return Err(GraphError::bad_request(format!(
                    "Query option '${option}' was specified more than once, but it must be specified at most once."
                )));
            }
            match option.as_str() {
                "top" => query.top = count("$top", &value)?.min(MAX_TOP),
                "skip" => query.skip = count("$skip", &value)?,
                "select" => query.select = Some(select(&value)?),
                "filter" => query.filter = filter(&value)?,
                "orderby" => query.order_by_display_name = order_by(&value)?,
                "search" if search == Search::Allowed => query.search = Some(search_term(&value)),
                "search" => return Err(invalid_query("$search is only supported on /me/people.")),
                _ => {
                    return Err(GraphError::bad_request(format!(
                        "Query option '${option}' is not supported."
                    )));
                }
            }
            if !matches!(option.as_str(), "top" | "skip") {
                query.carried.push((key.into_owned(), value.into_owned()));
            }
            seen.push(option);
        }
        if query.search.is_some() && seen.iter().any(|o| o == "skip") {
            return Err(invalid_query(
                "The query parameter '$skip' is not supported with '$search'.",
            ));
        }
        Ok(query)
    }

    fn matches(&self, person: &Person) -> bool {
        let filtered = self.filter.iter().all(|(field, value)| {
            let actual = match field {
                Field::Class => person.class(),
                Field::Subclass => person.subclass(),
            };
            actual.is_some_and(|actual| actual.eq_ignore_ascii_case(value))
        });
        filtered
            && self.search.as_deref().is_none_or(|term| {
                person
                    .searchable()
                    .any(|text| text.to_lowercase().contains(term))
            })
    }

    /// The page's people, and whether more follow them.
    fn select<'p>(&self, people: &'p PeopleList) -> (Vec<&'p Person>, bool) {
        let all = people.all();
        let order = self
            .order_by_display_name
            .then(|| people.display_name_order());
        if self.filter.is_empty() && self.search.is_none() {
            let end = self.skip.saturating_add(self.top).min(all.len());
            let start = self.skip.min(end);
            let value = match order {
                Some(order) => order[start..end]
                    .iter()
                    .map(|&i| &all[i as usize])
                    .collect(),
                None => all[start..end].iter().collect(),
            };
            return (value, self.top > 0 && end < all.len());
        }
        let candidates: Box<dyn Iterator<Item = &Person>> = match order {
            Some(order) => Box::new(order.iter().map(|&i| &all[i as usize])),
            None => Box::new(all.iter()),
        };
        let mut matching = candidates
            .filter(|person| self.matches(person))
            .skip(self.skip);
        let value: Vec<&Person> = matching.by_ref().take(self.top).collect();
        // Search results come as one page: a next link would need `$skip`.
        let more = self.top > 0 && self.search.is_none() && matching.next().is_some();
        (value, more)
    }

    /// The page as Graph's JSON: `@odata.context`, `@odata.nextLink` unless last, `value`.
    pub fn render(&self, people: &PeopleList, url: &RequestUrl, user_id: &str) -> Vec<u8> {
        let (value, more) = self.select(people);
        let page = Page {
            context: format!(
                "{}/{}/$metadata#users('{user_id}')/people",
                url.base,
                url.version()
            ),
            next_link: more.then(|| format!("{}{}?{}", url.base, url.path, self.next_query())),
            value: Items {
                people: &value,
                select: self.select.as_deref(),
            },
        };
        serde_json::to_vec(&page).expect("people serialise")
    }

    fn next_query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.carried)
            .append_pair("$top", &self.top.to_string())
            .append_pair("$skip", &(self.skip + self.top).to_string())
            .finish()
    }
}

fn invalid_query(message: &str) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQuery", message)
}

fn count(option: &str, value: &str) -> Result<usize, GraphError> {
    value.trim().parse().map_err(|_| {
        GraphError::bad_request(format!(
            "Invalid value '{value}' for query option '{option}'."
        ))
    })
}

fn select(value: &str) -> Result<Vec<&'static str>, GraphError> {
    let mut selected = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let property = PERSON_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.person'."
                ))
            })?;
        if *property != "id" && !selected.contains(property) {
            selected.push(*property);
        }
    }
    Ok(selected)
}

fn order_by(value: &str) -> Result<bool, GraphError> {
    let mut words = value.split_whitespace();
    let field = words.next().unwrap_or_default();
    let direction = words.next().unwrap_or("asc");
    if field.eq_ignore_ascii_case("displayName")
        && direction.eq_ignore_ascii_case("asc")
        && words.next().is_none()
    {
        Ok(true)
    } else {
        Err(invalid_query(&format!(
            "Ordering by '{value}' is not supported; use 'displayName'."
        )))
    }
}

fn search_term(value: &str) -> String {
    let trimmed = value.trim();
    let unquoted = trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(trimmed);
    unquoted.to_lowercase()
}

/// `personType/class eq '…'` and `personType/subclass eq '…'`, joined by `and`.
fn filter(value: &str) -> Result<Vec<(Field, String)>, GraphError> {
    let invalid = || {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )
    };
    let tokens = tokenize(value).ok_or_else(invalid)?;
    tokens
        .split(|token| matches!(token, Token::Word(w) if w.eq_ignore_ascii_case("and")))
        .map(|clause| match clause {
            [Token::Word(field), Token::Word(op), Token::Literal(literal)]
                if op.eq_ignore_ascii_case("eq") =>
            {
                let field = if field.eq_ignore_ascii_case("personType/class") {
                    Field::Class
                } else if field.eq_ignore_ascii_case("personType/subclass") {
                    Field::Subclass
                } else {
                    return Err(invalid());
                };
                Ok((field, literal.clone()))
            }
            _ => Err(invalid()),
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Literal(String),
}

/// Splits a filter into words and `'quoted'` literals (`''` escapes a quote); `None` when a
/// literal is not closed.
fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut literal = String::new();
            loop {
                match chars.next()? {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        literal.push('\'');
                    }
                    '\'' => break,
                    other => literal.push(other),
                }
            }
            tokens.push(Token::Literal(literal));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace() && **c != '\'') {
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Some(tokens)
}

#[derive(Serialize)]
struct Page<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Items<'a>,
}

struct Items<'a> {
    people: &'a [&'a Person],
    select: Option<&'a [&'static str]>,
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.people.len()))?;
        for person in self.people {
            match self.select {
                None => seq.serialize_element(person)?,
                Some(fields) => seq.serialize_element(&Selected { person, fields })?,
            }
        }
        seq.end()
    }
}

/// A person reduced to `id` and the selected properties (null when the person lacks one).
struct Selected<'a> {
    person: &'a Person,
    fields: &'a [&'static str],
}

impl Serialize for Selected<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let full = serde_json::to_value(self.person).map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry("id", &self.person.id)?;
        for field in self.fields {
            map.serialize_entry(field, full.get(field).unwrap_or(&Value::Null))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::PersonType;

    #[test]
    fn filters_parse_into_clauses() {
        let clauses =
            filter("personType/class eq 'Person' and personType/subclass eq 'O''Brien Contacts'")
                .unwrap();
        assert_eq!(
            clauses,
            [
                (Field::Class, "Person".into()),
                (Field::Subclass, "O'Brien Contacts".into())
            ]
        );
        for bad in [
            "displayName eq 'x'",
            "personType/class ne 'Person'",
            "personType/class eq 'Person",
            "",
        ] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoded_dollars_are_options() {
        let query = PeopleQuery::parse(
            Some("%24top=5&%24select=displayName,ID&foo=bar"),
            Search::Allowed,
        )
        .unwrap();
        assert_eq!(query.top, 5);
        assert_eq!(query.select, Some(vec!["displayName"]));
        assert_eq!(
            query.next_query(),
            "%24select=displayName%2CID&foo=bar&%24top=5&%24skip=5"
        );
    }

    /// Every page, as ids, with `options` and `$top=7`.
    fn pages(people: &PeopleList, options: &str) -> Vec<(Vec<String>, bool)> {
        let mut pages = Vec::new();
        for skip in (0..=people.len() + 7).step_by(7) {
            let raw = format!("{options}$top=7&$skip={skip}");
            let query = PeopleQuery::parse(Some(&raw), Search::Allowed).unwrap();
            let (value, more) = query.select(people);
            pages.push((value.iter().map(|p| p.id.clone()).collect(), more));
        }
        pages
    }

    #[test]
    fn unfiltered_pages_are_slices_equal_to_the_filtered_walk() {
        let people = PeopleList::new(
            (0..30)
                .map(|i| Person {
                    id: format!("p{i:02}"),
                    display_name: format!("Name {}", (i * 7) % 30).into(),
                    person_type: PersonType {
                        class: "Person".into(),
                        subclass: "OrganizationUser".into(),
                    }
                    .into(),
                    ..Person::default()
                })
                .collect(),
        );
        // The filter matches everyone, so only the path through the list differs.
        let everyone = "$filter=personType/class eq 'Person'&";
        for order in ["", "$orderby=displayName&"] {
            let sliced = pages(&people, order);
            assert_eq!(sliced, pages(&people, &format!("{everyone}{order}")));
            let ids: Vec<String> = sliced.iter().flat_map(|(ids, _)| ids.clone()).collect();
            assert_eq!(ids.len(), 30, "every person once");
            let more: Vec<bool> = sliced.iter().map(|(_, more)| *more).collect();
            assert_eq!(more, [true, true, true, true, false, false]);
        }
    }

    #[test]
    fn invalid_options_are_rejected() {
        for raw in [
            "$top=-1",
            "$top=ten",
            "$skip=1&$search=ann",
            "$count=true",
            "$top=1&$top=2",
            "$orderby=surname",
        ] {
            assert!(
                PeopleQuery::parse(Some(raw), Search::Allowed).is_err(),
                "{raw}"
            );
        }
        assert!(PeopleQuery::parse(Some("$search=ann"), Search::NotAllowed).is_err());
        assert_eq!(
            PeopleQuery::parse(Some("$top=5000"), Search::Allowed)
                .unwrap()
                .top,
            MAX_TOP
        );
    }
}

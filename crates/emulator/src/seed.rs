//! Deterministic seed data: the same seed always yields the same people.
//!
//! The mix follows what a real mailbox returns: mostly organisation users with GUID ids, some
//! personal contacts with Exchange-style non-GUID ids, a few Microsoft 365 groups, and
//! properties that are sometimes missing, null or empty so clients meet every shape early.
//! Generation is linear and allocation-light: 100,000 people take a fraction of a second.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};

use crate::people::{Person, PersonType, Phone, Prop, ScoredEmailAddress};

/// (display spelling, email spelling)
const GIVEN_NAMES: &[(&str, &str)] = &[
    ("Adele", "adele"),
    ("Alex", "alex"),
    ("Allan", "allan"),
    ("Amara", "amara"),
    ("Aiko", "aiko"),
    ("Bianca", "bianca"),
    ("Björn", "bjorn"),
    ("Carlos", "carlos"),
    ("Chen", "chen"),
    ("Chloé", "chloe"),
    ("Dariusz", "dariusz"),
    ("Diego", "diego"),
    ("Elif", "elif"),
    ("Emily", "emily"),
    ("Fatima", "fatima"),
    ("François", "francois"),
    ("Grady", "grady"),
    ("Hannah", "hannah"),
    ("Henrietta", "henrietta"),
    ("Ibrahim", "ibrahim"),
    ("Isaiah", "isaiah"),
    ("Jana", "jana"),
    ("Joni", "joni"),
    ("José", "jose"),
    ("Kwame", "kwame"),
    ("Lee", "lee"),
    ("Lidia", "lidia"),
    ("Lynne", "lynne"),
    ("Mai", "mai"),
    ("Megan", "megan"),
    ("Miriam", "miriam"),
    ("Nestor", "nestor"),
    ("Noor", "noor"),
    ("Olumide", "olumide"),
    ("Patti", "patti"),
    ("Pradeep", "pradeep"),
    ("Priya", "priya"),
    ("Quentin", "quentin"),
    ("Raúl", "raul"),
    ("Sakura", "sakura"),
    ("Sanjay", "sanjay"),
    ("Siobhán", "siobhan"),
    ("Søren", "soren"),
    ("Tariq", "tariq"),
    ("Thandiwe", "thandiwe"),
    ("Ulrike", "ulrike"),
    ("Valentina", "valentina"),
    ("Wei", "wei"),
    ("Xavier", "xavier"),
    ("Yara", "yara"),
    ("Yusuf", "yusuf"),
    ("Zoë", "zoe"),
];

const SURNAMES: &[(&str, &str)] = &[
    ("Vance", "vance"),
    ("Wilber", "wilber"),
    ("Deyoung", "deyoung"),
    ("Okafor", "okafor"),
    ("Tanaka", "tanaka"),
    ("Rossi", "rossi"),
    ("Lindqvist", "lindqvist"),
    ("García", "garcia"),
    ("Wang", "wang"),
    ("Dubois", "dubois"),
    ("Kowalski", "kowalski"),
    ("Hernández", "hernandez"),
    ("Yılmaz", "yilmaz"),
    ("Braun", "braun"),
    ("Haddad", "haddad"),
    ("Lefèvre", "lefevre"),
    ("Archie", "archie"),
    ("Fischer", "fischer"),
    ("Mensah", "mensah"),
    ("Said", "said"),
    ("Thomas", "thomas"),
    ("Novák", "novak"),
    ("Mitchell", "mitchell"),
    ("Pereira", "pereira"),
    ("Asante", "asante"),
    ("Gu", "gu"),
    ("Holt", "holt"),
    ("Robinson", "robinson"),
    ("Nguyễn", "nguyen"),
    ("Bowen", "bowen"),
    ("Cohen", "cohen"),
    ("Zimmerman", "zimmerman"),
    ("Rahman", "rahman"),
    ("Adeyemi", "adeyemi"),
    ("Fernandez", "fernandez"),
    ("Iyer", "iyer"),
    ("Sharma", "sharma"),
    ("O'Brien", "obrien"),
    ("Castillo", "castillo"),
    ("Sato", "sato"),
    ("Patel", "patel"),
    ("Ní Bhriain", "nibhriain"),
    ("Mølgaard", "molgaard"),
    ("Aziz", "aziz"),
    ("Dlamini", "dlamini"),
    ("Schäfer", "schafer"),
    ("Moretti", "moretti"),
    ("Li", "li"),
    ("van der Berg", "vanderberg"),
    ("Khoury", "khoury"),
    ("Demir", "demir"),
    ("Müller", "muller"),
];

const JOB_TITLES: &[&str] = &[
    "Marketing Assistant",
    "Product Manager",
    "Software Engineer",
    "Senior Software Engineer",
    "Sales Representative",
    "Account Executive",
    "HR Manager",
    "Financial Analyst",
    "Director of Operations",
    "Designer",
    "Support Engineer",
    "Legal Counsel",
    "CEO",
    "Data Scientist",
    "Office Manager",
    "Recruiter",
    "VP of Sales",
    "Researcher",
];

const DEPARTMENTS: &[&str] = &[
    "Marketing",
    "Engineering",
    "Sales",
    "Human Resources",
    "Finance",
    "Operations",
    "Design",
    "Support",
    "Legal",
    "Executive Management",
    "Research & Development",
    "IT",
];

const COMPANIES: &[&str] = &[
    "Fabrikam, Inc.",
    "Northwind Traders",
    "Adventure Works",
    "Tailspin Toys",
    "Litware",
    "Woodgrove Bank",
    "Alpine Ski House",
    "Wide World Importers",
    "Proseware",
    "Trey Research",
];

const CONTACT_DOMAINS: &[&str] = &[
    "fabrikam.com",
    "northwindtraders.com",
    "adventure-works.com",
    "outlook.com",
    "gmail.com",
    "tailspintoys.com",
    "litware.com",
    "woodgrovebank.com",
];

const GROUPS: &[(&str, &str)] = &[
    ("Marketing Team", "marketing"),
    ("Sales and Marketing", "salesandmarketing"),
    ("Retail", "retail"),
    ("Digital Initiative Public Relations", "digitalinitiative"),
    ("Mark 8 Project Team", "mark8project"),
    ("U.S. Sales", "ussales"),
    ("Leadership", "leadership"),
    ("Engineering All Hands", "engineering"),
];

const PHONE_TYPES: &[&str] = &["business", "mobile", "home", "businessFax", "other"];

/// Generates `count` people relevant to a user of the tenant with domain `tenant_domain`.
pub fn people(count: usize, seed: u64, tenant_domain: &str) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|rank| {
            let relevance = relevance_score(rank, count);
            match rng.gen_range(0..100) {
                0..85 => organisation_user(&mut rng, tenant_domain, relevance),
                85..96 => personal_contact(&mut rng, relevance),
                _ => unified_group(&mut rng, tenant_domain, relevance),
            }
        })
        .collect()
}

/// Scores fall from 30 to 1 down the relevance order.
fn relevance_score(rank: usize, count: usize) -> f64 {
    let score = 30.0 - 29.0 * rank as f64 / count.max(1) as f64;
    (score * 10.0).round() / 10.0
}

fn organisation_user(rng: &mut StdRng, domain: &str, relevance: f64) -> Person {
    let (given, given_mail) = *GIVEN_NAMES.choose(rng).expect("non-empty");
    let (surname, surname_mail) = *SURNAMES.choose(rng).expect("non-empty");
    let email = format!("{given_mail}.{surname_mail}@{domain}");
    Person {
        id: guid(rng),
        display_name: format!("{given} {surname}").into(),
        given_name: given.to_owned().into(),
        surname: surname.to_owned().into(),
        birthday: Prop::Null,
        person_notes: Prop::Null,
        is_favorite: false.into(),
        job_title: sometimes(rng, JOB_TITLES),
        company_name: Prop::Null,
        yomi_company: Prop::Null,
        department: sometimes(rng, DEPARTMENTS),
        office_location: if rng.gen_bool(0.8) {
            format!("{}/{}", rng.gen_range(1..40), rng.gen_range(1000..3000)).into()
        } else {
            Prop::Null
        },
        profession: Prop::Null,
        user_principal_name: email.clone().into(),
        im_address: if rng.gen_bool(0.8) {
            format!("sip:{email}").into()
        } else {
            Prop::Null
        },
        scored_email_addresses: vec![scored(email, relevance)].into(),
        phones: phones(rng, "business").into(),
        postal_addresses: Vec::new().into(),
        websites: Vec::new().into(),
        person_type: person_type("Person", "OrganizationUser"),
    }
}

fn personal_contact(rng: &mut StdRng, relevance: f64) -> Person {
    let (given, given_mail) = *GIVEN_NAMES.choose(rng).expect("non-empty");
    let (surname, surname_mail) = *SURNAMES.choose(rng).expect("non-empty");
    let domain = CONTACT_DOMAINS.choose(rng).expect("non-empty");
    let emails = match rng.gen_range(0..10) {
        0 => Vec::new(),
        1 => vec![
            scored(format!("{given_mail}.{surname_mail}@{domain}"), relevance),
            scored(
                format!("{given_mail}{}@outlook.com", rng.gen_range(1..99)),
                relevance / 2.0,
            ),
        ],
        _ => vec![scored(
            format!("{given_mail}.{surname_mail}@{domain}"),
            relevance,
        )],
    };
    Person {
        id: contact_id(rng),
        display_name: format!("{given} {surname}").into(),
        given_name: given.to_owned().into(),
        surname: if rng.gen_bool(0.9) {
            surname.to_owned().into()
        } else {
            Prop::Null
        },
        birthday: if rng.gen_bool(0.2) {
            format!(
                "19{}-{:02}-{:02}",
                rng.gen_range(50..99),
                rng.gen_range(1..13),
                rng.gen_range(1..29)
            )
            .into()
        } else {
            Prop::Missing
        },
        is_favorite: rng.gen_bool(0.1).into(),
        company_name: sometimes(rng, COMPANIES),
        job_title: if rng.gen_bool(0.3) {
            sometimes(rng, JOB_TITLES)
        } else {
            Prop::Missing
        },
        scored_email_addresses: emails.into(),
        phones: phones(rng, "mobile").into(),
        postal_addresses: Vec::new().into(),
        person_type: person_type("Person", "PersonalContact"),
        ..Person::default()
    }
}

fn unified_group(rng: &mut StdRng, domain: &str, relevance: f64) -> Person {
    let (name, mail) = *GROUPS.choose(rng).expect("non-empty");
    Person {
        id: guid(rng),
        display_name: name.to_owned().into(),
        given_name: Prop::Null,
        surname: Prop::Null,
        is_favorite: false.into(),
        scored_email_addresses: vec![scored(format!("{mail}@{domain}"), relevance)].into(),
        phones: Vec::new().into(),
        postal_addresses: Vec::new().into(),
        websites: Vec::new().into(),
        person_type: person_type("Group", "UnifiedGroup"),
        ..Person::default()
    }
}

/// A value most of the time, null one time in ten.
fn sometimes(rng: &mut StdRng, pool: &[&str]) -> Prop<String> {
    if rng.gen_bool(0.9) {
        (*pool.choose(rng).expect("non-empty")).to_owned().into()
    } else {
        Prop::Null
    }
}

fn phones(rng: &mut StdRng, usual_type: &str) -> Vec<Phone> {
    let count = rng.gen_range(0..=3);
    (0..count)
        .map(|i| Phone {
            kind: if i == 0 {
                usual_type.to_owned()
            } else {
                (*PHONE_TYPES.choose(rng).expect("non-empty")).to_owned()
            },
            number: format!(
                "+1 {} 555 {:04}",
                rng.gen_range(200..990),
                rng.gen_range(100..10_000)
            ),
        })
        .collect()
}

fn scored(address: String, relevance_score: f64) -> ScoredEmailAddress {
    ScoredEmailAddress {
        address,
        relevance_score,
        selection_likelihood: "notSpecified".into(),
    }
}

fn person_type(class: &str, subclass: &str) -> Prop<PersonType> {
    PersonType {
        class: class.to_owned(),
        subclass: subclass.to_owned(),
    }
    .into()
}

fn guid(rng: &mut StdRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Exchange item ids: standard base64, so they may hold `+`, `/` and `=`.
fn contact_id(rng: &mut StdRng) -> String {
    let mut bytes = [0u8; 46];
    bytes[..6].copy_from_slice(b"\x00\x03\x2e\x00\x00\x00");
    rng.fill_bytes(&mut bytes[6..]);
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn same_seed_same_people() {
        assert_eq!(people(50, 7, "contoso.com"), people(50, 7, "contoso.com"));
        assert_ne!(people(50, 7, "contoso.com"), people(50, 8, "contoso.com"));
    }

    #[test]
    fn ids_are_unique_and_all_kinds_appear() {
        let generated = people(5_000, 1, "contoso.com");
        let ids: HashSet<_> = generated.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), generated.len());
        for subclass in ["OrganizationUser", "PersonalContact", "UnifiedGroup"] {
            assert!(
                generated.iter().any(|p| p.subclass() == Some(subclass)),
                "{subclass}"
            );
        }
        assert!(
            generated
                .iter()
                .any(|p| uuid::Uuid::parse_str(&p.id).is_err())
        );
    }
}

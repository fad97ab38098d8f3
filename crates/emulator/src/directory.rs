//! The directory: tenants, app registrations and users, as Entra ID keeps them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use crate::certificates::RegisteredCertificate;
use crate::control::types::{
    AppInfo, Audience, ConsentMode, CreateApp, CreateTenant, CreateUser, NextOutcome, SecretInfo,
    TenantInfo, UserInfo,
};
use crate::people::PeopleList;
use crate::{random, scopes};

/// Client secrets live two years unless the app is created with another lifetime.
const DEFAULT_SECRET_LIFETIME: TimeDelta = TimeDelta::days(730);

/// Display names for users created without one, in the style of Microsoft's demo tenants.
const USER_NAMES: &[&str] = &[
    "Megan Bowen",
    "Alex Wilber",
    "Adele Vance",
    "Lee Gu",
    "Patti Fernandez",
    "Nestor Wilke",
    "Lidia Holloway",
    "Grady Archie",
    "Isaiah Langer",
    "Joni Sherman",
];

pub struct Tenant {
    pub id: String,
    pub domains: Vec<String>,
    pub display_name: String,
}

impl Tenant {
    pub fn primary_domain(&self) -> &str {
        &self.domains[0]
    }

    pub fn info(&self) -> TenantInfo {
        TenantInfo {
            id: self.id.clone(),
            domains: self.domains.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

pub struct App {
    pub client_id: String,
    pub name: String,
    pub home_tenant_id: String,
    /// Client secrets, oldest first: Entra lets an app hold several at once, so a new one can
    /// be rolled out before the old one expires. Any unexpired one authenticates the client.
    pub secrets: Vec<ClientSecret>,
    pub redirect_uris: Vec<String>,
    pub audience: Audience,
    pub consent_mode: ConsentMode,
    /// Admin-consented Graph scopes by tenant id.
    pub admin_consents: HashMap<String, Vec<&'static str>>,
    /// Forced on the next authorize or admin consent, then cleared.
    pub next_outcome: Option<NextOutcome>,
    /// Certificates whose keys may sign client assertions.
    pub certificates: Vec<RegisteredCertificate>,
    /// The `jti` of every client assertion accepted and not yet expired, with its expiry: a
    /// second use is refused.
    pub used_assertions: HashMap<String, DateTime<Utc>>,
}

impl App {
    pub fn admin_consented(&self, tenant_id: &str) -> &[&'static str] {
        self.admin_consents
            .get(tenant_id)
            .map_or(&[], Vec::as_slice)
    }

    pub fn grant_admin_consent(&mut self, tenant_id: &str, granted: &[&'static str]) {
        let consented = self.admin_consents.entry(tenant_id.to_owned()).or_default();
        for scope in granted {
            if !consented.contains(scope) {
                consented.push(scope);
            }
        }
    }

    /// The secret the original control calls (`POST /apps/{id}/secret`) act on and `AppInfo`
    /// shows: the oldest one, created with the app unless it was removed since.
    pub fn first_secret_mut(&mut self, now: DateTime<Utc>) -> &mut ClientSecret {
        if self.secrets.is_empty() {
            self.secrets
                .push(ClientSecret::new(now + DEFAULT_SECRET_LIFETIME));
        }
        &mut self.secrets[0]
    }

    /// Adds a secret valid for `lifetime` (two years when `None`), as Entra's `addPassword`.
    pub fn add_secret(&mut self, lifetime: Option<TimeDelta>, now: DateTime<Utc>) -> &ClientSecret {
        let secret = ClientSecret::new(now + lifetime.unwrap_or(DEFAULT_SECRET_LIFETIME));
        self.secrets.push(secret);
        self.secrets.last().expect("just pushed")
    }

    pub fn secret_mut(&mut self, id: &str) -> Option<&mut ClientSecret> {
        self.secrets
            .iter_mut()
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// Removes a secret, as Entra's `removePassword`: it stops working at once.
    pub fn remove_secret(&mut self, id: &str) -> Option<ClientSecret> {
        let position = self
            .secrets
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(id))?;
        Some(self.secrets.remove(position))
    }

    /// The key id tokens are signed with (an HMAC of the emulator's own making): the first
    /// secret's value, or nothing once every secret was removed.
    pub fn signing_secret(&self) -> &str {
        self.secrets.first().map_or("", |s| s.value.as_str())
    }

    pub fn info(&self) -> AppInfo {
        let first = self.secrets.first();
        AppInfo {
            client_id: self.client_id.clone(),
            name: self.name.clone(),
            home_tenant_id: self.home_tenant_id.clone(),
            client_secret: first.map(|s| s.value.clone()).unwrap_or_default(),
            secret_expires_at: first.map_or(DateTime::<Utc>::MIN_UTC, |s| s.expires_at),
            secrets: self.secrets.iter().map(ClientSecret::info).collect(),
            redirect_uris: self.redirect_uris.clone(),
            audience: self.audience,
            consent_mode: self.consent_mode,
            admin_consents: self
                .admin_consents
                .iter()
                .map(|(tenant, scopes)| {
                    (
                        tenant.clone(),
                        scopes.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// One of an app's client secrets (Entra's `passwordCredential`).
#[derive(Clone)]
pub struct ClientSecret {
    /// The `keyId`, a GUID that names the secret without revealing it.
    pub id: String,
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

impl ClientSecret {
    fn new(expires_at: DateTime<Utc>) -> Self {
        ClientSecret {
            id: random::guid(),
            value: client_secret(),
            expires_at,
        }
    }

    /// A new value for the same secret (the old value stops working).
    pub fn rotate(&mut self) {
        self.value = client_secret();
    }

    /// The secret as Entra lists it: its id, the value's first three characters and expiry.
    pub fn info(&self) -> SecretInfo {
        SecretInfo {
            id: self.id.clone(),
            hint: self.value.chars().take(3).collect(),
            expires_at: self.expires_at,
        }
    }
}

pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: String,
    pub tenant_id: String,
    pub people: PeopleList,
    /// Refresh tokens answer AADSTS65001 until the user signs in (and consents) again.
    pub consent_revoked: bool,
    /// Refresh tokens answer AADSTS50076 until the user signs in (and does MFA) again.
    pub mfa_required: bool,
}

impl User {
    pub fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id.clone(),
            user_principal_name: self.user_principal_name.clone(),
            display_name: self.display_name.clone(),
            mail: self.mail.clone(),
            tenant_id: self.tenant_id.clone(),
            people: self.people.len(),
            consent_revoked: self.consent_revoked,
            mfa_required: self.mfa_required,
        }
    }

    pub fn given_name(&self) -> &str {
        self.display_name
            .split_once(' ')
            .map_or(&self.display_name, |(given, _)| given)
    }

    pub fn surname(&self) -> Option<&str> {
        self.display_name
            .split_once(' ')
            .map(|(_, surname)| surname)
    }
}

/// The `{tenant}` segment of a login URL, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Authority {
    Common,
    Organizations,
    Consumers,
    Tenant(String),
}

impl Authority {
    /// Whether a user of `tenant_id` may sign in through this authority.
    pub fn admits(&self, tenant_id: &str) -> bool {
        match self {
            Authority::Tenant(id) => id == tenant_id,
            Authority::Common | Authority::Organizations | Authority::Consumers => true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Default)]
pub struct Directory {
    tenants: Vec<Tenant>,
    apps: HashMap<String, App>,
    users: Vec<User>,
    /// Position in `users` by id and by lower-cased user principal name.
    user_index: HashMap<String, usize>,
}

impl Directory {
    pub fn authority(&self, segment: &str) -> Option<Authority> {
        match segment.to_ascii_lowercase().as_str() {
            "common" => Some(Authority::Common),
            "organizations" => Some(Authority::Organizations),
            "consumers" => Some(Authority::Consumers),
            _ => self
                .tenant(segment)
                .map(|t| Authority::Tenant(t.id.clone())),
        }
    }

    /// A tenant by GUID or verified domain.
    pub fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(id_or_domain)
                || t.domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(id_or_domain))
        })
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    pub fn create_tenant(&mut self, request: CreateTenant) -> Result<&Tenant, DirectoryError> {
        let id = match request.id {
            Some(id) => uuid::Uuid::parse_str(&id)
                .map_err(|_| DirectoryError::Invalid(format!("tenant id '{id}' is not a GUID")))?
                .to_string(),
            None => random::guid(),
        };
        let number = self.tenants.len() + 1;
        let domain = request.domain.unwrap_or_else(|| match number {
            1 => "contoso.onmicrosoft.com".to_owned(),
            _ => format!("contoso{number}.onmicrosoft.com"),
        });
        if self.tenant(&id).is_some() || self.tenant(&domain).is_some() {
            return Err(DirectoryError::Conflict(format!(
                "tenant '{id}' or domain '{domain}'"
            )));
        }
        let display_name = request
            .display_name
            .unwrap_or_else(|| domain.split('.').next().unwrap_or(&domain).to_owned());
        self.tenants.push(Tenant {
            id,
            domains: vec![domain],
            display_name,
        });
        Ok(self.tenants.last().expect("just pushed"))
    }

    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.get(&client_id.to_ascii_lowercase())
    }

    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps.get_mut(&client_id.to_ascii_lowercase())
    }

    pub fn create_app(
        &mut self,
        request: CreateApp,
        now: DateTime<Utc>,
    ) -> Result<&App, DirectoryError> {
        let home_tenant_id = self
            .tenant(&request.home_tenant)
            .ok_or_else(|| DirectoryError::NotFound(format!("tenant '{}'", request.home_tenant)))?
            .id
            .clone();
        let admin_scopes = request
            .admin_consented_scopes
            .iter()
            .map(|s| {
                scopes::graph_scope(s)
                    .ok_or_else(|| DirectoryError::Invalid(format!("unknown scope '{s}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = request
            .redirect_uris
            .iter()
            .find(|uri| url::Url::parse(uri).is_err())
        {
            return Err(DirectoryError::Invalid(format!(
                "redirect URI '{bad}' is not an absolute URL"
            )));
        }
        let client_id = random::guid();
        let lifetime = request
            .secret_expires_in_secs
            .map_or(DEFAULT_SECRET_LIFETIME, TimeDelta::seconds);
        let app = App {
            client_id: client_id.clone(),
            name: request
                .name
                .unwrap_or_else(|| format!("Plugboard app {}", self.apps.len() + 1)),
            admin_consents: HashMap::from([(home_tenant_id.clone(), admin_scopes)]),
            home_tenant_id,
            secrets: vec![ClientSecret::new(now + lifetime)],
            redirect_uris: request.redirect_uris,
            audience: request.audience,
            consent_mode: request.consent_mode,
            next_outcome: None,
            certificates: Vec::new(),
            used_assertions: HashMap::new(),
        };
        Ok(self.apps.entry(client_id).or_insert(app))
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// A user by id or user principal name (case-insensitive).
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.user_index
            .get(&id_or_upn.to_lowercase())
            .map(|&i| &self.users[i])
    }

    pub fn user_mut(&mut self, id_or_upn: &str) -> Option<&mut User> {
        self.user_index
            .get(&id_or_upn.to_lowercase())
            .map(|&i| &mut self.users[i])
    }

    pub fn create_user(&mut self, request: CreateUser) -> Result<&User, DirectoryError> {
        let tenant = self
            .tenant(&request.tenant)
            .ok_or_else(|| DirectoryError::NotFound(format!("tenant '{}'", request.tenant)))?;
        let in_tenant = self
            .users
            .iter()
            .filter(|u| u.tenant_id == tenant.id)
            .count();
        let display_name =
            request
                .display_name
                .unwrap_or_else(|| match USER_NAMES.get(in_tenant) {
                    Some(name) => (*name).to_owned(),
                    None => format!("User {}", in_tenant + 1),
                });
        let upn = request.user_principal_name.unwrap_or_else(|| {
            let (given, surname) = display_name.split_once(' ').unwrap_or((&display_name, ""));
            let initial = surname.chars().next().map(String::from).unwrap_or_default();
            format!("{given}{initial}@{}", tenant.primary_domain()).replace(' ', "")
        });
        if self.user(&upn).is_some() {
            return Err(DirectoryError::Conflict(format!("user '{upn}'")));
        }
        let user = User {
            id: random::guid(),
            mail: request.mail.unwrap_or_else(|| upn.clone()),
            user_principal_name: upn,
            display_name,
            tenant_id: tenant.id.clone(),
            people: PeopleList::default(),
            consent_revoked: false,
            mfa_required: false,
        };
        let position = self.users.len();
        self.user_index.insert(user.id.clone(), position);
        self.user_index
            .insert(user.user_principal_name.to_lowercase(), position);
        self.users.push(user);
        Ok(&self.users[position])
    }
}

/// Secret values look like Entra's: 40 characters with a `~` in them.
fn client_secret() -> String {
    let raw = random::opaque(30);
    format!("{}~{}", &raw[..3], &raw[4..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_resolve_by_id_domain_and_keyword() {
        let mut directory = Directory::default();
        let tenant = directory.create_tenant(CreateTenant::default()).unwrap();
        let (id, domain) = (tenant.id.clone(), tenant.primary_domain().to_owned());
        assert_eq!(
            directory.authority(&domain),
            Some(Authority::Tenant(id.clone()))
        );
        assert_eq!(
            directory.authority(&id.to_uppercase()),
            Some(Authority::Tenant(id))
        );
        assert_eq!(
            directory.authority("Organizations"),
            Some(Authority::Organizations)
        );
        assert_eq!(directory.authority("fabrikam.com"), None);
    }

    #[test]
    fn users_are_found_by_id_or_upn() {
        let mut directory = Directory::default();
        directory.create_tenant(CreateTenant::default()).unwrap();
        let user = directory
            .create_user(CreateUser {
                tenant: "contoso.onmicrosoft.com".into(),
                ..CreateUser::default()
            })
            .unwrap();
        assert_eq!(user.user_principal_name, "MeganB@contoso.onmicrosoft.com");
        let id = user.id.clone();
        assert_eq!(
            directory.user("meganb@CONTOSO.onmicrosoft.com").unwrap().id,
            id
        );
    }
}

//! Scope parsing: full Graph URIs or short names, OIDC scopes, and which scopes need an admin.

/// The Graph resource's application id, the `aud` of every access token.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const GRAPH_URI_PREFIXES: &[&str] = &[
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000/",
];
const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];
const GRAPH: &[&str] = &[
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "People.Read",
    "People.Read.All",
    "Contacts.Read",
    "Calendars.Read",
    "Mail.Read",
];
/// Scopes a user cannot consent to: only an admin consent grants them for a tenant.
const ADMIN_ONLY: &[&str] = &["People.Read.All", "User.Read.All"];
/// What `https://graph.microsoft.com/.default` stands for at sign-in (besides what an admin
/// consented to): the app's static permissions, for the emulator the People provider's scopes.
pub const SIGN_IN_DEFAULT: &[&str] = &["User.Read", "People.Read"];
/// What `.default` stands for in an admin consent request.
pub const ADMIN_CONSENT_DEFAULT: &[&str] = &["User.Read", "People.Read", "People.Read.All"];

/// A parsed `scope` parameter. Names are canonical spellings, so sets compare exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scopes {
    /// Graph scopes by short name, in request order, without duplicates.
    pub graph: Vec<&'static str>,
    pub oidc: Vec<&'static str>,
    /// `.default` was asked for: "everything the app has been granted".
    pub default: bool,
}

impl Scopes {
    /// Parses a space-separated `scope`; the error is the first scope that does not exist.
    pub fn parse(raw: &str) -> Result<Scopes, String> {
        let mut scopes = Scopes::default();
        for item in raw.split(' ').filter(|s| !s.is_empty()) {
            if let Some(name) = find(OIDC, item) {
                push_unique(&mut scopes.oidc, name);
                continue;
            }
            let short = GRAPH_URI_PREFIXES
                .iter()
                .find_map(|prefix| strip_prefix_ignore_case(item, prefix))
                .unwrap_or(item);
            if short == ".default" {
                scopes.default = true;
            } else if let Some(name) = find(GRAPH, short) {
                push_unique(&mut scopes.graph, name);
            } else {
                return Err(item.to_owned());
            }
        }
        Ok(scopes)
    }

    pub fn has(&self, name: &str) -> bool {
        self.graph.contains(&name) || self.oidc.contains(&name)
    }

    /// Replaces `.default` by the scopes it stands for.
    pub fn expand_default<'a>(
        mut self,
        implied: impl IntoIterator<Item = &'a &'static str>,
    ) -> Scopes {
        if std::mem::take(&mut self.default) {
            for name in implied {
                push_unique(&mut self.graph, name);
            }
        }
        self
    }

    /// The token response's `scope`: Graph short names, then the OIDC scopes Microsoft echoes
    /// (`offline_access` never appears).
    pub fn response_value(&self) -> String {
        let oidc = ["openid", "profile", "email"]
            .into_iter()
            .filter(|s| self.oidc.contains(s));
        self.graph
            .iter()
            .copied()
            .chain(oidc)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The canonical spelling of a Graph scope, if it is one the emulator knows.
pub fn graph_scope(name: &str) -> Option<&'static str> {
    find(GRAPH, name)
}

pub fn is_admin_only(name: &str) -> bool {
    ADMIN_ONLY.contains(&name)
}

fn find(known: &[&'static str], name: &str) -> Option<&'static str> {
    known.iter().copied().find(|k| k.eq_ignore_ascii_case(name))
}

fn push_unique(list: &mut Vec<&'static str>, name: &'static str) {
    if !list.contains(&name) {
        list.push(name);
    }
}

fn strip_prefix_ignore_case<'a>(item: &'a str, prefix: &str) -> Option<&'a str> {
    let head = item.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &item[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uris_and_short_names_are_the_same_scope() {
        let scopes = Scopes::parse(
            "https://graph.microsoft.com/People.Read user.read offline_access openid",
        )
        .unwrap();
        assert_eq!(scopes.graph, ["People.Read", "User.Read"]);
        assert_eq!(scopes.response_value(), "People.Read User.Read openid");
    }

    #[test]
    fn unknown_scopes_are_named() {
        assert_eq!(
            Scopes::parse("User.Read Files.Write.Everything"),
            Err("Files.Write.Everything".into())
        );
    }
}

//! Semantic checks on a parsed spec. Each problem names the key it is about.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{AuthSpec, PaginationSpec, ProviderSpec, ScopeSpec, template_placeholders};

/// Syncs more frequent than this would hammer providers for little gain.
const MIN_SYNC_FREQUENCY: Duration = Duration::from_secs(30);

impl ProviderSpec {
    /// Every semantic problem in the spec; empty when it is valid.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut p = Problems::default();
        if self.id.is_empty() {
            p.add("id", "required");
        } else if !is_kebab_case(&self.id) {
            p.add(
                "id",
                format!("`{}` must be kebab-case, e.g. `microsoft-people`", self.id),
            );
        }
        if self.display_name.trim().is_empty() {
            p.add("display_name", "required");
        }
        if !self.docs_url.is_empty() {
            p.https_url("docs_url", &self.docs_url);
        }
        self.check_auth(&mut p);
        self.check_api(&mut p);
        self.check_account(&mut p);
        self.check_models_syncs_actions(&mut p);
        p.0
    }

    fn check_auth(&self, p: &mut Problems) {
        let mut templates = Vec::new();
        match &self.auth {
            AuthSpec::Oauth2(oauth) => {
                templates.push(("auth.authorization_url", &oauth.authorization_url));
                templates.push(("auth.token_url", &oauth.token_url));
                if let Some(url) = &oauth.admin_consent_url {
                    templates.push(("auth.admin_consent_url", url));
                }
                if oauth.scope_separator.is_empty() {
                    p.add("auth.scope_separator", "must not be empty");
                }
                check_scopes(p, "auth.scopes", &oauth.scopes);
            }
            AuthSpec::Oauth2ClientCredentials(cc) => {
                templates.push(("auth.token_url", &cc.token_url));
                check_scopes(p, "auth.scopes", &cc.scopes);
            }
            AuthSpec::ApiKey(key) => {
                if key.header.is_none() && key.query_param.is_none() {
                    p.add(
                        "auth",
                        "an api_key provider needs `header` or `query_param`",
                    );
                }
                if let Some(header) = &key.header
                    && !is_header_name(header)
                {
                    p.add(
                        "auth.header",
                        format!("`{header}` is not an HTTP header name"),
                    );
                }
                if let Some(param) = &key.query_param
                    && param.trim().is_empty()
                {
                    p.add("auth.query_param", "must not be empty");
                }
                if let Some(format) = &key.header_format {
                    if !format.contains("{api_key}") {
                        p.add("auth.header_format", "must contain `{api_key}`");
                    }
                    if key.header.is_none() {
                        p.add(
                            "auth.header_format",
                            "needs `header`, the header it formats",
                        );
                    }
                }
            }
            AuthSpec::Basic(_) => {}
        }
        for (key, template) in templates {
            if template.is_empty() {
                p.add(key, "required");
                continue;
            }
            match template_placeholders(template) {
                Ok(names) => {
                    for name in names {
                        if !self.connection_config.contains_key(&name) {
                            p.add(
                                key,
                                format!("placeholder `{{{name}}}` is not declared under [connection_config]"),
                            );
                        }
                    }
                }
                Err(e) => p.add(key, e.to_string()),
            }
            p.https_url(key, template);
        }
    }

    fn check_api(&self, p: &mut Problems) {
        let api = &self.api;
        if api.base_url.is_empty() {
            p.add("api.base_url", "required");
        } else {
            p.https_url("api.base_url", &api.base_url);
            if api.base_url.ends_with('/') {
                p.add(
                    "api.base_url",
                    "must not end with `/`; request paths start with one",
                );
            }
        }
        for status in &api.retry.statuses {
            if !(400..=599).contains(status) {
                p.add(
                    "api.retry.statuses",
                    format!("{status} is not an HTTP error status"),
                );
            }
        }
        if api.retry.max_attempts == 0 {
            p.add("api.retry.max_attempts", "must be at least 1");
        }
        if api.retry.initial_backoff > api.retry.max_backoff {
            p.add(
                "api.retry.initial_backoff",
                "must not exceed api.retry.max_backoff",
            );
        }
        if api.max_concurrency == Some(0) {
            p.add("api.max_concurrency", "must be at least 1");
        }
        if let Some(limit) = &api.rate_limit
            && (limit.requests == 0 || limit.per.get().is_zero())
        {
            p.add("api.rate_limit", "requests and per must both be above zero");
        }
        for (name, preset) in &api.pagination {
            let key = format!("api.pagination.{name}");
            let pointers: Vec<(&str, &str)> = match preset {
                PaginationSpec::NextLink {
                    next_link, records, ..
                } => {
                    vec![("next_link", next_link), ("records", records)]
                }
                PaginationSpec::Cursor {
                    cursor, records, ..
                } => {
                    vec![("cursor", cursor), ("records", records)]
                }
            };
            for (field, pointer) in pointers {
                p.json_pointer(&format!("{key}.{field}"), pointer);
            }
            if let Some((_, 0)) = preset.page_size() {
                p.add(format!("{key}.page_size"), "must be at least 1");
            }
            if let Some(max) = preset.max_page_size() {
                if max == 0 {
                    p.add(format!("{key}.max_page_size"), "must be at least 1");
                }
                if preset.page_size_param().is_none() {
                    p.add(
                        format!("{key}.max_page_size"),
                        "needs `page_size_param`, the parameter that sets the page size",
                    );
                }
                if let Some((_, size)) = preset.page_size()
                    && size > max
                {
                    p.add(
                        format!("{key}.page_size"),
                        format!("{size} is above max_page_size ({max})"),
                    );
                }
            }
        }
    }

    fn check_account(&self, p: &mut Problems) {
        let Some(account) = &self.account else {
            return;
        };
        if !account.path.starts_with('/') {
            p.add("account.path", "must start with `/`");
        }
        p.json_pointer("account.id", &account.id);
        for (key, pointer) in [
            ("account.display_name", &account.display_name),
            ("account.email", &account.email),
        ] {
            if let Some(pointer) = pointer {
                p.json_pointer(key, pointer);
            }
        }
    }

    fn check_models_syncs_actions(&self, p: &mut Problems) {
        for name in self.models.keys() {
            if !is_pascal_case(name) {
                p.add(
                    format!("models.{name}"),
                    "model names are PascalCase, e.g. `Person`",
                );
            }
        }
        let scopes = self.declared_scopes();
        let mut names = BTreeSet::new();
        for (i, sync) in self.syncs.iter().enumerate() {
            let key = format!("syncs[{i}]");
            if !is_kebab_case(&sync.name) {
                p.add(
                    format!("{key}.name"),
                    format!("`{}` must be kebab-case", sync.name),
                );
            }
            if !names.insert(("sync", sync.name.as_str())) {
                p.add(
                    format!("{key}.name"),
                    format!("sync `{}` is declared twice", sync.name),
                );
            }
            if !self.models.contains_key(&sync.model) {
                p.add(
                    format!("{key}.model"),
                    format!("model `{}` is not declared under [models]", sync.model),
                );
            }
            if sync.frequency.get() < MIN_SYNC_FREQUENCY {
                p.add(format!("{key}.frequency"), "must be at least 30s");
            }
            check_known_scopes(p, &format!("{key}.scopes"), &sync.scopes, &scopes);
        }
        for (i, action) in self.actions.iter().enumerate() {
            let key = format!("actions[{i}]");
            if !is_kebab_case(&action.name) {
                p.add(
                    format!("{key}.name"),
                    format!("`{}` must be kebab-case", action.name),
                );
            }
            if !names.insert(("action", action.name.as_str())) {
                p.add(
                    format!("{key}.name"),
                    format!("action `{}` is declared twice", action.name),
                );
            }
            check_known_scopes(p, &format!("{key}.scopes"), &action.scopes, &scopes);
        }
    }

    /// Scopes the auth section declares; `None` when the auth mode has no scopes at all.
    fn declared_scopes(&self) -> Option<BTreeSet<&str>> {
        let scopes = match &self.auth {
            AuthSpec::Oauth2(o) => &o.scopes,
            AuthSpec::Oauth2ClientCredentials(c) => &c.scopes,
            AuthSpec::ApiKey(_) | AuthSpec::Basic(_) => return None,
        };
        Some(scopes.iter().map(|s| s.name.as_str()).collect())
    }
}

fn check_scopes(p: &mut Problems, key: &str, scopes: &[ScopeSpec]) {
    let mut seen = BTreeSet::new();
    for (i, scope) in scopes.iter().enumerate() {
        if scope.name.trim().is_empty() || scope.name.contains(char::is_whitespace) {
            p.add(
                format!("{key}[{i}].name"),
                "must be a non-empty word without spaces",
            );
        }
        if !seen.insert(scope.name.as_str()) {
            p.add(
                format!("{key}[{i}].name"),
                format!("scope `{}` is declared twice", scope.name),
            );
        }
        if scope.description.trim().is_empty() {
            p.add(
                format!("{key}[{i}].description"),
                "document what the scope grants",
            );
        }
    }
}

fn check_known_scopes(
    p: &mut Problems,
    key: &str,
    used: &[String],
    declared: &Option<BTreeSet<&str>>,
) {
    let Some(declared) = declared else {
        return;
    };
    for scope in used {
        if !declared.contains(scope.as_str()) {
            p.add(
                key,
                format!("scope `{scope}` is not declared under auth.scopes"),
            );
        }
    }
}

fn is_kebab_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn is_pascal_case(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// An HTTP field name: a non-empty token (RFC 9110 §5.1).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, key: impl AsRef<str>, message: impl AsRef<str>) {
        self.0
            .push(format!("{}: {}", key.as_ref(), message.as_ref()));
    }

    /// Spec URLs are https: loopback http belongs in an integration's overrides, not the spec.
    fn https_url(&mut self, key: &str, url: &str) {
        let Some(rest) = url.strip_prefix("https://") else {
            self.add(key, format!("`{url}` must be an https:// URL"));
            return;
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') || url.contains(char::is_whitespace) {
            self.add(key, format!("`{url}` is not a valid URL"));
        }
    }

    fn json_pointer(&mut self, key: &str, pointer: &str) {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            self.add(
                key,
                format!("`{pointer}` must be a JSON pointer such as `/value` (or empty for the whole body)"),
            );
        }
    }
}

//! `[integrations.<name>]`: each integration's provider, client credentials, scopes, URL
//! overrides and per-sync settings, checked against the provider's spec.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::credentials::{Demand, read_credentials};
use super::read::{self, Ctx, Table};
use super::{IntegrationConfig, Overrides, SyncOverride, check_url, misses_offline_access};
use crate::registry::Registry;
use plugboard_core::spec::ClientAuthentication;

pub(super) fn read_integrations(
    ctx: &mut Ctx<'_>,
    root: &mut Table,
    registry: &Registry,
    providers: &Registry,
    today: NaiveDate,
) -> Option<BTreeMap<String, IntegrationConfig>> {
    let Some(table) = root.take("integrations").and_then(|f| ctx.table(f)) else {
        return Some(BTreeMap::new());
    };
    let mut integrations = BTreeMap::new();
    let mut ok = true;
    for (name, f) in table.drain() {
        if !is_integration_name(&name) {
            ctx.error(&f, "integration names are lowercase letters, digits, `-` and `_`, starting with a letter");
            ok = false;
            continue;
        }
        match ctx
            .table(f)
            .and_then(|t| read_integration(ctx, t, registry, providers, today))
        {
            Some(integration) => {
                integrations.insert(name, integration);
            }
            None => ok = false,
        }
    }
    ok.then_some(integrations)
}

fn is_integration_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn read_integration(
    ctx: &mut Ctx<'_>,
    mut t: Table,
    registry: &Registry,
    providers: &Registry,
    today: NaiveDate,
) -> Option<IntegrationConfig> {
    let named = t
        .required(ctx, "provider", "a provider id from [[providers]]")
        .and_then(|f| ctx.string(&f, "a provider id").map(|id| (f, id)));
    let provider = named.as_ref().and_then(|(f, id)| {
        if providers.get(id).is_some() {
            return Some(id.clone());
        }
        ctx.error(f, not_enabled(id, registry));
        None
    });
    let id = named.as_ref().map_or("", |(_, id)| id.as_str());
    let spec = provider
        .as_deref()
        .and_then(|id| providers.get(id))
        .map(|p| p.spec());
    // What the client settings are checked against: the enabled provider's spec, or that of a
    // built-in provider not enabled yet. For a provider that is unknown (or not named) whether
    // they apply cannot be told: they are checked when set but not demanded, so that the one
    // error is the provider's.
    let auth = named
        .as_ref()
        .and_then(|(_, id)| providers.get(id).or_else(|| registry.get(id)))
        .map(|p| &p.spec().auth);
    // An API-key provider's connections each bring their key: the integration has no client.
    let keyed = auth.is_some_and(|a| a.as_api_key().is_some());
    let demand_client = auth.is_some() && !keyed;
    let demand_certificate = auth
        .and_then(|a| a.as_oauth2())
        .is_some_and(|o| o.client_authentication == ClientAuthentication::PrivateKeyJwt);
    if keyed {
        for name in [
            "client_id",
            "client_secret",
            "client_secret_expires_at",
            "client_certificate",
            "client_private_key",
            "client_assertion_algorithm",
            "credentials",
            "scopes",
        ] {
            if let Some(f) = t.take(name) {
                ctx.error(
                    &f,
                    format!(
                        "not used: provider `{id}` authenticates with API keys, which each \
                         connection brings (POST /connections); remove it"
                    ),
                );
            }
        }
    }
    let client_id = if keyed {
        Some(String::new())
    } else {
        let f = match demand_client {
            true => t.required(ctx, "client_id", "the OAuth client id"),
            false => t.take("client_id"),
        };
        f.and_then(|f| {
            let id = ctx.string(&f, "a string")?;
            if id.trim().is_empty() {
                ctx.error(&f, "must not be empty");
                return None;
            }
            Some(id)
        })
    };
    let credentials = if keyed {
        Some(Vec::new())
    } else {
        let demand = Demand {
            client: demand_client,
            certificate: demand_certificate,
            provider: id,
        };
        read_credentials(ctx, &mut t, &demand, today)
    };
    let scopes = match t.take("scopes") {
        None => Some(None),
        Some(f) => ctx.strings(&f, "scope names").map(|scopes| {
            if let Some(oauth) = spec.and_then(|s| s.auth.as_oauth2()) {
                if misses_offline_access(oauth, &scopes) {
                    ctx.warn(&f, "`offline_access` is missing: connections get no refresh token and need a person to reconnect when the access token expires");
                }
                for scope in &scopes {
                    if oauth.scope(scope).is_none() {
                        ctx.warn(&f, format!("scope `{scope}` is not declared by provider `{}`", provider.as_deref().unwrap_or_default()));
                    }
                }
            }
            Some(scopes)
        }),
    };
    let overrides = match t.take("overrides") {
        None => Some(Overrides::default()),
        Some(f) => ctx.table(f).and_then(|o| read_overrides(ctx, o, spec)),
    };
    let syncs = match t.take("syncs") {
        None => Some(BTreeMap::new()),
        Some(f) => ctx.table(f).and_then(|s| read_sync_overrides(ctx, s, spec)),
    };
    t.finish(ctx);
    let scopes = match scopes? {
        Some(scopes) => scopes,
        None => spec
            .and_then(|s| s.auth.as_oauth2())
            .map(|o| o.default_scopes())
            .unwrap_or_default(),
    };
    Some(IntegrationConfig {
        provider: provider?,
        client_id: client_id?,
        credentials: credentials?,
        scopes,
        overrides: overrides?,
        syncs: syncs?,
    })
}

/// Why an integration's provider `id`, which no `[[providers]]` entry enabled, cannot be used,
/// and how to enable it.
fn not_enabled(id: &str, registry: &Registry) -> String {
    if registry.get(id).is_some() {
        return format!("provider `{id}` is not enabled; add [[providers]] builtin = \"{id}\"");
    }
    format!(
        "provider `{id}` is not enabled: no [[providers]] entry provides it, and it is not built \
         in (built in: {}). Enable it with a [[providers]] entry: `spec_dir = \"<directory>\"` \
         for a spec file (every *.toml file in the directory is loaded; a relative path starts \
         from this file's directory), or `path = \"<library>\"` for a plugin",
        registry.ids().join(", ")
    )
}

fn read_overrides(
    ctx: &mut Ctx<'_>,
    mut t: Table,
    spec: Option<&plugboard_core::ProviderSpec>,
) -> Option<Overrides> {
    let mut ok = true;
    let mut read = |ctx: &mut Ctx<'_>, t: &mut Table, name: &str| -> Option<String> {
        let f = t.take(name)?;
        let template = ctx.string(&f, "a URL template");
        let checked = template.and_then(|template| {
            let names = match plugboard_core::spec::template_placeholders(&template) {
                Ok(names) => names,
                Err(e) => {
                    ctx.error(&f, e.to_string());
                    return None;
                }
            };
            let mut sample = template.clone();
            for placeholder in &names {
                let declared = spec.is_none_or(|s| s.connection_config.contains_key(placeholder));
                if !declared {
                    ctx.error(&f, format!("placeholder `{{{placeholder}}}` is not a connection parameter of the provider"));
                    return None;
                }
                sample = sample.replace(&format!("{{{placeholder}}}"), "x");
            }
            check_url(ctx, &f, &sample)?;
            Some(template)
        });
        if checked.is_none() {
            ok = false;
        }
        checked
    };
    let overrides = Overrides {
        authorization_url: read(ctx, &mut t, "authorization_url"),
        token_url: read(ctx, &mut t, "token_url"),
        admin_consent_url: read(ctx, &mut t, "admin_consent_url"),
        api_base_url: read(ctx, &mut t, "api_base_url").map(|u| u.trim_end_matches('/').to_owned()),
        client_assertion_audience: read(ctx, &mut t, "client_assertion_audience"),
    };
    t.finish(ctx);
    ok.then_some(overrides)
}

fn read_sync_overrides(
    ctx: &mut Ctx<'_>,
    table: Table,
    spec: Option<&plugboard_core::ProviderSpec>,
) -> Option<BTreeMap<String, SyncOverride>> {
    let mut syncs = BTreeMap::new();
    let mut ok = true;
    for (name, f) in table.drain() {
        if let Some(spec) = spec
            && spec.sync(&name).is_none()
        {
            let declared: Vec<&str> = spec.syncs.iter().map(|s| s.name.as_str()).collect();
            ctx.error(
                &f,
                format!(
                    "provider `{}` has no sync `{name}` (it has: {})",
                    spec.id,
                    declared.join(", ")
                ),
            );
            ok = false;
            continue;
        }
        let Some(mut t) = ctx.table(f) else {
            ok = false;
            continue;
        };
        let mut settings = SyncOverride::default();
        if let Some(f) = t.take("enabled") {
            match ctx.boolean(&f) {
                Some(enabled) => settings.enabled = Some(enabled),
                None => ok = false,
            }
        }
        if let Some(f) = t.take("frequency") {
            let parsed = ctx
                .string(&f, "a duration such as \"30s\", \"15m\", \"1h\" or \"1d\"")
                .map(|text| crate::sync::parse_frequency(&text));
            match parsed {
                Some(Ok(frequency)) => settings.frequency = Some(frequency),
                Some(Err(e)) => {
                    ctx.error(&f, e);
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(f) = t.take("page_size") {
            match read_page_size(ctx, &f, spec) {
                Some(size) => settings.page_size = Some(size),
                None => ok = false,
            }
        }
        t.finish(ctx);
        syncs.insert(name, settings);
    }
    ok.then_some(syncs)
}

/// A sync's `page_size`: at least 1 and at most what the provider's spec says it serves
/// (`max_page_size`), so a page size the provider would refuse or silently cut fails here, at
/// start-up, rather than in every run.
fn read_page_size(
    ctx: &mut Ctx<'_>,
    f: &read::Field,
    spec: Option<&plugboard_core::ProviderSpec>,
) -> Option<u32> {
    let max = match spec.map(|spec| (spec, spec.max_page_size())) {
        Some((_, Some(max))) => max,
        Some((spec, None)) => {
            ctx.error(
                f,
                format!(
                    "provider `{}` declares no `max_page_size` in its pagination presets, so its syncs' page size cannot be chosen",
                    spec.id
                ),
            );
            return None;
        }
        // An unknown provider is reported on its own key.
        None => u32::MAX,
    };
    let expected = format!("a whole number from 1 to {max}");
    let size = ctx.integer(f, &expected)?;
    match u32::try_from(size) {
        Ok(size) if (1..=max).contains(&size) => Some(size),
        _ => {
            let provider = spec.map_or_else(String::new, |spec| {
                format!(", the most provider `{}` serves per page", spec.id)
            });
            ctx.error(
                f,
                format!("{size} is out of range: expected 1 to {max}{provider}"),
            );
            None
        }
    }
}

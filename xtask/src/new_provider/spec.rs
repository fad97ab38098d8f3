//! The scaffold's spec file: the options' facts, and a marked blank for every other one.

use super::{BLANK, Options, PLACEHOLDER, TOKEN_BLANK, toml_string};

/// The spec, with a marked blank for every fact the options did not give.
pub fn spec(options: &Options) -> String {
    let id = &options.id;
    let display_name = options
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{BLANK}: the name people know the provider by"));
    let docs_url = options
        .docs_url
        .clone()
        .unwrap_or_else(|| format!("{PLACEHOLDER}/docs"));
    let mut out = format!(
        "# {name}: written by `cargo xtask new-provider`. Every `{BLANK}` (`{TOKEN_BLANK}` in\n\
         # a header name) and every URL on `todo.invalid` is a blank to fill in from the\n\
         # provider's documentation; `cargo xtask check-providers` lists those left.\n\
         # docs/provider-spec.md explains every key.\n\n\
         id = \"{id}\"\ndisplay_name = {display}\n# The provider's API documentation, where the facts below come from.\ndocs_url = {docs}\n\n[auth]\n",
        name = options.display_name.as_deref().unwrap_or(id),
        display = toml_string(&display_name),
        docs = toml_string(&docs_url),
    );
    match options.api_key {
        true => out.push_str(&api_key_auth(options)),
        false => out.push_str(&oauth2_auth(options)),
    }
    let base_url = options
        .api_base_url
        .clone()
        .unwrap_or_else(|| PLACEHOLDER.to_owned());
    out.push_str(&format!(
        "\n[api]\n# Request paths below it carry any version: `/v1/contacts`.\nbase_url = {}\n",
        toml_string(&base_url)
    ));
    out.push_str(&format!(
        "\n# The request that tells whose account a connection is, and JSON pointers into its answer\n\
         # (`email` and `display_name` may go). An API key is tried on it before it is stored.\n\
         [account]\npath = \"/{BLANK}\"\nid = \"/{BLANK}: id\"\n\
         display_name = \"/{BLANK}: name\"\nemail = \"/{BLANK}: email\"\n"
    ));
    if !options.spec_only {
        let sync = options.sync_name();
        let model = options.model_name();
        out.push_str(&format!(
            "\n# How the API's lists page; the sync reads them with this preset. A cursor in the body\n\
             # sent back as a query parameter; `type = \"next_link\"` is for a next page's URL.\n\
             [api.pagination.default]\ntype = \"cursor\"\n\
             # JSON pointer to the page's array of entries.\nrecords = \"/{BLANK}: entries\"\n\
             # JSON pointer to the next page's cursor; absent, null or empty on the last page.\n\
             cursor = \"/{BLANK}: next cursor\"\n\
             # The query parameter the cursor goes back in.\ncursor_param = \"{BLANK}\"\n\n\
             [models.{model}]\ndescription = \"{BLANK}: what one record is\"\n\n\
             [[syncs]]\nname = \"{sync}\"\nmodel = \"{model}\"\n\
             description = \"{BLANK}: what the sync keeps a copy of\"\nfrequency = \"1h\"\n"
        ));
    }
    out
}

fn api_key_auth(options: &Options) -> String {
    let mut out = String::from(
        "mode = \"api_key\"\n\
         # Where the API reads the key: a `header` (with `header_format` when the key is wrapped,\n\
         # such as \"Bearer {api_key}\") and/or a `query_param`.\n",
    );
    let header = match (&options.header, &options.query_param) {
        (Some(header), _) => Some(header.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(TOKEN_BLANK.to_owned()),
    };
    if let Some(header) = header {
        out.push_str(&format!("header = {}\n", toml_string(&header)));
    }
    if let Some(format) = &options.header_format {
        out.push_str(&format!("header_format = {}\n", toml_string(format)));
    }
    if let Some(param) = &options.query_param {
        out.push_str(&format!("query_param = {}\n", toml_string(param)));
    }
    out
}

fn oauth2_auth(options: &Options) -> String {
    let url = |given: &Option<String>, path: &str| {
        toml_string(
            given
                .as_deref()
                .unwrap_or(&format!("{PLACEHOLDER}/oauth/{path}")),
        )
    };
    let mut out = format!(
        "mode = \"oauth2\"\nauthorization_url = {}\ntoken_url = {}\n\
         # Send a PKCE S256 challenge; turn off only for a provider that refuses it.\n\
         pkce = true\n\
         # How the app authenticates at the token URL: `form` (in the body) or `basic`.\n\
         client_authentication = \"form\"\n",
        url(&options.authorization_url, "authorize"),
        url(&options.token_url, "token"),
    );
    let scopes = match options.scopes.is_empty() {
        true => vec![BLANK.to_owned()],
        false => options.scopes.clone(),
    };
    for scope in &scopes {
        out.push_str(&format!(
            "\n[[auth.scopes]]\nname = {}\ndescription = \"{BLANK}: what this scope grants\"\ndefault = true\n",
            toml_string(scope)
        ));
    }
    out
}

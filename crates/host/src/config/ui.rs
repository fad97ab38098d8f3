//! `[ui]`: how the end-user pages (the connect page and the pages after a failed authorization)
//! present the application that sends its users there, and the dashboard's sign-in key. Every
//! key is optional.

use url::Url;

use secrecy::SecretString;

use super::read::{Ctx, Table};
use super::{check_url, read_key};

/// The application's name when `[ui] app_name` is unset. The pages put the name in the middle
/// of sentences ("Back to the application"), so the default is worded for that.
pub const DEFAULT_APP_NAME: &str = "the application";
/// The buttons' and links' colour when `[ui] accent_color` is unset.
pub const DEFAULT_ACCENT_COLOR: &str = "#2563eb";
/// Longer names break the pages' layout; no product name needs more.
const MAX_APP_NAME_CHARS: usize = 80;

#[derive(Debug, Clone)]
pub struct UiConfig {
    pub app_name: String,
    /// An image shown above the pages' text: https, or http on a loopback host.
    pub logo_url: Option<Url>,
    /// `#rgb` or `#rrggbb`, lowercase. Only such a value reaches the stylesheet, so it can
    /// never carry CSS of its own.
    pub accent_color: String,
    /// The dashboard's own sign-in key; the API's secret key signs in when unset. With it, an
    /// operator can sign in without holding the key every API client uses.
    pub admin_key: Option<SecretString>,
}

pub(super) fn read_ui(ctx: &mut Ctx<'_>, mut t: Table) -> Option<UiConfig> {
    let app_name = match t.take("app_name") {
        None => Some(DEFAULT_APP_NAME.to_owned()),
        Some(f) => ctx.string(&f, "the application's name").and_then(|text| {
            let name = text.trim();
            let problem = if name.is_empty() {
                Some(format!(
                    "must not be empty; leave it out to say \"{DEFAULT_APP_NAME}\""
                ))
            } else if name.chars().any(char::is_control) {
                Some("must be one line of text".to_owned())
            } else if name.chars().count() > MAX_APP_NAME_CHARS {
                Some(format!(
                    "is longer than {MAX_APP_NAME_CHARS} characters; use the short name your users know"
                ))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    ctx.error(&f, problem);
                    None
                }
                None => Some(name.to_owned()),
            }
        }),
    };
    let logo_url = match t.take("logo_url") {
        None => Some(None),
        Some(f) => ctx
            .string(&f, "a URL")
            .and_then(|text| check_url(ctx, &f, &text))
            .map(Some),
    };
    let accent_color = match t.take("accent_color") {
        None => Some(DEFAULT_ACCENT_COLOR.to_owned()),
        Some(f) => ctx
            .string(&f, "a colour such as \"#2563eb\"")
            .and_then(|text| {
                let colour = text.trim().to_ascii_lowercase();
                if is_hex_colour(&colour) {
                    return Some(colour);
                }
                ctx.error(
                    &f,
                    format!(
                        "`{text}` is not a colour: expected #rgb or #rrggbb, such as \"#2563eb\""
                    ),
                );
                None
            }),
    };
    let admin_key = match t.take("admin_key") {
        None => Some(None),
        Some(f) => read_key(ctx, &f).map(Some),
    };
    t.finish(ctx);
    Some(UiConfig {
        app_name: app_name?,
        logo_url: logo_url?,
        accent_color: accent_color?,
        admin_key: admin_key?,
    })
}

fn is_hex_colour(text: &str) -> bool {
    text.strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

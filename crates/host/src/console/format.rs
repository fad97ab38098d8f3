//! How the dashboard words times, durations and accounts.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// `2026-12-07 08:12 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3 min ago`, `in 2 h`: how far `at` is from `now`, roughly.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    if seconds.abs() < 5 {
        return "just now".to_owned();
    }
    let span = span(seconds.unsigned_abs());
    if seconds < 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// `45 s`, `12 min`, `3 h`, `5 days`.
fn span(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..172_800 => format!("{} h", seconds / 3_600),
        _ => format!("{} days", seconds / 86_400),
    }
}

/// `2026-12-07 08:12:03 UTC (3 min ago)`, or `never` / the given fallback.
pub fn moment(at: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> String {
    match at {
        Some(at) => format!("{} ({})", when(at), relative(at, now)),
        None => none.to_owned(),
    }
}

/// `1.2 s`, `340 ms`, `2 min 5 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A client credential (a secret or a certificate, or the last of several to expire) as the
/// operator may see it: set or not and when it expires, never its value.
/// `set, expires 2027-05-01 (in 142 days)`.
pub fn client_credential(expires: Option<NaiveDate>, today: NaiveDate) -> String {
    match expires {
        None => "set (no expiry date configured)".to_owned(),
        Some(date) => {
            let days = (date - today).num_days();
            match days {
                ..0 => format!("set, expired on {date} ({} days ago)", -days),
                0 => format!("set, expires {date} (today)"),
                1 => format!("set, expires {date} (tomorrow)"),
                _ => format!("set, expires {date} (in {days} days)"),
            }
        }
    }
}

/// The account's name and email as the provider reported them, or what there is.
pub fn account(account: Option<&Value>) -> String {
    let Some(account) = account else {
        return String::new();
    };
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| account.get(*name).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let name = field(&["display_name", "name", "displayName"]);
    let email = field(&["email", "mail", "user_principal_name", "userPrincipalName"]);
    match (name, email) {
        (Some(name), Some(email)) if name != email => format!("{name} <{email}>"),
        (Some(one), _) | (None, Some(one)) => one,
        (None, None) => String::new(),
    }
}

/// `text` in parts, each marked whether it stood between backticks. Plugboard's messages quote
/// names that way (sync `people`, `sync.completed` delivered); the pages show those parts as
/// code (`templates/console/macros.html`) rather than print the backticks. A backtick without
/// its pair stays in the text as it is.
pub fn code_spans(text: &str) -> Vec<(bool, &str)> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('`') {
        let Some((code, next)) = after.split_once('`') else {
            break;
        };
        if !before.is_empty() {
            parts.push((false, before));
        }
        if code.is_empty() {
            parts.push((false, "``"));
        } else {
            parts.push((true, code));
        }
        rest = next;
    }
    if !rest.is_empty() {
        parts.push((false, rest));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_mark_code_and_an_unpaired_one_stays() {
        assert_eq!(
            code_spans("sync `people` failed: `x` is not `y`"),
            [
                (false, "sync "),
                (true, "people"),
                (false, " failed: "),
                (true, "x"),
                (false, " is not "),
                (true, "y"),
            ]
        );
        assert_eq!(
            code_spans("`a` and a lone ` here"),
            [(true, "a"), (false, " and a lone ` here")]
        );
        assert_eq!(
            code_spans("empty `` pair"),
            [(false, "empty "), (false, "``"), (false, " pair")]
        );
        assert_eq!(code_spans("plain"), [(false, "plain")]);
        assert_eq!(code_spans(""), []);
    }

    #[test]
    fn a_client_secret_shows_its_expiry_and_never_a_value() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
        let on = |y, m, d| Some(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(
            client_credential(on(2027, 5, 1), today),
            "set, expires 2027-05-01 (in 142 days)"
        );
        assert_eq!(
            client_credential(on(2026, 12, 1), today),
            "set, expired on 2026-12-01 (9 days ago)"
        );
        assert_eq!(
            client_credential(None, today),
            "set (no expiry date configured)"
        );
    }

    #[test]
    fn times_read_as_people_say_them() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(relative(at(-30), now), "30 s ago");
        assert_eq!(relative(at(2), now), "just now");
        assert_eq!(relative(at(600), now), "in 10 min");
        assert_eq!(relative(at(-7_200), now), "2 h ago");
        assert_eq!(relative(at(864_000), now), "in 10 days");
        assert_eq!(duration(Duration::from_millis(340)), "340 ms");
        assert_eq!(duration(Duration::from_millis(1_250)), "1.2 s");
        assert_eq!(duration(Duration::from_secs(125)), "2 min 5 s");
    }

    #[test]
    fn an_account_shows_name_and_email() {
        let account = serde_json::json!({"display_name": "Ada", "email": "ada@example.com"});
        assert_eq!(super::account(Some(&account)), "Ada <ada@example.com>");
        assert_eq!(super::account(None), "");
    }
}

//! When to try a request again, and how long to wait first.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::spec::RetrySpec;

/// The spec's retry rules, as decisions.
///
/// A provider's `Retry-After` is obeyed because retrying sooner only extends its throttling;
/// it is capped at `max_backoff` so a bogus header cannot park a sync for a day. Without the
/// header the delay grows exponentially with jitter, so many connections throttled at once do
/// not retry in lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    statuses: Vec<u16>,
    retry_after_header: String,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl RetryPolicy {
    pub fn from_spec(spec: &RetrySpec) -> Self {
        RetryPolicy {
            statuses: spec.statuses.clone(),
            retry_after_header: spec.retry_after_header.clone(),
            max_attempts: spec.max_attempts.max(1),
            initial_backoff: spec.initial_backoff.get(),
            max_backoff: spec.max_backoff.get(),
        }
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether responses with this status are retried. A response with such a status that
    /// reaches the caller therefore means the retries were exhausted.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// The wait before the next attempt after attempt number `attempt` (1 for the first) got
    /// `status`, or `None` when the response is final.
    pub fn delay_after_status(
        &self,
        attempt: u32,
        status: u16,
        headers: &[(String, String)],
    ) -> Option<Duration> {
        if !self.retries_status(status) || attempt >= self.max_attempts {
            return None;
        }
        let retry_after = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&self.retry_after_header))
            .and_then(|(_, value)| parse_retry_after(value, SystemTime::now()));
        Some(match retry_after {
            Some(wait) => wait.min(self.max_backoff),
            None => self.backoff(attempt),
        })
    }

    /// The wait before the next attempt after attempt number `attempt` failed without an
    /// answer, or `None` when it must not be repeated. A request that never reached the server
    /// (`connect_failed`) is safe to repeat; otherwise only idempotent methods are repeated,
    /// because the server may have acted on the request before the connection broke.
    pub fn delay_after_transport_error(
        &self,
        attempt: u32,
        method: &str,
        connect_failed: bool,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !(connect_failed || is_idempotent(method)) {
            return None;
        }
        Some(self.backoff(attempt))
    }

    /// Exponential backoff with "equal jitter": between half and all of
    /// `initial * 2^(attempt-1)`, capped at `max_backoff`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let full = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = full / 2;
        let jitter_nanos =
            rand::thread_rng().gen_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }
}

fn is_idempotent(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// `Retry-After` as delay-seconds or as an HTTP date; a date in the past means "now".
///
/// Anything else is `None`, so the caller falls back to its own backoff rather than guessing.
/// The result is not capped here: the caller caps it at `max_backoff`.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(delay) = parse_delay_seconds(value) {
        return Some(delay);
    }
    // IMF-fixdate, and the obsolete RFC 850 and asctime forms RFC 7231 says to accept too.
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Delay-seconds: ASCII digits, optionally with a fraction (`1.5`). RFC 7231 allows only
/// whole seconds, but some providers send fractions, and ignoring those retried sooner than
/// asked. The fraction is rounded up to the millisecond, so the wait is never shorter than
/// asked. Signs, exponents and non-ASCII digits are not delay-seconds; digits too many for
/// a `u64` saturate, to be capped by the caller like any long wait.
fn parse_delay_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !fraction.is_none_or(digits) {
        return None;
    }
    // All ASCII digits, so parsing fails only on overflow.
    let seconds = whole.parse::<u64>().unwrap_or(u64::MAX);
    let fraction = fraction.unwrap_or("").as_bytes();
    let mut millis = fraction
        .iter()
        .chain(b"000")
        .take(3)
        .fold(0, |millis, digit| millis * 10 + u64::from(digit - b'0'));
    if fraction.iter().skip(3).any(|&digit| digit != b'0') {
        millis += 1;
    }
    Some(Duration::from_secs(seconds).saturating_add(Duration::from_millis(millis)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HumanDuration;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_spec(&RetrySpec {
            statuses: vec![429, 503],
            retry_after_header: "Retry-After".into(),
            max_attempts: 4,
            initial_backoff: HumanDuration(Duration::from_millis(100)),
            max_backoff: HumanDuration(Duration::from_secs(10)),
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn honours_retry_after_seconds_capped_at_max_backoff() {
        let p = policy();
        assert_eq!(
            p.delay_after_status(1, 429, &headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay_after_status(1, 503, &headers(&[("Retry-After", " 3600 ")])),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn honours_retry_after_dates() {
        let now = SystemTime::now();
        let in_five = httpdate::fmt_http_date(now + Duration::from_secs(5));
        let wait = parse_retry_after(&in_five, now).unwrap();
        assert!(
            wait <= Duration::from_secs(5) && wait >= Duration::from_secs(4),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn parses_whole_and_fractional_delay_seconds() {
        let now = SystemTime::now();
        let parse = |value| parse_retry_after(value, now);
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse(" 0.25 "), Some(Duration::from_millis(250)));
        // Rounded up to the millisecond, never down.
        assert_eq!(parse("1.0001"), Some(Duration::from_millis(1001)));
        assert_eq!(parse("0.0000001"), Some(Duration::from_millis(1)));
        assert_eq!(parse("2.000000"), Some(Duration::from_secs(2)));
        // Too large for a u64: saturates, and the policy caps it.
        let huge = "99999999999999999999999999.9999";
        assert!(parse(huge).unwrap() >= Duration::from_secs(u64::MAX));
        assert_eq!(
            policy().delay_after_status(1, 429, &headers(&[("Retry-After", huge)])),
            Some(Duration::from_secs(10))
        );
        // A fraction is obeyed, not replaced by the (shorter) default backoff.
        assert_eq!(
            policy().delay_after_status(1, 429, &headers(&[("Retry-After", "1.5")])),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn parses_http_dates_relative_to_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let value = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            parse_retry_after(value, date - Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_retry_after(value, date), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(value, date + Duration::from_secs(3600)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn ignores_garbage_retry_after() {
        let now = SystemTime::now();
        for value in [
            "",
            " ",
            "abc",
            "-1",
            "-0.5",
            "+1",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "1e400",
            "1e3",
            "١",
            "1.",
            ".5",
            "1.2.3",
            "1,5",
            "0x10",
            "1 s",
            "Wed, 21 Oct 2015 07:28:00",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
        // Ignored means the default backoff: at most 100 ms on the first attempt here.
        for value in ["", "abc", "-1", "NaN", "1e400", "١"] {
            let wait = policy()
                .delay_after_status(1, 429, &headers(&[("Retry-After", value)]))
                .unwrap();
            assert!(wait <= Duration::from_millis(100), "{value:?}: {wait:?}");
        }
    }

    #[test]
    fn backs_off_exponentially_with_jitter_when_no_header() {
        let p = policy();
        for (attempt, full_ms) in [(1u32, 100u64), (2, 200), (3, 400)] {
            for _ in 0..20 {
                let wait =
                    p.delay_after_status(attempt, 429, &headers(&[("Retry-After", "later")]));
                let wait = wait.unwrap();
                assert!(
                    wait >= Duration::from_millis(full_ms / 2)
                        && wait <= Duration::from_millis(full_ms),
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
        let capped = RetryPolicy {
            max_attempts: 100,
            ..policy()
        };
        assert!(capped.delay_after_status(40, 429, &[]).unwrap() <= Duration::from_secs(10));
    }

    #[test]
    fn stops_after_max_attempts_and_on_other_statuses() {
        let p = policy();
        assert!(p.delay_after_status(3, 429, &[]).is_some());
        assert_eq!(p.delay_after_status(4, 429, &[]), None);
        assert_eq!(
            p.delay_after_status(1, 500, &headers(&[("Retry-After", "1")])),
            None
        );
        assert_eq!(p.delay_after_status(1, 200, &[]), None);
    }

    #[test]
    fn repeats_transport_failures_only_when_safe() {
        let p = policy();
        assert!(p.delay_after_transport_error(1, "GET", false).is_some());
        assert!(p.delay_after_transport_error(1, "delete", false).is_some());
        assert_eq!(p.delay_after_transport_error(1, "POST", false), None);
        assert!(p.delay_after_transport_error(1, "POST", true).is_some());
        assert_eq!(p.delay_after_transport_error(4, "GET", true), None);
    }
}

/// Properties of `Retry-After` parsing over generated values, each against a model written
/// independently of the parser: delay-seconds as a regular expression and exact arithmetic,
/// HTTP dates through `chrono`'s formatting.
#[cfg(test)]
mod properties {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::spec::HumanDuration;

    /// Delay-seconds as the parser must read them: `digits` or `digits.digits` (after
    /// trimming), the fraction rounded up to the millisecond, saturating when too long.
    fn model(value: &str) -> Option<Duration> {
        let value = value.trim();
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || (value.contains('.') && !digits(fraction)) {
            return None;
        }
        // Too many digits for a `u64`: the longest wait there is, capped by the caller.
        let seconds = whole.parse::<u64>().unwrap_or(u64::MAX);
        // The fraction's value in thousandths, rounded up, over a denominator of 10^len.
        let significant = fraction.trim_end_matches('0');
        let millis = if significant.len() <= 3 {
            format!("{significant:0<3}").parse::<u64>().unwrap()
        } else {
            significant[..3].parse::<u64>().unwrap() + 1
        };
        Some(Duration::from_secs(seconds).saturating_add(Duration::from_millis(millis)))
    }

    fn at(seconds: i64) -> SystemTime {
        let offset = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + offset
        } else {
            SystemTime::UNIX_EPOCH - offset
        }
    }

    /// 1970-01-01 to 9999-12-31, the dates HTTP can name.
    const LAST_SECOND: i64 = 253_402_300_799;

    fn policy(max_backoff: Duration) -> RetryPolicy {
        RetryPolicy::from_spec(&RetrySpec {
            statuses: vec![429],
            retry_after_header: "Retry-After".into(),
            max_attempts: 3,
            initial_backoff: HumanDuration(Duration::from_millis(10)),
            max_backoff: HumanDuration(max_backoff),
        })
    }

    /// Numbers spoiled by one edit: a sign, an exponent, a separator, another script's digit,
    /// a second dot, an empty side of the dot.
    fn spoiled_number() -> impl Strategy<Value = String> {
        let spoiler = prop::sample::select(vec![
            "+", "-", "e", "E", "e3", ",", "_", "x", "0x", "١", "٣", "\u{ff11}", "..", "NaN",
            "inf", "s", " 1", "\u{0}",
        ]);
        (
            "[0-9]{1,6}(\\.[0-9]{1,4})?",
            spoiler,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(number, spoiler, at)| {
                let at = at.index(number.len() + 1);
                format!("{}{spoiler}{}", &number[..at], &number[at..])
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whole seconds, with leading zeros and surrounding spaces, read exactly.
        #[test]
        fn whole_seconds_are_read_exactly(
            seconds in any::<u64>(),
            zeros in 0usize..4,
            pad in "[ \t]{0,2}",
        ) {
            let value = format!("{pad}{}{seconds}{pad}", "0".repeat(zeros));
            prop_assert_eq!(
                parse_retry_after(&value, SystemTime::now()),
                Some(Duration::from_secs(seconds))
            );
        }

        /// A fraction is never shortened: the wait is the value rounded up to the millisecond.
        #[test]
        fn decimal_seconds_round_up_to_the_millisecond(
            whole in 0u64..1_000_000,
            fraction in "[0-9]{1,12}",
        ) {
            let value = format!("{whole}.{fraction}");
            let parsed = parse_retry_after(&value, SystemTime::now()).unwrap();
            prop_assert_eq!(Some(parsed), model(&value));
            // Exactly: never below the value asked, and less than a millisecond above it.
            let asked_nanos = u128::from(whole) * 1_000_000_000
                + format!("{fraction:0<9}")[..9].parse::<u128>().unwrap();
            prop_assert!(parsed.as_nanos() >= asked_nanos, "{:?} < {}ns", parsed, asked_nanos);
            prop_assert!(parsed.as_nanos() < asked_nanos + 1_000_000);
        }

        /// An HTTP date in any of its three forms means the time until then, or now when past.
        #[test]
        fn http_dates_are_the_time_until_then(
            date in 0i64..=LAST_SECOND,
            now in -LAST_SECOND..=2 * LAST_SECOND,
            form in 0usize..3,
        ) {
            let when = DateTime::<Utc>::from_timestamp(date, 0).unwrap();
            let (value, date) = match form {
                0 => (when.format("%a, %d %b %Y %H:%M:%S GMT").to_string(), date),
                // asctime: the day padded with a space.
                1 => (when.format("%a %b %e %H:%M:%S %Y").to_string(), date),
                // RFC 850 names the year by two digits: 1970 to 2069.
                _ => {
                    let date = date % 3_155_760_000;
                    let when = DateTime::<Utc>::from_timestamp(date, 0).unwrap();
                    (when.format("%A, %d-%b-%y %H:%M:%S GMT").to_string(), date)
                }
            };
            let expected = (date - now).max(0).unsigned_abs();
            prop_assert_eq!(
                parse_retry_after(&value, at(now)),
                Some(Duration::from_secs(expected)),
                "{}", value
            );
        }

        /// Numbers with a sign, an exponent, a comma, foreign digits and the like are ignored.
        #[test]
        fn spoiled_numbers_are_ignored(value in spoiled_number()) {
            prop_assume!(model(&value).is_none());
            prop_assert_eq!(parse_retry_after(&value, SystemTime::now()), None, "{:?}", value);
        }

        /// Any text: read as delay-seconds exactly when it is delay-seconds, else as a date
        /// or not at all; never a panic.
        #[test]
        fn any_text_is_delay_seconds_a_date_or_nothing(value in "\\PC{0,40}|[0-9. ]{0,12}") {
            let now = SystemTime::now();
            let expected = model(&value).or_else(|| {
                let at = httpdate::parse_http_date(value.trim()).ok()?;
                Some(at.duration_since(now).unwrap_or(Duration::ZERO))
            });
            prop_assert_eq!(parse_retry_after(&value, now), expected, "{:?}", value);
        }

        /// Whatever the header says, the wait is at most `max_backoff`, and a valid delay below
        /// it is obeyed as given.
        #[test]
        fn the_wait_is_capped_and_a_valid_delay_obeyed(
            value in "\\PC{0,20}|[0-9]{1,8}(\\.[0-9]{1,5})?",
            max_ms in 1u64..100_000,
        ) {
            let max = Duration::from_millis(max_ms);
            let headers = [("retry-after".to_owned(), value.clone())];
            let wait = policy(max).delay_after_status(1, 429, &headers).unwrap();
            prop_assert!(wait <= max, "{:?}: {:?}", value, wait);
            if let Some(asked) = model(&value) {
                prop_assert_eq!(wait, asked.min(max), "{:?}", value);
            }
        }
    }
}

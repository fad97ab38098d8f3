//! Durations written the way people write them in config files: `500ms`, `30s`, `15m`, `1h`, `1d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as a human string, so specs and configs stay readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                format!("`{s}` is not a duration such as `30s`, `15m`, `1h` or `1d` ({e})")
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_units_and_round_trips() {
        for (text, secs) in [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86_400)] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.get(), Duration::from_secs(secs));
            assert_eq!(parsed.to_string().parse::<HumanDuration>().unwrap(), parsed);
        }
        assert_eq!(
            "500ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn names_the_bad_value() {
        let err = "soon".parse::<HumanDuration>().unwrap_err();
        assert!(err.contains("`soon`"), "{err}");
    }
}

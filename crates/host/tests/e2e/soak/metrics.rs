//! The host's own counts from its `/metrics` (management listener): how many sync runs and
//! refreshes it made, and how late its runs started — whether the schedule kept up.

use crate::support::World;

/// One scrape: each sample line as its name with labels, and its value.
pub struct Scrape(Vec<(String, f64)>);

impl Scrape {
    pub async fn take(world: &World) -> Scrape {
        let management = world
            .host
            .management_url
            .as_ref()
            .expect("a management bind");
        let text = reqwest::get(format!("{management}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Scrape(samples)
    }

    /// The sum of the series of metric `name` whose labels include `label` (`""` for all).
    fn sum(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                series.split(['{', ' ']).next() == Some(name) && series.contains(label)
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// `name` since `before`, for series with `label`.
    fn since(&self, before: &Scrape, name: &str, label: &str) -> f64 {
        self.sum(name, label) - before.sum(name, label)
    }

    /// Runs since `before` by outcome, with how late scheduled runs started on average.
    pub fn runs_since(&self, before: &Scrape) -> String {
        let runs = "plugboard_sync_runs_total";
        let delay = |part: &str| {
            self.since(
                before,
                &format!("plugboard_sync_start_delay_seconds_{part}"),
                "",
            )
        };
        let late = delay("sum") / delay("count").max(1.0);
        format!(
            "{:.0} succeeded, {:.0} failed; scheduled runs started {late:.1} s late on average",
            self.since(before, runs, "outcome=\"success\""),
            self.since(before, runs, "outcome=\"failed\""),
        )
    }

    /// Refresh token redemptions since `before`, by outcome.
    pub fn refreshes_since(&self, before: &Scrape) -> String {
        let name = "plugboard_token_refreshes_total";
        ["success", "transient_error", "refused", "superseded"]
            .iter()
            .map(|outcome| {
                let label = format!("outcome=\"{outcome}\"");
                format!("{:.0} {outcome}", self.since(before, name, &label))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

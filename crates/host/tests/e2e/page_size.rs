//! The page size an integration chooses for a sync (`[integrations.<key>.syncs.<name>]
//! page_size`) is what the provider is asked for, whether the provider is built in or loaded
//! from its plugin (which parses its own copy of its spec, so the size must reach it with the
//! run).

use crate::plugins::load_from_plugin;
use crate::support::World;
use crate::syncs::{emulator_ids, finished_run, ids, outcome, records, trigger};

/// Two full pages of 1,000 and one of 500; pages of the provider's default 100 would be 25.
const PEOPLE: usize = 2_500;

/// The people sync on with pages of 1,000 (hourly: it runs once when the account is connected,
/// then only when triggered), the others off.
const PAGES_OF_1000: &str = "
[integrations.microsoft.syncs.people]
enabled = true
frequency = \"1h\"
page_size = 1000

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false
";

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_with_page_size_1000_reads_pages_of_1000_built_in_and_as_a_plugin() {
    let mut world = World::start_with(PEOPLE, PAGES_OF_1000).await;
    world.control.reset_counters().await.unwrap();
    world.connect("microsoft", "p1").await;
    let first = finished_run(&world, "p1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    assert_eq!(first["added"].as_u64(), Some(PEOPLE as u64), "{first}");
    assert_eq!(
        world.graph_requests("/v1.0/me/people").await,
        3,
        "pages of 1,000"
    );
    let stored = records(&world, "p1", "").await;
    assert_eq!(stored.len(), PEOPLE);
    assert_eq!(ids(&stored), emulator_ids(&world).await);

    // The same provider as a plugin: a full crawl in three requests, nothing changed.
    load_from_plugin(&mut world, "microsoft-people").await;
    world.control.reset_counters().await.unwrap();
    trigger(&world, "p1", "full").await;
    let second = finished_run(&world, "p1", first["started_at"].as_str().unwrap()).await;
    assert_eq!(
        outcome(&second),
        (Some("success"), Some(0), Some(0), Some(0)),
        "{second}"
    );
    assert_eq!(
        world.graph_requests("/v1.0/me/people").await,
        3,
        "pages of 1,000 from the plugin"
    );
    assert_eq!(
        ids(&records(&world, "p1", "").await),
        emulator_ids(&world).await
    );
}

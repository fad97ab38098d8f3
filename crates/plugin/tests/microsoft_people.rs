//! The Microsoft People provider loaded as a plugin does exactly what the built-in one does:
//! same spec, and for every sync and action against the emulator the same records, deletions,
//! checkpoints, logs, outputs and errors.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use plugboard_core::http::{ApiClient, api_base_url, http_client};
use plugboard_core::oauth::{OAuthClient, OAuthClientConfig};
use plugboard_core::testkit::{TestContext, block_on, connect_auto_consent};
use plugboard_core::{Provider, ProviderError, SyncMode};
use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, RunningEmulator,
    UpdateSettings,
};
use plugboard_microsoft_people::{MicrosoftPeople, Person};
use plugboard_plugin::LoadedProvider;
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";
const MODEL: &str = "Person";

struct World {
    emulator: RunningEmulator,
    control: ControlClient,
    setup: DemoSetup,
    built_in: MicrosoftPeople,
    plugin: LoadedProvider,
}

impl World {
    async fn start(people: usize) -> World {
        let emulator = Emulator::start(EmulatorOptions::default())
            .await
            .expect("emulator starts");
        let control = emulator.control();
        let setup = control
            .setup_demo(DemoOptions {
                redirect_uris: vec![REDIRECT_URI.to_owned()],
                people,
                seed: 7,
            })
            .await
            .expect("demo world");
        World {
            emulator,
            control,
            setup,
            built_in: MicrosoftPeople::new().expect("valid spec"),
            plugin: plugboard_plugin::load(common::plugin("microsoft-people"))
                .expect("the plugin loads"),
        }
    }

    /// Connects the demo user once more: a fresh connection with its own records.
    async fn connect(&self) -> TestContext {
        let config = BTreeMap::from([("tenant".to_owned(), self.setup.tenant_id.clone())]);
        let spec = self.built_in.spec();
        let oauth = spec.auth.as_oauth2().expect("oauth2").clone();
        let base = self.emulator.url();
        let client = OAuthClient::new(
            http_client(),
            OAuthClientConfig {
                scopes: oauth.default_scopes(),
                spec: oauth,
                client_id: self.setup.client_id.clone(),
                client_secret: self.setup.client_secret.clone().into(),
                redirect_uri: REDIRECT_URI.to_owned(),
                authorization_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/authorize")),
                token_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/token")),
                admin_consent_url: None,
            },
        );
        let tokens = connect_auto_consent(&http_client(), &client, &config, &[])
            .await
            .expect("the demo user connects");
        let mut api = spec.api.clone();
        api.base_url = base;
        let base_url = api_base_url(&api, &config).expect("emulator URL");
        TestContext::new(
            ApiClient::new(http_client(), &api, base_url),
            tokens.access_token,
        )
        .with_connection_config(config)
    }

    /// One context per provider, each connected on its own.
    async fn pair(&self) -> Pair<'_> {
        Pair {
            world: self,
            built_in: self.connect().await,
            plugin: self.connect().await,
        }
    }
}

/// The same connection twice: once for the built-in provider, once for the plugin.
struct Pair<'w> {
    world: &'w World,
    built_in: TestContext,
    plugin: TestContext,
}

impl Pair<'_> {
    /// Runs the sync with both providers and returns both outcomes.
    async fn sync(&self, mode: SyncMode) -> [Result<(), ProviderError>; 2] {
        self.built_in.start_run(mode, None);
        self.plugin.start_run(mode, None);
        [
            self.world.built_in.run_sync("people", &self.built_in).await,
            self.world.plugin.run_sync("people", &self.plugin).await,
        ]
    }

    async fn action(&self, name: &str, input: Value) -> [Result<Value, ProviderError>; 2] {
        [
            self.world
                .built_in
                .run_action(name, input.clone(), &self.built_in)
                .await,
            self.world
                .plugin
                .run_action(name, input, &self.plugin)
                .await,
        ]
    }

    /// Everything a sync leaves behind, as the host would keep it.
    fn assert_same_state(&self) {
        let [a, b] = [&self.built_in, &self.plugin];
        assert_eq!(a.records(MODEL), b.records(MODEL));
        assert_eq!(a.deleted_ids(MODEL), b.deleted_ids(MODEL));
        assert_eq!(a.crawl_in_progress(MODEL), b.crawl_in_progress(MODEL));
        assert_eq!(a.current_checkpoint(), b.current_checkpoint());
        assert_eq!(a.logs(), b.logs());
        assert_eq!(a.save_counts(), b.save_counts());
    }
}

fn same<T: PartialEq + std::fmt::Debug>([built_in, plugin]: [T; 2]) -> T {
    assert_eq!(
        built_in, plugin,
        "the plugin differs from the built-in provider"
    );
    plugin
}

#[test]
fn the_plugin_has_the_built_in_spec() {
    let built_in = MicrosoftPeople::new().unwrap();
    let plugin = plugboard_plugin::load(common::plugin("microsoft-people")).unwrap();
    assert_eq!(plugin.spec(), built_in.spec());
    assert_eq!(plugin.path(), common::plugin("microsoft-people"));
}

#[test]
fn a_full_people_sync_through_the_plugin_matches_the_built_in_one() {
    block_on(async {
        let world = World::start(1000).await;
        let pair = world.pair().await;

        same(pair.sync(SyncMode::Incremental).await).expect("first sync");
        pair.assert_same_state();
        let stored = pair.plugin.records(MODEL);
        assert_eq!(stored.len(), 1000);
        let graph = world.control.people(&world.setup.user_id).await.unwrap();
        let expected: BTreeMap<String, Value> = graph
            .iter()
            .map(|p| {
                let person = Person::from_graph(&serde_json::to_value(p).unwrap()).unwrap();
                (person.id.clone(), serde_json::to_value(person).unwrap())
            })
            .collect();
        let stored: BTreeMap<String, Value> = stored.into_iter().map(|r| (r.id, r.data)).collect();
        assert_eq!(stored, expected);

        // Changes in Graph, then a second crawl: updates and deletions match too.
        let user = &world.setup.user_id;
        world
            .control
            .update_person(
                user,
                &graph[3].id,
                &json!({"jobTitle": "Chief Cartographer"}),
            )
            .await
            .unwrap();
        world
            .control
            .remove_person(user, &graph[0].id)
            .await
            .unwrap();
        world
            .control
            .add_person(
                user,
                &json!({"id": "AAMkAGNew+Contact/Id==", "displayName": "Zoë"}),
            )
            .await
            .unwrap();
        same(pair.sync(SyncMode::Incremental).await).expect("second sync");
        pair.assert_same_state();
        assert_eq!(pair.plugin.deleted_ids(MODEL), [graph[0].id.clone()]);
    })
}

#[test]
fn a_crawl_stopped_half_way_resumes_the_same_way_through_the_plugin() {
    block_on(async {
        let world = World::start(500).await;
        let pair = world.pair().await;
        pair.built_in.fail_saves_after(2);
        pair.plugin.fail_saves_after(2);

        let stopped = same(pair.sync(SyncMode::Incremental).await).unwrap_err();
        assert!(
            stopped.message.contains("simulated storage failure"),
            "{stopped}"
        );
        pair.assert_same_state();
        assert!(pair.plugin.crawl_in_progress(MODEL));

        same(pair.sync(SyncMode::Incremental).await).expect("resumed sync");
        pair.assert_same_state();
        assert_eq!(pair.plugin.records(MODEL).len(), 500);

        same(pair.sync(SyncMode::Full).await).expect("full sync");
        pair.assert_same_state();
    })
}

#[test]
fn actions_and_their_errors_match_through_the_plugin() {
    block_on(async {
        let world = World::start(200).await;
        let pair = world.pair().await;
        let people = world.control.people(&world.setup.user_id).await.unwrap();
        let user = people
            .iter()
            .find(|p| p.subclass() == Some("OrganizationUser"))
            .expect("seeded users");
        let name = user.display_name.value().expect("users have names").clone();

        let found = same(
            pair.action("search-people", json!({"query": name, "top": 5}))
                .await,
        )
        .expect("search");
        assert!(!found["people"].as_array().unwrap().is_empty(), "{found}");

        for (action, input) in [
            ("search-people", json!({"query": "  "})),
            ("list-user-people", json!({"user": "../me"})),
            ("list-user-people", json!({"user": "nobody@example.com"})),
            ("send-mail", json!({})),
        ] {
            same(pair.action(action, input).await).unwrap_err();
        }
        let unknown = [
            world.built_in.run_sync("contacts", &pair.built_in).await,
            world.plugin.run_sync("contacts", &pair.plugin).await,
        ];
        same(unknown).unwrap_err();
    })
}

/// A host drops a run it gives up on (a timeout, a shutdown): the plugin's future, the
/// provider's and the host's context future inside it are dropped across the boundary while a
/// request is in flight, and the provider goes on serving.
#[test]
fn a_run_the_host_drops_mid_request_leaves_the_plugin_serving() {
    block_on(async {
        let world = World::start(300).await;
        let pair = world.pair().await;
        let slow = UpdateSettings {
            graph_latency_ms: Some(400),
            ..UpdateSettings::default()
        };
        world.control.update_settings(&slow).await.unwrap();
        pair.plugin.start_run(SyncMode::Incremental, None);
        let run = world.plugin.run_sync("people", &pair.plugin);
        let outcome = tokio::time::timeout(Duration::from_millis(100), run).await;
        assert!(outcome.is_err(), "the run was still waiting for Graph");
        assert!(pair.plugin.crawl_in_progress(MODEL));
        assert!(pair.plugin.records(MODEL).is_empty());

        let fast = UpdateSettings {
            graph_latency_ms: Some(0),
            ..UpdateSettings::default()
        };
        world.control.update_settings(&fast).await.unwrap();
        same(pair.sync(SyncMode::Incremental).await).expect("the next run");
        assert_eq!(pair.plugin.records(MODEL), pair.built_in.records(MODEL));
        assert_eq!(pair.plugin.records(MODEL).len(), 300);
    })
}

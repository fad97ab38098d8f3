//! The provider against the emulator over real HTTP: OAuth through the engine, Graph through
//! the test kit's context, records and checkpoints kept the way the host keeps them.

use std::collections::{BTreeMap, BTreeSet};

use plugboard_core::http::{ApiClient, api_base_url, http_client};
use plugboard_core::oauth::{OAuthClient, OAuthClientConfig, parse_admin_consent_callback};
use plugboard_core::testkit::{TestContext, block_on, connect_auto_consent};
use plugboard_core::{Context, ErrorKind, HttpRequest, Provider, ProviderError, SyncMode};
use plugboard_emulator::{
    ControlClient, CreateUser, DemoOptions, DemoSetup, Emulator, EmulatorOptions, FaultKind,
    FaultRule, RunningEmulator,
};
use plugboard_microsoft_people::{MicrosoftPeople, Person};
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";
const MODEL: &str = "Person";
const ME_PEOPLE: &str = "/v1.0/me/people";

/// One emulator with the demo world (a tenant, an app, a user with seeded people) and the
/// provider, plus the OAuth engine pointed at the emulator.
struct World {
    emulator: RunningEmulator,
    control: ControlClient,
    setup: DemoSetup,
    provider: MicrosoftPeople,
    connection_config: BTreeMap<String, String>,
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
        let connection_config = BTreeMap::from([("tenant".to_owned(), setup.tenant_id.clone())]);
        World {
            emulator,
            control,
            setup,
            provider: MicrosoftPeople::new().expect("valid spec"),
            connection_config,
        }
    }

    /// The engine for this integration asking for `scopes`, with the spec's Microsoft URLs
    /// swapped for the emulator's.
    fn oauth(&self, scopes: Vec<String>) -> OAuthClient {
        let base = self.emulator.url();
        OAuthClient::new(
            http_client(),
            OAuthClientConfig {
                spec: self
                    .provider
                    .spec()
                    .auth
                    .as_oauth2()
                    .expect("oauth2")
                    .clone(),
                client_id: self.setup.client_id.clone(),
                client_secret: self.setup.client_secret.clone().into(),
                redirect_uri: REDIRECT_URI.to_owned(),
                authorization_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/authorize")),
                token_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/token")),
                admin_consent_url: Some(format!("{base}/{{tenant}}/v2.0/adminconsent")),
                scopes,
            },
        )
    }

    /// Connects the demo user, asking for the spec's default scopes plus `extra`, and returns a
    /// context for that connection.
    async fn connect(&self, extra: &[&str]) -> TestContext {
        let mut scopes = self
            .provider
            .spec()
            .auth
            .as_oauth2()
            .expect("oauth2")
            .default_scopes();
        scopes.extend(extra.iter().map(|s| s.to_string()));
        self.connect_with(scopes).await
    }

    async fn connect_with(&self, scopes: Vec<String>) -> TestContext {
        let spec = self.provider.spec();
        let tokens = connect_auto_consent(
            &http_client(),
            &self.oauth(scopes),
            &self.connection_config,
            &[],
        )
        .await
        .expect("the demo user connects");
        let mut api = spec.api.clone();
        api.base_url = self.emulator.url();
        let base_url = api_base_url(&api, &self.connection_config).expect("emulator URL");
        TestContext::new(
            ApiClient::new(http_client(), &api, base_url),
            tokens.access_token,
        )
        .with_connection_config(self.connection_config.clone())
    }

    /// An administrator of the demo tenant grants People.Read.All through the admin consent
    /// URL the engine builds from the spec.
    async fn grant_admin_consent(&self) {
        let oauth = self.oauth(vec!["People.Read.All".to_owned()]);
        let url = oauth
            .admin_consent_url(&self.connection_config, "consent-state")
            .expect("admin consent URL");
        let response = http_client()
            .get(&url)
            .send()
            .await
            .expect("admin consent answers");
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a redirect back to the app")
            .to_owned();
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let consent = parse_admin_consent_callback(query).expect("consent granted");
        assert_eq!(consent.tenant, self.setup.tenant_id);
    }

    async fn sync(&self, ctx: &TestContext, mode: SyncMode) -> Result<(), ProviderError> {
        ctx.start_run(mode, None);
        self.provider.run_sync("people", ctx).await
    }

    /// What Graph holds for `user`, as records: the expectation every sync is held to.
    async fn expected_records(&self, user: &str) -> BTreeMap<String, Value> {
        let people = self.control.people(user).await.expect("people");
        people
            .iter()
            .map(|p| {
                let person = Person::from_graph(&serde_json::to_value(p).unwrap()).unwrap();
                (person.id.clone(), serde_json::to_value(person).unwrap())
            })
            .collect()
    }

    async fn graph_requests(&self, path: &str) -> u64 {
        let counters = self.control.counters().await.expect("counters");
        counters.graph_requests.get(path).copied().unwrap_or(0)
    }
}

fn records(ctx: &TestContext) -> BTreeMap<String, Value> {
    ctx.records(MODEL)
        .into_iter()
        .map(|r| (r.id, r.data))
        .collect()
}

fn checkpoint(ctx: &TestContext) -> Value {
    ctx.current_checkpoint().expect("a checkpoint was saved")
}

#[test]
fn a_crawl_of_1000_people_stores_each_by_its_graph_id() {
    block_on(async {
        let world = World::start(1000).await;
        let ctx = world.connect(&[]).await;
        world.control.reset_counters().await.unwrap();

        world.sync(&ctx, SyncMode::Incremental).await.expect("sync");

        let stored = records(&ctx);
        assert_eq!(stored.len(), 1000);
        assert_eq!(stored, world.expected_records(&world.setup.user_id).await);
        assert!(
            stored.keys().any(|id| id.contains(['+', '/', '='])),
            "personal contacts' Exchange ids survive byte for byte"
        );
        assert_eq!(world.graph_requests(ME_PEOPLE).await, 10, "pages of 100");
        assert_eq!(ctx.save_counts().calls, 10, "one batch per page");
        assert!(ctx.deleted_ids(MODEL).is_empty());
        assert!(!ctx.crawl_in_progress(MODEL));
        assert_eq!(
            checkpoint(&ctx),
            json!({"next": null, "pages": 10, "records": 1000})
        );
    })
}

/// The host identifies the connected account with the spec's `[account]` section; it must
/// point at the right fields of Graph's `/me`.
#[test]
fn the_account_section_identifies_the_connected_user() {
    block_on(async {
        let world = World::start(0).await;
        let ctx = world.connect(&[]).await;
        let account = world.provider.spec().account.clone().expect("declared");

        let me = ctx
            .get_json(HttpRequest::get(&account.path))
            .await
            .expect("/me");

        let read = |pointer: &str| {
            me.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        assert_eq!(read(&account.id), Some(world.setup.user_id.clone()));
        assert_eq!(
            account.email.as_deref().and_then(read),
            Some(world.setup.user_principal_name.clone())
        );
        assert!(account.display_name.as_deref().and_then(read).is_some());
    })
}

#[test]
fn the_next_run_reflects_added_changed_and_removed_people() {
    block_on(async {
        let world = World::start(250).await;
        let user = world.setup.user_id.clone();
        let ctx = world.connect(&[]).await;
        world
            .sync(&ctx, SyncMode::Incremental)
            .await
            .expect("first sync");
        assert_eq!(records(&ctx).len(), 250);

        let people = world.control.people(&user).await.unwrap();
        let changed = people[3].id.clone();
        let removed: BTreeSet<String> = [people[0].id.clone(), people[240].id.clone()].into();
        world
            .control
            .update_person(
                &user,
                &changed,
                &json!({"jobTitle": "Chief Cartographer", "department": null}),
            )
            .await
            .unwrap();
        for id in &removed {
            world.control.remove_person(&user, id).await.unwrap();
        }
        let added = world
            .control
            .add_person(
                &user,
                &json!({
                    "id": "AAMkAGNew+Contact/Id==",
                    "displayName": "Zoë Newcomer",
                    "personType": {"class": "Person", "subclass": "PersonalContact"}
                }),
            )
            .await
            .unwrap();

        world
            .sync(&ctx, SyncMode::Incremental)
            .await
            .expect("second sync");

        let stored = records(&ctx);
        assert_eq!(stored, world.expected_records(&user).await);
        assert_eq!(stored.len(), 249);
        assert_eq!(stored[&changed]["job_title"], "Chief Cartographer");
        assert_eq!(stored[&changed]["department"], Value::Null);
        assert_eq!(stored[&added.id]["display_name"], "Zoë Newcomer");
        let deleted: BTreeSet<String> = ctx.deleted_ids(MODEL).into_iter().collect();
        assert_eq!(deleted, removed);
    })
}

#[test]
fn a_crawl_stopped_half_way_resumes_and_deletes_only_once_complete() {
    block_on(async {
        let world = World::start(1000).await;
        let user = world.setup.user_id.clone();
        let ctx = world.connect(&[]).await;
        world
            .sync(&ctx, SyncMode::Incremental)
            .await
            .expect("first sync");
        let gone = world.control.people(&user).await.unwrap()[999].id.clone();
        world.control.remove_person(&user, &gone).await.unwrap();

        // The fifth page's save fails: the run stops with four pages of the new crawl done.
        ctx.fail_saves_after(4);
        let error = world.sync(&ctx, SyncMode::Incremental).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Storage);
        assert!(ctx.crawl_in_progress(MODEL));
        assert!(
            ctx.deleted_ids(MODEL).is_empty(),
            "a partial crawl deletes nothing"
        );
        assert!(records(&ctx).contains_key(&gone));
        let stopped = checkpoint(&ctx);
        assert_eq!(stopped["pages"], 4);
        let next = stopped["next"]["url"]
            .as_str()
            .expect("the next page's request");
        assert!(next.contains("skip=400"), "{next}");

        world.control.reset_counters().await.unwrap();
        world
            .sync(&ctx, SyncMode::Incremental)
            .await
            .expect("resumed sync");

        assert_eq!(
            world.graph_requests(ME_PEOPLE).await,
            6,
            "pages 5 to 10 only"
        );
        assert_eq!(ctx.deleted_ids(MODEL), [gone]);
        assert_eq!(records(&ctx), world.expected_records(&user).await);
        let clean = world.connect(&[]).await;
        world
            .sync(&clean, SyncMode::Incremental)
            .await
            .expect("clean sync");
        assert_eq!(records(&ctx), records(&clean));
        assert_eq!(checkpoint(&ctx)["next"], Value::Null);
    })
}

#[test]
fn a_full_run_starts_over_even_mid_crawl() {
    block_on(async {
        let world = World::start(300).await;
        let ctx = world.connect(&[]).await;
        ctx.fail_saves_after(1);
        world.sync(&ctx, SyncMode::Incremental).await.unwrap_err();
        assert_eq!(checkpoint(&ctx)["pages"], 1);

        world.control.reset_counters().await.unwrap();
        world.sync(&ctx, SyncMode::Full).await.expect("full sync");

        assert_eq!(world.graph_requests(ME_PEOPLE).await, 3);
        assert_eq!(
            records(&ctx),
            world.expected_records(&world.setup.user_id).await
        );
    })
}

#[test]
fn throttling_and_transient_failures_are_retried_as_the_spec_says() {
    block_on(async {
        let world = World::start(300).await;
        let ctx = world.connect(&[]).await;
        for status in [429, 503, 504] {
            let rule = FaultRule {
                method: None,
                path_prefix: ME_PEOPLE.to_owned(),
                count: 1,
                kind: FaultKind::Status {
                    status,
                    retry_after_secs: Some(0),
                },
            };
            world.control.add_fault(&rule).await.unwrap();
        }
        world.control.reset_counters().await.unwrap();

        world.sync(&ctx, SyncMode::Incremental).await.expect("sync");

        assert_eq!(
            world.graph_requests(ME_PEOPLE).await,
            3 + 3,
            "three pages, three retries"
        );
        assert_eq!(
            records(&ctx),
            world.expected_records(&world.setup.user_id).await
        );
    })
}

#[test]
fn without_people_read_graph_refusals_say_what_to_grant() {
    block_on(async {
        let world = World::start(20).await;
        let ctx = world
            .connect_with(vec!["User.Read".to_owned(), "offline_access".to_owned()])
            .await;

        let sync = world.sync(&ctx, SyncMode::Incremental).await.unwrap_err();
        let search = world
            .provider
            .run_action("search-people", json!({"query": "ann"}), &ctx)
            .await
            .unwrap_err();
        for error in [sync, search] {
            assert_eq!(error.status(), Some(403));
            assert!(error.message.contains("needs People.Read;"), "{error}");
            assert!(
                error.message.contains("ErrorAccessDenied"),
                "Graph's code is kept: {error}"
            );
        }
        assert!(ctx.records(MODEL).is_empty());
    })
}

#[test]
fn search_people_finds_a_seeded_person_by_name() {
    block_on(async {
        let world = World::start(200).await;
        let ctx = world.connect(&[]).await;
        let people = world.control.people(&world.setup.user_id).await.unwrap();
        let wanted = people
            .iter()
            .find(|p| p.subclass() == Some("OrganizationUser"))
            .expect("seeded users");
        let name = wanted
            .display_name
            .value()
            .expect("users have names")
            .clone();

        let output = world
            .provider
            .run_action("search-people", json!({"query": name, "top": 50}), &ctx)
            .await
            .expect("search");

        let found: Vec<Person> = serde_json::from_value(output["people"].clone()).unwrap();
        assert!(found.iter().any(|p| p.id == wanted.id), "{name} is found");
        assert!(found.len() <= 50);
        for person in &found {
            let matches = [&person.display_name, &person.given_name, &person.surname]
                .into_iter()
                .flatten()
                .chain(person.emails.iter().map(|e| &e.address))
                .any(|text| text.to_lowercase().contains(&name.to_lowercase()));
            assert!(matches, "{person:?} does not match {name}");
        }
    })
}

#[test]
fn bad_action_input_is_refused_naming_the_field() {
    block_on(async {
        let world = World::start(0).await;
        let ctx = world.connect(&[]).await;
        world.control.reset_counters().await.unwrap();
        for (action, input, field) in [
            ("search-people", json!({}), "`query` required"),
            (
                "search-people",
                json!({"query": "  "}),
                "`query` must not be empty",
            ),
            (
                "search-people",
                json!({"query": "ann", "top": 0}),
                "`top` must be a whole number",
            ),
            (
                "search-people",
                json!({"query": "ann", "limit": 5}),
                "`limit` unknown field",
            ),
            (
                "list-user-people",
                json!({"user": 42}),
                "`user` must be a string",
            ),
            (
                "list-user-people",
                json!({"user": "../me"}),
                "`user` must be a user id",
            ),
            ("list-user-people", json!("alex"), "must be a JSON object"),
            (
                "search-people",
                json!({"query": "a".repeat(70_000)}),
                "`query` must be at most 1000 characters",
            ),
        ] {
            let error = world
                .provider
                .run_action(action, input, &ctx)
                .await
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidInput, "{error}");
            assert!(error.message.contains(field), "{action}: {error}");
        }
        let counters = world.control.counters().await.unwrap();
        assert!(
            counters.graph_requests.is_empty(),
            "refused before any request: {counters:?}"
        );
    })
}

#[test]
fn list_user_people_needs_people_read_all_with_admin_consent() {
    block_on(async {
        let world = World::start(0).await;
        let colleague = world
            .control
            .create_user(&CreateUser {
                tenant: world.setup.tenant_id.clone(),
                ..CreateUser::default()
            })
            .await
            .unwrap();
        world
            .control
            .seed_people(&colleague.id, 40, 11)
            .await
            .unwrap();
        let input = json!({"user": colleague.user_principal_name, "top": 25});

        // Asked for, but a user cannot grant it: the token comes without it.
        let ctx = world.connect(&["People.Read.All"]).await;
        let error = world
            .provider
            .run_action("list-user-people", input.clone(), &ctx)
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(403));
        assert!(
            error
                .message
                .contains("People.Read.All needs admin consent"),
            "{error}"
        );

        world.grant_admin_consent().await;
        let ctx = world.connect(&["People.Read.All"]).await;
        let output = world
            .provider
            .run_action("list-user-people", input, &ctx)
            .await
            .expect("allowed after admin consent");
        let found: Vec<Person> = serde_json::from_value(output["people"].clone()).unwrap();
        let most_relevant: Vec<Person> = world.control.people(&colleague.id).await.unwrap()[..25]
            .iter()
            .map(|p| Person::from_graph(&serde_json::to_value(p).unwrap()).unwrap())
            .collect();
        assert_eq!(
            found, most_relevant,
            "the colleague's 25 most relevant people, in order"
        );

        let error = world
            .provider
            .run_action(
                "list-user-people",
                json!({"user": "nobody@example.com"}),
                &ctx,
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
        assert!(
            error.message.contains("no user `nobody@example.com`"),
            "{error}"
        );
    })
}

#[test]
fn unknown_syncs_and_actions_are_not_found() {
    block_on(async {
        let world = World::start(0).await;
        let ctx = world.connect(&[]).await;
        let sync = world.provider.run_sync("contacts", &ctx).await.unwrap_err();
        let action = world
            .provider
            .run_action("send-mail", json!({}), &ctx)
            .await
            .unwrap_err();
        for error in [sync, action] {
            assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
        }
    })
}

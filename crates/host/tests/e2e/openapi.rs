//! The API description against the running server: every operation `/openapi.json` documents
//! is called, and every answer is held to it — a documented status, and a body valid against
//! that status's schema (`$ref`s resolved in the document's components) — error answers
//! included. The test fails if an operation it describes was never called.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jsonschema::Draft;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::api_keys::APIM_QUERY_SPEC;
use crate::support::{API_KEY, Browser, KEY_1, World, webhook_receiver};
use crate::syncs::{finished_run, syncing};

/// The methods OpenAPI names, as its path items spell them.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The running server's description of itself, and which of its operations were called with
/// which answers.
struct Described {
    document: Value,
    base: String,
    http: reqwest::Client,
    /// `(method, path template, status)` of every answer checked.
    answered: BTreeSet<(String, String, u16)>,
}

/// One checked answer.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    body: Value,
}

impl Described {
    /// Fetches `/openapi.json`, without the API key, which it must not need.
    async fn fetch(base: &str) -> Described {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let document: Value = response.json().await.unwrap();
        assert!(
            document["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            document["openapi"]
        );
        Described {
            document,
            base: base.to_owned(),
            http,
            answered: BTreeSet::new(),
        }
    }

    /// A request without the API key.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request with the API key.
    fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(API_KEY)
    }

    /// Sends the request and checks the answer against the operation its method and path
    /// match: the status must be documented (or fall under `default`), and the body must be
    /// of a documented media type and valid against its schema.
    async fn call(&mut self, request: RequestBuilder) -> Answer {
        let request = request.build().unwrap();
        let method = request.method().as_str().to_ascii_lowercase();
        let template = self.template(request.url().path());
        let response = self.http.execute(request).await.unwrap();
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let (media, location, cookie) =
            (header(CONTENT_TYPE), header(LOCATION), header(SET_COOKIE));
        let text = response.text().await.unwrap();
        let what = format!(
            "{} {template} answered {status}: {text}",
            method.to_uppercase()
        );
        self.check(&method, &template, status, media.as_deref(), &text, &what);
        self.answered.insert((method, template, status.as_u16()));
        Answer {
            status,
            location,
            cookie,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// [`Described::call`], checked to answer `expected`.
    async fn expect(&mut self, expected: StatusCode, request: RequestBuilder) -> Answer {
        let answer = self.call(request).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        answer
    }

    /// The documented path template that `path` is an instance of: literal segments equal, a
    /// `{parameter}` standing for one segment, or for all the rest when it is the last.
    fn template(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        let matches = |template: &str| {
            let parts: Vec<&str> = template.split('/').collect();
            let rest = parts.last().is_some_and(|p| p.starts_with('{'));
            let lengths = segments.len() == parts.len() || (rest && segments.len() > parts.len());
            lengths
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || (part.starts_with('{') && !segment.is_empty())
                })
        };
        let templates: Vec<&String> = self
            .paths()
            .keys()
            .filter(|template| matches(template))
            .collect();
        match templates.as_slice() {
            [template] => (*template).clone(),
            other => panic!("{path} matches {other:?} of the documented paths"),
        }
    }

    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.document["paths"].as_object().unwrap()
    }

    /// Every documented operation: its method, path template and operation object.
    fn operations(&self) -> Vec<(String, String, Value)> {
        let mut operations = Vec::new();
        for (template, item) in self.paths() {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    operations.push((method.to_owned(), template.clone(), operation.clone()));
                }
            }
        }
        operations
    }

    /// A `$ref` (`#/components/…`) followed to what it names; anything else as it is.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("a local reference");
                let target = self.document.pointer(pointer);
                self.resolve(target.unwrap_or_else(|| panic!("{reference} names nothing")))
            }
            None => value,
        }
    }

    fn check(
        &self,
        method: &str,
        template: &str,
        status: StatusCode,
        media: Option<&str>,
        text: &str,
        what: &str,
    ) {
        let operation = &self.paths()[template][method];
        assert!(operation.is_object(), "undocumented operation: {what}");
        let responses = &operation["responses"];
        let range = format!("{}XX", status.as_u16() / 100);
        let response = [status.as_str(), &range, "default"]
            .into_iter()
            .find_map(|key| responses.get(key))
            .unwrap_or_else(|| panic!("undocumented status: {what}"));
        let content = self.resolve(response)["content"].as_object();
        if method == "head" {
            return; // no body, whatever the media type
        }
        let Some(content) = content.filter(|content| !content.is_empty()) else {
            assert!(text.is_empty(), "a body where none is documented: {what}");
            return;
        };
        let media = media.unwrap_or_default().split(';').next().unwrap().trim();
        let described = content
            .get(media)
            .or_else(|| content.get("*/*"))
            .unwrap_or_else(|| panic!("undocumented media type `{media}`: {what}"));
        let Some(schema) = described.get("schema") else {
            return;
        };
        let instance = if media == "application/json" {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {what}"))
        } else {
            Value::String(text.to_owned())
        };
        let problems = self.problems(schema, &instance);
        assert!(problems.is_empty(), "{problems:#?}\n{what}");
    }

    /// What is wrong with `instance` by `schema`, whose references point into the document's
    /// components. Formats (`date-time`, …) are checked too.
    fn problems(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let rooted = json!({"allOf": [schema], "components": self.document["components"]});
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&rooted)
            .unwrap_or_else(|e| panic!("an invalid schema ({e}): {schema}"));
        validator
            .iter_errors(instance)
            .map(|error| format!("{} (at `{}`)", error, error.instance_path()))
            .collect()
    }

    /// The documented operations never called.
    fn uncalled(&self) -> Vec<String> {
        self.operations()
            .into_iter()
            .filter(|(method, template, _)| {
                !self
                    .answered
                    .iter()
                    .any(|(m, t, _)| m == method && t == template)
            })
            .map(|(method, template, _)| format!("{} {template}", method.to_uppercase()))
            .collect()
    }
}

/// A path of the template with harmless values in its parameters.
fn instance(template: &str) -> String {
    template
        .replace("{connection_id}", "nobody")
        .replace("{action}", "search-people")
        .replace("{integration}", "microsoft")
        .replace("{path}", "v1.0/me")
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.to_ascii_uppercase().as_bytes()).unwrap()
}

/// Whether the operation takes a JSON body.
fn takes_json(operation: &Value) -> bool {
    operation["requestBody"]["content"]["application/json"].is_object()
}

/// The world: the microsoft integration syncing, webhooks delivered to a receiver, and an
/// API-key integration whose key is tried on an account endpoint.
async fn world() -> World {
    let (hooks, _) = webhook_receiver().await;
    let mut world = World::start_with(30, &syncing(&hooks)).await;
    // The gateway's URL is the emulator's, known once it runs: a restart adds the integration.
    let specs = world.dir.0.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(specs.join("apim-query.toml"), APIM_QUERY_SPEC).unwrap();
    let extra = format!(
        "{syncing}\n[[providers]]\nspec_dir = {specs:?}\n\n\
         [integrations.keys]\nprovider = \"apim-query\"\n\n\
         [integrations.keys.overrides]\napi_base_url = \"{emulator}/apim\"\n",
        syncing = syncing(&hooks),
        specs = specs.display().to_string(),
        emulator = world.emulator.url(),
    );
    let config = world.config_with(&["k1"], &extra);
    world.restart_on(&config, &[("k1", KEY_1)]).await;
    world
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_answers_as_documented() {
    let world = world().await;
    let mut api = Described::fetch(&world.host.url).await;
    let operations = api.operations();

    // Every authenticated operation refuses a request without the key, or with a wrong one;
    // every other one answers without it (a 401 would be undocumented). Every JSON body that
    // is not of its schema, not JSON, or not sent as JSON is refused.
    for (name, template, operation) in &operations {
        let path = instance(template);
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if secured {
            api.expect(StatusCode::UNAUTHORIZED, api.request(method(name), &path))
                .await;
            let wrong = api
                .request(method(name), &path)
                .header(AUTHORIZATION, "Bearer not-the-key");
            api.expect(StatusCode::UNAUTHORIZED, wrong).await;
            // The right key forgets this address's wrong ones, which would otherwise slow it
            // down after a few (429 `too_many_failed_attempts`, see `limits.rs`).
            api.expect(StatusCode::OK, api.api(Method::GET, "/integrations"))
                .await;
        } else {
            api.call(api.request(method(name), &path)).await;
        }
        if takes_json(operation) {
            let unknown = api
                .api(method(name), &path)
                .json(&json!({"unexpected": true}));
            api.expect(StatusCode::UNPROCESSABLE_ENTITY, unknown).await;
            let plain = api.api(method(name), &path).body("{}");
            api.expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, plain).await;
            let broken = api
                .api(method(name), &path)
                .header(CONTENT_TYPE, "application/json")
                .body("{");
            api.expect(StatusCode::BAD_REQUEST, broken).await;
        }
    }

    api.expect(StatusCode::OK, api.request(Method::GET, "/health"))
        .await;
    api.expect(StatusCode::OK, api.request(Method::GET, "/openapi.json"))
        .await;

    oauth_flows(&world, &mut api).await;
    connections(&world, &mut api).await;
    syncs_and_records(&world, &mut api).await;
    proxy(&world, &mut api).await;

    let uncalled = api.uncalled();
    assert!(uncalled.is_empty(), "never called: {uncalled:?}");
    for status in [401, 404, 422] {
        assert!(
            api.answered.iter().any(|(_, _, s)| *s == status),
            "no {status} was checked"
        );
    }
}

/// A connect session's token and link.
async fn session(api: &mut Described, body: Value) -> (String, String) {
    let answer = api
        .expect(
            StatusCode::CREATED,
            api.api(Method::POST, "/connect/sessions").json(&body),
        )
        .await;
    let field = |name: &str| answer.body[name].as_str().unwrap().to_owned();
    (field("token"), field("connect_url"))
}

/// The browser routes: the connect page and its Continue button, admin consent, and the
/// callback answering with a page and with a redirect to the application.
async fn oauth_flows(world: &World, api: &mut Described) {
    let missing = json!({"integration": "nowhere", "connection_id": "c1"});
    api.expect(
        StatusCode::NOT_FOUND,
        api.api(Method::POST, "/connect/sessions").json(&missing),
    )
    .await;
    let bad_id = json!({"integration": "microsoft", "connection_id": "a b"});
    api.expect(
        StatusCode::BAD_REQUEST,
        api.api(Method::POST, "/connect/sessions").json(&bad_id),
    )
    .await;

    let (token, link) = session(
        api,
        json!({"integration": "microsoft", "connection_id": "c1",
               "return_url": "http://localhost:3000/done"}),
    )
    .await;
    let page = api.expect(StatusCode::OK, api.http.get(&link)).await;
    assert!(
        page.body.as_str().unwrap().contains("Continue"),
        "{}",
        page.body
    );
    for (path, status) in [
        ("/oauth/assets/pages.css", StatusCode::OK),
        (
            "/oauth/connect/nowhere?session_token=x",
            StatusCode::NOT_FOUND,
        ),
        (
            "/oauth/connect/microsoft?session_token=x",
            StatusCode::BAD_REQUEST,
        ),
        ("/oauth/callback?state=unknown", StatusCode::BAD_REQUEST),
    ] {
        api.expect(status, api.request(Method::GET, path)).await;
    }
    let cont = api
        .request(Method::POST, "/oauth/connect/microsoft")
        .form(&[("session_token", &token)]);
    let started = api.expect(StatusCode::FOUND, cont).await;
    let done = callback(api, started).await;
    assert_eq!(done.status, StatusCode::FOUND);
    assert!(
        done.location
            .unwrap()
            .starts_with("http://localhost:3000/done?"),
        "back to the application"
    );

    let (token, _) = session(api, json!({"integration": "admin", "connection_id": "org"})).await;
    let consent = format!(
        "/oauth/admin-consent/admin?tenant={}&session_token={token}",
        world.demo.tenant_id
    );
    let started = api
        .expect(StatusCode::FOUND, api.request(Method::GET, &consent))
        .await;
    let done = callback(api, started).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let unknown = "/oauth/admin-consent/nowhere?tenant=x&session_token=x";
    api.expect(StatusCode::NOT_FOUND, api.request(Method::GET, unknown))
        .await;
}

/// Follows a started flow through the provider (the emulator) and calls the callback in the
/// browser that started it: the callback's answer.
async fn callback(api: &mut Described, started: Answer) -> Answer {
    let cookie = started.cookie.expect("the flow binds the browser");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let mut provider = Browser::new();
    let mut next = started.location.unwrap();
    for _ in 0..10 {
        if next.contains("/oauth/callback") {
            return api.call(api.http.get(&next).header(COOKIE, cookie)).await;
        }
        let response = provider.get(&next).await;
        assert!(
            response.status().is_redirection(),
            "{next}: {}",
            response.status()
        );
        next = response.headers()[LOCATION].to_str().unwrap().to_owned();
    }
    panic!("the provider never sent the browser back");
}

/// Connections made by OAuth and by API key: listed, shown with their credentials, deleted.
async fn connections(world: &World, api: &mut Described) {
    api.expect(StatusCode::OK, api.api(Method::GET, "/connections"))
        .await;
    api.expect(StatusCode::OK, api.api(Method::GET, "/integrations"))
        .await;
    for (path, status) in [
        ("/connections?integration=nowhere", StatusCode::NOT_FOUND),
        (
            "/connections?integration=microsoft&integration=admin",
            StatusCode::BAD_REQUEST,
        ),
        ("/connections/c1?integration=microsoft", StatusCode::OK),
        (
            "/connections/c1?integration=microsoft&refresh=true",
            StatusCode::OK,
        ),
        ("/connections/c1", StatusCode::BAD_REQUEST),
        (
            "/connections/nobody?integration=microsoft",
            StatusCode::NOT_FOUND,
        ),
    ] {
        api.expect(status, api.api(Method::GET, path)).await;
    }

    let subscription = world
        .control
        .create_subscription(&plugboard_emulator::CreateSubscription {
            name: Some("OpenAPI".to_owned()),
        })
        .await
        .unwrap();
    let create = |key: &str| json!({"integration": "keys", "connection_id": "k1", "credentials": {"api_key": key}});
    for (body, status) in [
        (create(&subscription.key), StatusCode::CREATED),
        (create(&subscription.key), StatusCode::OK),
        (create("not-a-key"), StatusCode::UNPROCESSABLE_ENTITY),
        (create("two words"), StatusCode::BAD_REQUEST),
    ] {
        api.expect(status, api.api(Method::POST, "/connections").json(&body))
            .await;
    }
    let shown = api
        .expect(
            StatusCode::OK,
            api.api(Method::GET, "/connections/k1?integration=keys"),
        )
        .await;
    assert_eq!(
        shown.body["credentials"]["api_key"],
        subscription.key.as_str()
    );
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        api.expect(
            status,
            api.api(Method::DELETE, "/connections/k1?integration=keys"),
        )
        .await;
    }
    api.expect(
        StatusCode::BAD_REQUEST,
        api.api(Method::DELETE, "/connections/k1"),
    )
    .await;
}

/// The sync controls, runs and status, records, webhook deliveries and actions, on the
/// connection the connect flow made.
async fn syncs_and_records(world: &World, api: &mut Described) {
    let first = finished_run(world, "c1", "").await;
    let control = |extra: Value| {
        let mut body =
            json!({"integration": "microsoft", "connection_id": "c1", "syncs": ["people"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (path, body, status) in [
        ("/syncs/pause", control(json!({})), StatusCode::OK),
        ("/syncs/start", control(json!({})), StatusCode::OK),
        (
            "/syncs/frequency",
            control(json!({"frequency": "2h"})),
            StatusCode::OK,
        ),
        (
            "/syncs/trigger",
            control(json!({"mode": "full"})),
            StatusCode::ACCEPTED,
        ),
        (
            "/syncs/pause",
            control(json!({"mode": "full"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/syncs/trigger",
            control(json!({"syncs": ["nothing"]})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/syncs/start",
            control(json!({"connection_id": "nobody"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "/syncs/frequency",
            json!({"integration": "microsoft", "frequency": "1h"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        api.expect(status, api.api(Method::POST, path).json(&body))
            .await;
    }
    finished_run(world, "c1", first["started_at"].as_str().unwrap()).await;
    delivered(api).await;

    let records = "/records?integration=microsoft&connection_id=c1&model=Person";
    for (path, status) in [
        (
            "/syncs/status?integration=microsoft".to_owned(),
            StatusCode::OK,
        ),
        (
            "/syncs/status?integration=nowhere".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/syncs/runs?integration=microsoft&connection_id=c1&sync=people".to_owned(),
            StatusCode::OK,
        ),
        (
            "/syncs/runs?integration=microsoft&connection_id=c1&sync=nothing".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (format!("{records}&limit=5"), StatusCode::OK),
        (format!("{records}&filter=added&ids=x,y"), StatusCode::OK),
        (format!("{records}&limit=0"), StatusCode::BAD_REQUEST),
        (
            "/records?integration=microsoft&connection_id=nobody&model=Person".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/records?integration=microsoft".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        api.expect(status, api.api(Method::GET, &path)).await;
    }
    let page = api
        .expect(
            StatusCode::OK,
            api.api(Method::GET, &format!("{records}&limit=5")),
        )
        .await;
    assert_eq!(
        page.body["records"].as_array().unwrap().len(),
        5,
        "{}",
        page.body
    );

    let action = |connection: &str| json!({"integration": "microsoft", "connection_id": connection, "input": {"query": "a"}});
    for (path, body, status) in [
        ("/actions/search-people", action("c1"), StatusCode::OK),
        (
            "/actions/search-people",
            action("nobody"),
            StatusCode::NOT_FOUND,
        ),
        ("/actions/nothing", action("c1"), StatusCode::NOT_FOUND),
    ] {
        api.expect(status, api.api(Method::POST, path).json(&body))
            .await;
    }
}

/// Waits until the webhook receiver has had an event (the new connection's), so the
/// deliveries checked are not an empty list.
async fn delivered(api: &mut Described) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = api
            .expect(StatusCode::OK, api.api(Method::GET, "/webhooks/deliveries"))
            .await;
        if answer.body["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            return;
        }
        assert!(Instant::now() < deadline, "no webhook delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The proxy, in every documented method, and its own refusals.
async fn proxy(world: &World, api: &mut Described) {
    world.connect("echo", "e1").await;
    let proxied = |method: Method, connection: &str| {
        api.api(method, "/proxy/v1.0/me")
            .header("Integration", "echo")
            .header("Connection-Id", connection)
    };
    let mut requests: Vec<(StatusCode, RequestBuilder)> = api
        .operations()
        .into_iter()
        .filter(|(_, template, _)| template.starts_with("/proxy/"))
        .map(|(name, _, _)| (StatusCode::OK, proxied(method(&name), "e1")))
        .collect();
    requests.push((StatusCode::NOT_FOUND, proxied(Method::GET, "nobody")));
    requests.push((
        StatusCode::BAD_REQUEST,
        api.api(Method::GET, "/proxy/v1.0/me")
            .header("Integration", "echo"),
    ));
    for (status, request) in requests {
        api.expect(status, request).await;
    }
}

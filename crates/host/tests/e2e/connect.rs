//! The OAuth connect flow, and every way a callback is refused without a token request.

use plugboard_emulator::{AuthorizeErrorKind, NextOutcome};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Browser, World, attribute_after, html_unescape};

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_connects_an_account_end_to_end() {
    let world = World::start().await;
    world.connect("microsoft", "user-1").await;
    assert_eq!(world.token_requests("authorization_code").await, 1);

    let list = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
    let connections = list["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    assert_eq!(connection["connection_id"], "user-1");
    assert_eq!(connection["provider"], "microsoft-people");
    assert_eq!(connection["status"], "ok");
    assert_eq!(connection["account"]["id"], world.demo.user_id.as_str());
    assert_eq!(
        connection["account"]["email"],
        world.demo.user_principal_name.as_str()
    );
    assert!(
        connection.get("credentials").is_none(),
        "listing never reveals tokens"
    );

    let detail = world.host.credentials("microsoft", "user-1").await;
    let scopes = detail["credentials"]["scopes"].as_array().unwrap();
    assert!(scopes.iter().any(|s| s == "People.Read"), "{scopes:?}");
    let token = detail["credentials"]["access_token"].as_str().unwrap();
    let me = world.graph_direct("/v1.0/me", token).await;
    assert_eq!(me["id"], world.demo.user_id.as_str());
    assert_eq!(
        world.token_requests("refresh_token").await,
        0,
        "a fresh token is not refreshed"
    );

    let path = "/connections/user-1?integration=microsoft";
    let (deleted, _) = world.host.call(Method::DELETE, path).await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    let (again, _) = world.host.call(Method::DELETE, path).await;
    assert_eq!(again, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_return_url_gets_the_outcome() {
    let world = World::start().await;
    let link = world
        .host
        .connect_link(
            "microsoft",
            "user-2",
            Some("http://localhost:3000/done?x=1"),
        )
        .await;
    let mut browser = Browser::new();
    let callback = browser.until_callback(&link).await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(
        location,
        "http://localhost:3000/done?x=1&integration=microsoft&connection_id=user-2&status=connected"
    );

    let (status, body) = world
        .host
        .post(
            "/connect/sessions",
            &json!({"integration": "microsoft", "connection_id": "u", "return_url": "https://evil.example/"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "return_url_not_allowed");
}

/// Delivers `callback` from `browser` and checks it is refused with a 400 page.
async fn assert_refused(browser: &mut Browser, callback: &str, why: &str) {
    let response = browser.get(callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
    let page = response.text().await.unwrap();
    assert!(page.contains(why), "expected `{why}` in {page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_are_refused_without_a_token_request_unless_everything_matches() {
    let world = World::start().await;
    let link = |id| world.host.connect_link("microsoft", id, None);

    // Missing cookie: the callback arrives in a browser that never started the flow.
    let callback = Browser::new().until_callback(&link("c1").await).await;
    assert_refused(&mut Browser::new(), &callback, "started in another browser").await;

    // Foreign cookie: another browser, with a binding of its own from its own flow.
    let mut mallory = Browser::new();
    mallory.until_callback(&link("c2").await).await;
    let mut victim = Browser::new();
    let victims = victim.until_callback(&link("c3").await).await;
    assert_refused(&mut mallory, &victims, "started in another browser").await;
    // The foreign attempt left the flow alone: the browser that started it finishes it.
    let finished = victim.get(&victims).await;
    assert_eq!(finished.status(), StatusCode::OK);
    assert!(finished.text().await.unwrap().contains("Connected"));

    // Expired state: ten minutes pass, and expired flows are purged.
    let mut browser = Browser::new();
    let callback = browser.until_callback(&link("c4").await).await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(11);
    world.store().await.purge_expired(later).await.unwrap();
    assert_refused(&mut browser, &callback, "has expired").await;

    // A state nobody issued.
    let forged = callback.replace("state=", "state=x");
    assert_refused(&mut browser, &forged, "unknown").await;
    assert_eq!(
        world.token_requests("authorization_code").await,
        1,
        "no refused callback reached the token endpoint"
    );

    // Replay: the same callback (same code, same state) a second time, in the right browser.
    let mut browser = Browser::new();
    let callback = browser.until_callback(&link("c5").await).await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::OK);
    assert_refused(&mut browser, &callback, "already completed").await;
    assert_eq!(
        world.token_requests("authorization_code").await,
        2,
        "each code was redeemed exactly once"
    );
}

/// A connect link starts one flow: opened again (it leaked, or the user went back), it is
/// refused, so nobody can bind the connection to another account with it. Only Continue uses
/// it up: the connect page can be shown any number of times before.
#[tokio::test(flavor = "multi_thread")]
async fn a_connect_link_starts_one_flow() {
    let world = World::start().await;
    let link = world.host.connect_link("microsoft", "once", None).await;
    let mut browser = Browser::new();
    for _ in 0..2 {
        assert_eq!(browser.get(&link).await.status(), StatusCode::OK);
    }
    world.connect_with_link(&link).await;
    let (again, _) = Browser::new().follow(&link).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let page = again.text().await.unwrap();
    assert!(page.contains("This link is not valid"), "{page}");
    // Continue pressed on a connect page left open from before.
    let action = link.split('?').next().unwrap();
    let token = link.split("session_token=").nth(1).unwrap().to_owned();
    let stale = browser
        .post_form(action, &[("session_token".to_owned(), token)])
        .await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    assert!(
        stale
            .text()
            .await
            .unwrap()
            .contains("This link is not valid")
    );
    assert_eq!(world.token_requests("authorization_code").await, 1);
}

/// Makes the emulator answer the next authorization request with `error`.
async fn decline_next_sign_in(world: &World, error: AuthorizeErrorKind) {
    let outcome = NextOutcome {
        error,
        error_description: None,
    };
    world
        .control
        .schedule_outcome(&world.demo.client_id, &outcome)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_errors_are_shown_with_their_meaning() {
    let world = World::start().await;
    for (error, title) in [
        (AuthorizeErrorKind::AccessDenied, "Access was declined"),
        (AuthorizeErrorKind::ConsentRequired, "consent is needed"),
        (
            AuthorizeErrorKind::TemporarilyUnavailable,
            "The provider is unavailable",
        ),
    ] {
        decline_next_sign_in(&world, error).await;
        let link = world.host.connect_link("microsoft", "declined", None).await;
        let (response, _) = Browser::new().connect_through(&link).await;
        assert!(response.status().is_client_error() || response.status().is_server_error());
        let page = response.text().await.unwrap();
        assert!(page.contains(title), "{error:?}: {page}");
        assert!(
            page.contains("AADSTS"),
            "the provider's words are shown: {page}"
        );
    }
    assert_eq!(world.token_requests("authorization_code").await, 0);

    // With a return URL the page leads back to the application, with the outcome.
    decline_next_sign_in(&world, AuthorizeErrorKind::AccessDenied).await;
    let link = world
        .host
        .connect_link("microsoft", "declined", Some("http://localhost:3000/done"))
        .await;
    let mut browser = Browser::new();
    let callback = browser.until_callback(&link).await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("Access was declined"), "{page}");
    let back = html_unescape(attribute_after(&page, "id=\"back\" href=\""));
    assert!(back.starts_with("http://localhost:3000/done?integration=microsoft&connection_id=declined&status=error&error=user_declined&error_description=AADSTS65004"), "{back}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_needs_the_key_and_unknown_things_are_404() {
    let world = World::start().await;
    let host = &world.host;
    let anonymous = reqwest::Client::new();
    for (method, path) in [
        (Method::GET, "/connections"),
        (Method::POST, "/connect/sessions"),
        (Method::GET, "/proxy/v1.0/me"),
    ] {
        let response = anonymous
            .request(method.clone(), format!("{}{path}", host.url))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    for (path, code) in [
        ("/connections?integration=nope", "integration_not_found"),
        (
            "/connections/ghost?integration=microsoft",
            "connection_not_found",
        ),
        (
            "/connections/ghost?integration=nope",
            "integration_not_found",
        ),
    ] {
        let (status, body) = host.call(Method::GET, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], code, "{path}");
    }
    for integration in ["microsoft", "nope"] {
        let (status, _) = host.proxy_get(integration, "ghost", "/v1.0/me").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{integration}");
    }
    let (status, _) = host
        .post(
            "/connect/sessions",
            &json!({"integration": "nope", "connection_id": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = Browser::new()
        .get(&format!("{}/oauth/connect/nope?session_token=x", host.url))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = Browser::new()
        .get(&format!(
            "{}/oauth/connect/microsoft?session_token=forged",
            host.url
        ))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A typo in an action's body is refused, naming the field, as on every other route:
    // dropped silently, it would run the action without its input.
    let (status, body) = host
        .post(
            "/actions/search-people",
            &json!({"integration": "microsoft", "connection_id": "x", "inputs": {"q": "a"}}),
        )
        .await;
    assert_eq!(status.as_u16() / 100, 4, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inputs"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_grants_consent_for_the_organisation() {
    let world = World::start().await;
    let session = world.host.create_session("admin", "org", None).await;
    let token = session["token"].as_str().unwrap();
    let start = format!(
        "{}/oauth/admin-consent/admin?tenant={}&session_token={token}",
        world.host.url, world.demo.tenant_id
    );
    let (response, visited) = Browser::new().follow(&start).await;
    assert_eq!(response.status(), StatusCode::OK, "{visited:?}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Admin consent granted") && page.contains(&world.demo.tenant_id),
        "{page}"
    );
    assert!(visited[1].contains("/v2.0/adminconsent?"), "{visited:?}");

    // `common` cannot take admin consent, and integrations without admin scopes have none.
    let common = format!(
        "{}/oauth/admin-consent/admin?tenant=common&session_token={token}",
        world.host.url
    );
    assert_eq!(
        Browser::new().get(&common).await.status(),
        StatusCode::BAD_REQUEST
    );
    let other = world.host.create_session("microsoft", "org", None).await;
    let needless = format!(
        "{}/oauth/admin-consent/microsoft?tenant={}&session_token={}",
        world.host.url,
        world.demo.tenant_id,
        other["token"].as_str().unwrap()
    );
    assert_eq!(
        Browser::new().get(&needless).await.status(),
        StatusCode::BAD_REQUEST
    );
}

/// Odd requests get the API's error shape, never a framework's plain text or an empty body.
#[tokio::test(flavor = "multi_thread")]
async fn odd_requests_are_answered_in_the_error_shape() {
    let world = World::start().await;
    let host = &world.host;
    let key = format!("Bearer {}", crate::support::API_KEY);
    let auth = [("authorization", key.as_str())];
    for (target, status, code) in [
        (
            "/connections/%FF%FE?integration=microsoft",
            400,
            "invalid_path",
        ),
        (
            "/connections?integration=microsoft&integration=admin",
            400,
            "invalid_query",
        ),
    ] {
        let (got, body) = crate::support::raw_get(&host.url, target, &auth).await;
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{target}: {body}"));
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{target}"
        );
    }
    let (got, body) = host.call(Method::PUT, "/connections").await;
    assert_eq!(got, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    // Thousands of unknown connection config keys: a short answer.
    let config: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("key{i}"), Value::from("x")))
        .collect();
    let (got, body) = host
        .post(
            "/connect/sessions",
            &json!({"integration": "microsoft", "connection_id": "c1", "connection_config": config}),
        )
        .await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.len() < 2_000 && message.contains("more"),
        "{message}"
    );

    // The browser routes answer a malformed link with a page.
    let response = Browser::new()
        .get(&format!(
            "{}/oauth/connect/microsoft?session_token=a&session_token=b",
            host.url
        ))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("This link is not valid")
    );
}

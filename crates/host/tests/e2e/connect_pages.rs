//! The end-user pages: the connect page a connect link opens (what the application asks for,
//! in its colours, behind headers that keep its session token to itself) and the page after a
//! failed authorization, which leads back to the application. Over plain HTTP, and in headless
//! Chromium driving the emulator's consent page.

use std::sync::{Arc, Mutex};

use plugboard_emulator::{AuthorizeErrorKind, ConsentMode, CreateApp, NextOutcome};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::browser::Chromium;
use crate::support::{Browser, World, attribute_after, html_unescape};

/// The scopes every integration of the tests' worlds asks for.
const SCOPES: [&str; 3] = ["People.Read", "User.Read", "offline_access"];

/// Each scope's description in the Microsoft People provider's spec, word for word.
fn descriptions(scopes: &[&str]) -> Vec<String> {
    let spec = plugboard_core::ProviderSpec::parse(
        "provider.toml",
        plugboard_microsoft_people::spec_text(),
    )
    .unwrap();
    let oauth = spec.auth.as_oauth2().unwrap();
    scopes
        .iter()
        .map(|name| oauth.scope(name).unwrap().description.clone())
        .collect()
}

/// The application a connect session's `return_url` leads back to: it serves its logo and
/// keeps the query of every visit to `/done`.
struct App {
    url: String,
    visits: Arc<Mutex<Vec<String>>>,
}

impl App {
    async fn start() -> App {
        use axum::extract::RawQuery;
        use axum::response::Html;
        let visits: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = visits.clone();
        let router = axum::Router::new()
            .route(
                "/logo.svg",
                axum::routing::get(|| async {
                    (
                        [("content-type", "image/svg+xml")],
                        r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32"><rect width="120" height="32" rx="6" fill="#00aa77"/><text x="12" y="22" fill="#fff" font-family="sans-serif" font-size="16">Contoso</text></svg>"##,
                    )
                }),
            )
            .route(
                "/done",
                axum::routing::get(move |RawQuery(query): RawQuery| async move {
                    seen.lock().unwrap().push(query.unwrap_or_default());
                    Html("<!doctype html><h1>Back in Contoso CRM</h1>")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        App { url, visits }
    }

    /// The query parameters of the latest visit to `/done`.
    fn last_visit(&self) -> Vec<(String, String)> {
        let visits = self.visits.lock().unwrap();
        let query = visits.last().expect("the application was visited");
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }
}

/// A world whose host presents itself as `app` (`[ui]`), lets connect sessions return to it,
/// and has the integration `consent`: an app registration of the demo tenant for which the
/// emulator shows its consent page, with Accept and Decline buttons.
async fn branded_world() -> (World, App) {
    let mut world = World::start().await;
    let app = App::start().await;
    let registration = world
        .control
        .create_app(&CreateApp {
            name: Some("Contoso CRM".into()),
            home_tenant: world.demo.tenant_id.clone(),
            redirect_uris: vec![format!("{}/oauth/callback", world.host.url)],
            consent_mode: ConsentMode::Page,
            ..CreateApp::default()
        })
        .await
        .unwrap();
    let emulator = world.emulator.url();
    let extra = format!(
        r##"
[integrations.consent]
provider = "microsoft-people"
client_id = "{client_id}"
client_secret = "{client_secret}"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.consent.overrides]
authorization_url = "{emulator}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator}"

[integrations.consent.syncs.people]
enabled = false

[ui]
app_name = "Contoso CRM"
logo_url = "{app}/logo.svg"
accent_color = "#0A7"
"##,
        client_id = registration.client_id,
        client_secret = registration.client_secret,
        app = app.url,
    );
    let origins = format!("allowed_return_origins = [\"{}\"]", app.url);
    world
        .restart_with(|config| {
            config.replace(
                "allowed_return_origins = [\"http://localhost:3000\"]",
                &origins,
            ) + &extra
        })
        .await;
    (world, app)
}

/// The headers every answer of the browser routes carries.
fn assert_hardened(headers: &HeaderMap, images: &str, what: &str) {
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        &format!("img-src {images}"),
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{what}: {directive} in {policy}"
        );
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("script-src"),
        "{what}: no script may run: {policy}"
    );
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connect_page_shows_what_the_app_asks_for_without_using_the_link() {
    let (world, app) = branded_world().await;
    let link = world.host.connect_link("microsoft", "page-1", None).await;
    for _ in 0..2 {
        let response = reqwest::get(&link).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_hardened(response.headers(), &app.url, "the connect page");
        let page = html_unescape(&response.text().await.unwrap());
        for expected in [
            "Connect your Microsoft People account",
            "<strong class=\"app-name\">Contoso CRM</strong>",
            &format!("<img class=\"logo\" src=\"{}/logo.svg\"", app.url),
            &format!("href=\"{}/oauth/assets/pages.css\"", world.host.url),
        ] {
            assert!(page.contains(expected), "{expected} in {page}");
        }
        for (scope, description) in SCOPES.iter().zip(descriptions(&SCOPES)) {
            let line = format!(
                "<span class=\"scope-name\">{scope}</span>\n<span class=\"scope-description\">{description}</span>"
            );
            assert!(page.contains(&line), "{line} in {page}");
        }
        let unasked = &descriptions(&["People.Read.All"])[0];
        assert!(!page.contains(unasked.as_str()), "only what is asked for");
        assert!(!page.contains("<script"), "{page}");
    }

    let stylesheet = reqwest::get(format!("{}/oauth/assets/pages.css", world.host.url))
        .await
        .unwrap();
    assert_eq!(stylesheet.status(), StatusCode::OK);
    assert_eq!(
        stylesheet.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    let css = stylesheet.text().await.unwrap();
    assert!(css.contains("--accent: #0a7;"), "{css}");

    // Looking at the page left the link good for its one flow.
    let mut browser = Browser::new();
    let (redirect, _) = browser.press_continue(&link).await;
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_hardened(redirect.headers(), &app.url, "Continue's redirect");
    let authorize = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&world.emulator.url()), "{authorize}");
    let (connected, _) = browser.follow(&authorize).await;
    assert_eq!(connected.status(), StatusCode::OK);
    assert_hardened(connected.headers(), &app.url, "the end of the flow");
    assert!(connected.text().await.unwrap().contains("Connected"));
    let refused = reqwest::get(&link).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_hardened(refused.headers(), &app.url, "a refused link");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("This link is not valid")
    );
    let token = link.split("session_token=").nth(1).unwrap();
    assert!(
        !world.host.logs().contains(token),
        "the session token is never logged"
    );
}

/// Consent is missing for a scope only an administrator can grant: the page says so, and
/// hands over a link with which an administrator grants it for the organisation.
#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_must_consent_first_and_gets_a_link() {
    let world = World::start().await;
    let outcome = NextOutcome {
        error: AuthorizeErrorKind::ConsentRequired,
        error_description: None,
    };
    world
        .control
        .schedule_outcome(&world.demo.client_id, &outcome)
        .await
        .unwrap();
    let link = world.host.connect_link("admin", "needs-admin", None).await;
    let mut browser = Browser::new();
    let page = browser.get(&link).await.text().await.unwrap();
    let description = &descriptions(&["People.Read.All"])[0];
    assert!(
        html_unescape(&page).contains(description.as_str()),
        "{page}"
    );
    assert!(
        page.contains("Only an administrator of your organisation can grant this."),
        "{page}"
    );

    let (response, _) = browser.connect_through(&link).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("An administrator must consent first") && page.contains("AADSTS65001"),
        "{page}"
    );
    let admin_link = html_unescape(attribute_after(&page, "class=\"admin-consent\" href=\""));
    let prefix = format!(
        "{}/oauth/admin-consent/admin?tenant=organizations&session_token=pbcs_",
        world.host.url
    );
    assert!(admin_link.starts_with(&prefix), "{admin_link}");

    // An administrator opens it in their own browser and consents for the organisation.
    let (granted, _) = Browser::new().follow(&admin_link).await;
    assert_eq!(granted.status(), StatusCode::OK);
    let page = granted.text().await.unwrap();
    assert!(
        page.contains("Admin consent granted") && page.contains(&world.demo.tenant_id),
        "{page}"
    );
    let (again, _) = Browser::new().follow(&admin_link).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "one flow per link");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_connects_through_the_continue_button() {
    let (world, _app) = branded_world().await;
    let link = world.host.connect_link("consent", "browser-1", None).await;
    let mut chromium = Chromium::start("a_browser_connects_through_the_continue_button").await;
    chromium.open(&link).await;
    assert_eq!(
        chromium.text("h1").await,
        "Connect your Microsoft People account"
    );
    assert_eq!(chromium.text(".app-name").await, "Contoso CRM");
    assert_eq!(
        chromium.texts(".scope-description").await,
        descriptions(&SCOPES)
    );
    assert_eq!(
        chromium.attribute("img.logo", "alt").await.as_deref(),
        Some("Contoso CRM")
    );
    // The stylesheet loaded under the page's policy, in the configured colour.
    let button = chromium.css_value("#continue", "background-color").await;
    assert_eq!(button, "rgba(0, 170, 119, 1)");

    chromium.click("#continue").await;
    assert!(chromium.url().await.starts_with(&world.emulator.url()));
    assert_eq!(chromium.text("h1").await, "Permissions requested");
    chromium.click("button[value=accept]").await;

    assert_eq!(chromium.text("h1").await, "Connected");
    assert_eq!(
        chromium.text(".what-happened").await,
        "Your Microsoft People account is connected to Contoso CRM. You can close this window."
    );
    let connection = world
        .host
        .get_json("/connections/browser-1?integration=consent")
        .await;
    assert_eq!(connection["status"], "ok");
    assert_eq!(
        connection["account"]["email"],
        world.demo.user_principal_name.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_authorization_shows_its_page_and_returns_to_the_app() {
    let (world, app) = branded_world().await;
    let return_url = format!("{}/done?from=plugboard", app.url);
    let link = world
        .host
        .connect_link("consent", "browser-2", Some(&return_url))
        .await;
    let mut chromium = Chromium::start("a_declined_authorization_returns_to_the_app").await;
    chromium.open(&link).await;
    chromium.click("#continue").await;
    assert_eq!(chromium.text("h1").await, "Permissions requested");
    chromium.click("button[value=decline]").await;

    assert_eq!(chromium.text("h1").await, "Access was declined");
    let said = chromium.text(".what-happened").await;
    assert!(
        said.starts_with(
            "You declined to give Contoso CRM access to your Microsoft People account"
        ),
        "{said}"
    );
    assert!(
        chromium.text(".details").await.contains("AADSTS65004"),
        "the provider's code is named"
    );
    assert_eq!(chromium.text("#back").await, "Back to Contoso CRM");
    chromium.click("#back").await;

    assert!(
        chromium
            .url()
            .await
            .starts_with(&format!("{}/done?", app.url))
    );
    assert_eq!(chromium.text("h1").await, "Back in Contoso CRM");
    let visit = app.last_visit();
    let value = |name: &str| {
        visit
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {visit:?}"))
    };
    assert_eq!(
        value("from"),
        "plugboard",
        "the return_url's own query stays"
    );
    assert_eq!(value("integration"), "consent");
    assert_eq!(value("connection_id"), "browser-2");
    assert_eq!(value("status"), "error");
    assert_eq!(value("error"), "user_declined");
    assert!(
        value("error_description").starts_with("AADSTS65004: "),
        "{visit:?}"
    );
    let (status, _) = world
        .host
        .call(
            reqwest::Method::GET,
            "/connections/browser-2?integration=consent",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was connected");
}

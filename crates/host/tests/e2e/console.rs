//! The operator's dashboard at `/ui`, in headless Chromium against the real binary and the
//! emulator, and over plain HTTP for what a browser would not send (forged forms, guessed keys).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE, X_FRAME_OPTIONS};
use serde_json::json;

use crate::browser::Chromium;
use crate::support::{API_KEY, SYNCS_OFF, World, webhook_receiver};
use crate::syncs::{finished_run, syncing};

const CONNECTION: &str = "console-demo";

/// Reloads the page until `css`'s text satisfies `done`, for what the server does in the
/// background (a sync run).
async fn until_text(browser: &mut Chromium, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = browser.text(css).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "`{css}` still says: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.reload().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_connection_runs_its_sync_and_reads_its_records() {
    let (hook_url, received) = webhook_receiver().await;
    let world = World::start_with(60, &syncing(&hook_url)).await;
    world.connect("microsoft", CONNECTION).await;
    finished_run(&world, CONNECTION, "").await;
    let base = &world.host.url;
    let mut browser = Chromium::start("console").await;

    // Signed out, every page leads to the sign-in form; a wrong key shows it again.
    browser.open(&format!("{base}/ui/connections")).await;
    assert!(
        browser.url().await.ends_with("/ui/sign-in"),
        "{}",
        browser.url().await
    );
    browser.fill("#key", "not-the-key").await;
    browser.click("#sign-in").await;
    assert_eq!(browser.text(".refusal").await, "That key is not valid.");
    browser.fill("#key", API_KEY).await;
    browser.click("#sign-in").await;
    assert!(
        browser.url().await.ends_with("/ui"),
        "{}",
        browser.url().await
    );
    assert!(browser.text("#integrations").await.contains("microsoft"));

    // Find the connection by searching part of its id, and open it.
    browser.click("nav a[href='/ui/connections']").await;
    browser.fill("#search", "sole-de").await;
    browser.click("#filter").await;
    assert_eq!(browser.texts(".connection-link").await, [CONNECTION]);
    browser.click(".connection-link").await;
    assert!(
        browser
            .text("#last-refresh")
            .await
            .contains("none recorded")
    );
    let page = browser.source().await;
    let access_token = world.host.access_token("microsoft", CONNECTION).await;
    for secret in [access_token.as_str(), &world.demo.client_secret, API_KEY] {
        assert!(!page.contains(secret), "a secret is on the Auth tab");
    }

    // Two more people at the provider; a run started from the Syncs tab finds them.
    for name in ["Console Added One", "Console Added Two"] {
        world
            .control
            .add_person(&world.demo.user_id, &json!({"displayName": name}))
            .await
            .unwrap();
    }
    browser.click("#tab-syncs").await;
    browser.click("#trigger-people").await;
    assert!(browser.text(".notice").await.contains("scheduled"));
    let last_run = until_text(&mut browser, "#sync-people .last-run", |text| {
        text.starts_with("success") && text.contains("2 added")
    })
    .await;
    assert!(last_run.contains("0 deleted"), "{last_run}");

    // The records, newest first, a page at a time; one record with its metadata.
    browser.click("#tab-records").await;
    assert!(browser.text("#record-counts").await.contains("62"));
    let first_page = browser.texts(".record-link").await;
    assert_eq!(first_page.len(), 25);
    browser.click("#next-records").await;
    let second_page = browser.texts(".record-link").await;
    assert_eq!(second_page.len(), 25);
    assert!(second_page.iter().all(|id| !first_page.contains(id)));
    let second_url = browser.url().await;
    // Filtered by last action: every record was added, none deleted.
    let filtered = |action: &str| {
        format!(
            "{base}/ui/connection/records?integration=microsoft&connection_id={CONNECTION}&model=Person&action={action}"
        )
    };
    browser.open(&filtered("ADDED")).await;
    let actions = browser.texts("#records td:nth-child(2)").await;
    assert_eq!(actions.len(), 25);
    assert!(actions.iter().all(|a| a == "ADDED"), "{actions:?}");
    browser.open(&filtered("DELETED")).await;
    assert!(browser.texts(".record-link").await.is_empty());
    browser.open(&second_url).await;
    browser.click(".record-link").await;
    let record = browser.text("#record-json").await;
    assert!(record.contains("\"_metadata\""), "{record}");
    assert!(record.contains(&second_page[0]), "{record}");

    // The Logs tab lists the runs with what they logged.
    browser.click("#tab-logs").await;
    assert_eq!(browser.texts(".run .badge").await, ["success", "success"]);

    // A new frequency, saved from the form.
    browser.click("#tab-syncs").await;
    browser
        .fill("#sync-people input[name=frequency]", "30m")
        .await;
    browser.click("#sync-people button.small").await;
    assert!(browser.text(".notice").await.contains("frequency is saved"));
    assert_eq!(
        browser
            .attribute("#sync-people input[name=frequency]", "value")
            .await
            .as_deref(),
        Some("30m")
    );

    // Pause and resume.
    browser.click("#pause-people").await;
    assert_eq!(browser.text("#sync-people .badge").await, "paused");
    browser.click("#resume-people").await;
    assert!(browser.text(".notice").await.contains("frequency again"));
    assert_ne!(browser.text("#sync-people .badge").await, "paused");

    // A form stripped of its CSRF token is refused, not carried out.
    browser.remove("#sync-people input[name=csrf]").await;
    browser.click("#pause-people").await;
    assert_eq!(browser.text("h1").await, "This form is not valid");
    browser
        .open(&format!(
            "{base}/ui/connection/syncs?integration=microsoft&connection_id={CONNECTION}"
        ))
        .await;
    assert_ne!(browser.text("#sync-people .badge").await, "paused");

    // The Activity page has the run and the webhook deliveries; one is sent again.
    browser.click("nav a[href='/ui/activity']").await;
    let activity = browser.text(".activity").await;
    assert!(
        activity.contains("sync people (incremental run)"),
        "{activity}"
    );
    assert!(
        browser
            .texts(".activity td.summary code")
            .await
            .contains(&"people".to_owned()),
        "the sync's name is shown as code, not between backticks"
    );
    assert!(!activity.contains('`'), "{activity}");
    let operations = browser.texts(".activity td:nth-child(2)").await;
    for operation in ["Sync run", "Webhook delivery", "Connection created"] {
        assert!(operations.iter().any(|o| o == operation), "{operations:?}");
    }
    let summaries = browser.texts(".activity td.summary").await;
    assert!(
        summaries
            .iter()
            .any(|s| s.ends_with("delivered (204) after 1 attempt")),
        "{summaries:?}"
    );
    assert!(activity.contains("connection created"), "{activity}");
    let before = received.lock().unwrap().len();
    let first_event = received.lock().unwrap()[0].event_id.clone();
    browser
        .open(&format!("{base}/ui/activity?kind=webhook_delivery"))
        .await;
    let redelivered = browser
        .attribute(".activity tr:last-child input[name=delivery]", "value")
        .await
        .unwrap();
    assert_eq!(
        redelivered, first_event,
        "the oldest delivery is the last row"
    );
    browser.click(".activity tr:last-child button").await;
    assert!(browser.url().await.contains("refresh=on"));
    assert!(browser.source().await.contains("http-equiv=\"refresh\""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().len() == before {
        assert!(Instant::now() < deadline, "nothing was redelivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        received.lock().unwrap().last().unwrap().event_id,
        first_event
    );

    // A fresh connect link for the end user; then the connection is deleted, once confirmed.
    browser
        .open(&format!(
            "{base}/ui/connection/auth?integration=microsoft&connection_id={CONNECTION}"
        ))
        .await;
    browser.click("#new-connect-link").await;
    let link = browser.attribute("#connect-link", "value").await.unwrap();
    assert!(
        link.starts_with(&format!("{base}/oauth/connect/microsoft?session_token=")),
        "{link}"
    );
    browser.click("#delete").await;
    browser.click("#confirm-delete").await;
    assert!(browser.url().await.ends_with("/ui/connections"));
    let (status, _) = world
        .host
        .call(
            reqwest::Method::GET,
            &format!("/connections/{CONNECTION}?integration=microsoft"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Signing out ends the session: the old cookie no longer opens anything.
    let session = browser
        .cookie("plugboard_console")
        .await
        .expect("a session cookie");
    browser.click("#sign-out").await;
    assert!(browser.url().await.ends_with("/ui/sign-in"));
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/ui"))
        .header("cookie", format!("plugboard_console={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(replayed.headers()[LOCATION], "/ui/sign-in");
}

/// A client that never follows redirects and sends only the cookies it is given, as a script
/// attacking the dashboard would.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of the cookie `name` a response sets, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Posts the sign-in form as a browser would: its CSRF token and the cookie it came with.
async fn sign_in(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    let form = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let cookie = set_cookie(&form, "plugboard_console_form").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = form.text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    http.post(format!("{base}/ui/sign-in"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf), ("key", key)])
        .send()
        .await
        .unwrap()
}

/// The dashboard's own sign-in key.
const ADMIN_KEY: &str = "console-admin-key-0123456789-0123456789";

/// An integration whose client secret expires in ten days and which asks for no refresh
/// token (both are warnings on the overview), and a sign-in key of the dashboard's own.
fn needing_attention() -> String {
    let expires = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    format!(
        r#"{SYNCS_OFF}
[integrations.expiring]
provider = "microsoft-people"
client_id = "00000000-0000-0000-0000-000000000002"
client_secret = "not-used-anywhere-0123456789"
client_secret_expires_at = "{expires}"
scopes = ["People.Read"]

[ui]
admin_key = "{ADMIN_KEY}"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forms_are_refused_and_guessing_the_key_is_slowed_down() {
    let world = World::start_with(10, &needing_attention()).await;
    let base = world.host.url.clone();
    let http = client();

    let page = http.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let form = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let policy = form.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("script-src 'none'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(form.headers()[X_FRAME_OPTIONS], "DENY");

    // A sign-in without the form's token is refused outright, even with the right key.
    let forged = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // With an admin key of its own, the dashboard no longer takes the API key.
    let api_key = sign_in(&http, &base, API_KEY).await;
    assert_eq!(api_key.status(), StatusCode::UNAUTHORIZED);
    let signed_in = sign_in(&http, &base, ADMIN_KEY).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&signed_in, "plugboard_console").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", session.clone())
            .send()
    };
    let overview = get("/ui").await.unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    let overview = overview.text().await.unwrap();
    assert!(
        overview.contains("Client secret: set, expires") && overview.contains("(in 10 days)"),
        "{overview}"
    );
    assert!(
        overview.contains("<code>offline_access</code> is missing"),
        "{overview}"
    );
    assert!(
        !overview.contains("not-used-anywhere"),
        "a client secret is rendered"
    );

    // Forms posted without the session's CSRF token, or with another, change nothing.
    for form in [vec![], vec![("csrf", "0".repeat(64))]] {
        let refused = http
            .post(format!("{base}/ui/sign-out"))
            .header("cookie", session.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        get("/ui").await.unwrap().status(),
        StatusCode::OK,
        "still signed in"
    );

    // Five wrong keys are told so (the sign-in above forgot the refused API key); after that
    // each attempt must wait, the right key too.
    for _ in 0..5 {
        assert_eq!(
            sign_in(&http, &base, "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let slowed = sign_in(&http, &base, ADMIN_KEY).await;
    assert_eq!(slowed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        slowed
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
}

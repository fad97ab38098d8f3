//! Shared test harness: an emulator with a demo tenant, and helpers that speak HTTP to it
//! the way a client would.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, RunningEmulator,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const REDIRECT_URI: &str = "http://localhost:3000/oauth/callback";
pub const SCOPES: &str = "https://graph.microsoft.com/People.Read https://graph.microsoft.com/User.Read offline_access openid";

pub struct Harness {
    pub emulator: RunningEmulator,
    pub url: String,
    pub control: ControlClient,
    pub demo: DemoSetup,
    /// Does not follow redirects: tests look at them.
    pub http: reqwest::Client,
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

pub async fn start(people: usize) -> Harness {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let control = emulator.control();
    let demo = control
        .setup_demo(DemoOptions {
            redirect_uris: vec![REDIRECT_URI.into()],
            people,
            seed: 1,
        })
        .await
        .expect("demo setup");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        url: emulator.url(),
        emulator,
        control,
        demo,
        http,
    }
}

impl Harness {
    pub async fn authorize(&self, tenant: &str, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}/{tenant}/oauth2/v2.0/authorize", self.url))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// A successful sign-in of the demo app with PKCE; returns the code's redirect parameters.
    pub async fn sign_in(&self, scope: &str, pkce: &Pkce) -> HashMap<String, String> {
        let response = self
            .authorize(
                "common",
                &[
                    ("client_id", &self.demo.client_id),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT_URI),
                    ("scope", scope),
                    ("state", "opaque-state"),
                    ("code_challenge", &pkce.challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        redirect_params(&response)
    }

    pub async fn code(&self, scope: &str) -> (String, Pkce) {
        let pkce = Pkce::new();
        let params = self.sign_in(scope, &pkce).await;
        (params["code"].clone(), pkce)
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.token_at("common", form).await
    }

    pub async fn token_at(&self, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.url))
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    pub async fn redeem(&self, code: &str, pkce: &Pkce) -> (StatusCode, Value) {
        self.token(&[
            ("client_id", &self.demo.client_id),
            ("client_secret", &self.demo.client_secret),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> (StatusCode, Value) {
        let mut form = vec![
            ("client_id", self.demo.client_id.as_str()),
            ("client_secret", self.demo.client_secret.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        self.token(&form).await
    }

    /// Signs in and redeems the code: a fresh token response.
    pub async fn tokens(&self, scope: &str) -> Value {
        let (code, pkce) = self.code(scope).await;
        let (status, body) = self.redeem(&code, &pkce).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A Graph `GET` with the bearer token, the answer unread: for tests of answers that are
    /// not JSON or never arrive (faults).
    pub async fn graph_response(
        &self,
        path_and_query: &str,
        token: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(format!("{}{path_and_query}", self.url))
            .bearer_auth(token)
            .send()
            .await
    }

    pub async fn access_token(&self) -> String {
        self.tokens(SCOPES).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn graph(&self, path_and_query: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
        let response = self.graph_response(path_and_query, token).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }
}

/// The parameters of a redirect's `Location` (query, or fragment when there is no query).
pub fn redirect_params(response: &reqwest::Response) -> HashMap<String, String> {
    let location = response
        .headers()
        .get(LOCATION)
        .expect("a redirect")
        .to_str()
        .unwrap();
    let url = url::Url::parse(location).unwrap();
    let encoded = url
        .query()
        .or(url.fragment())
        .unwrap_or_default()
        .to_owned();
    url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect()
}

pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// HTTP Basic as RFC 6749 §2.3.1 wants it: both halves form-urlencoded first.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// Replaces what changes from run to run (GUIDs, timestamps) so bodies can be snapshotted.
pub fn scrub(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(scrub_text(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, scrub(v))).collect())
        }
        other => other,
    }
}

fn scrub_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(len) = guid_len(rest) {
            out.push_str("[guid]");
            rest = &rest[len..];
        } else if let Some(len) = timestamp_len(rest) {
            out.push_str("[timestamp]");
            rest = &rest[len..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn matches_shape(text: &str, shape: &str) -> bool {
    text.len() >= shape.len()
        && text.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'h' => c.is_ascii_hexdigit(),
            b'd' => c.is_ascii_digit(),
            b'?' => c == b' ' || c == b'T',
            _ => c == s,
        })
}

fn guid_len(text: &str) -> Option<usize> {
    matches_shape(text, "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh").then_some(36)
}

fn timestamp_len(text: &str) -> Option<usize> {
    if !matches_shape(text, "dddd-dd-dd?dd:dd:dd") {
        return None;
    }
    let mut len = 19;
    let bytes = text.as_bytes();
    if bytes.get(len) == Some(&b'.') {
        len += 1;
        while bytes.get(len).is_some_and(u8::is_ascii_digit) {
            len += 1;
        }
    }
    if bytes.get(len) == Some(&b'Z') {
        len += 1;
    }
    Some(len)
}

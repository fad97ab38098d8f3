//! `ApiClient` and the OAuth engine against a provider that misbehaves on purpose: a real TCP
//! server writing raw HTTP, which drips its answer, sends more than the client reads or
//! answers a token request with megabytes. Each ends within its bound with an error naming it,
//! and an answer refused for its size is not asked for again.
#![cfg(feature = "runtime")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use plugboard_core::http::{ApiClient, MAX_ANSWER_SIZE, http_client};
use plugboard_core::oauth::{OAuthClient, OAuthClientConfig, OAuthErrorKind};
use plugboard_core::spec::{ApiSpec, ClientAuthentication, OAuth2Spec};
use plugboard_core::{ErrorKind, HttpRequest};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does after reading a request.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 announcing 1000 bytes, then one byte every 100 ms.
    Drip,
    /// 200, chunked, without end: 1 MiB chunks of JSON-looking spaces.
    Endless,
    /// 200 with a body of 2 MiB.
    TwoMebibytes,
}

/// A server answering every request with `answer`: its URL and how many requests it read.
async fn serve(answer: Answer) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU32::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                if read_head(&mut stream).await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = respond(&mut stream, answer).await;
                }
            });
        }
    });
    (url, requests)
}

/// Reads up to the end of a request's head; a token request's small form body may follow,
/// and is left unread.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

async fn respond(stream: &mut TcpStream, answer: Answer) -> std::io::Result<()> {
    const JSON: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    match answer {
        Answer::Drip => {
            stream
                .write_all(format!("{JSON}Content-Length: 1000\r\n\r\n").as_bytes())
                .await?;
            for _ in 0..1000 {
                stream.write_all(b" ").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Answer::Endless => {
            stream
                .write_all(format!("{JSON}Transfer-Encoding: chunked\r\n\r\n").as_bytes())
                .await?;
            let mut chunk = b"100000\r\n".to_vec();
            chunk.extend(std::iter::repeat_n(b' ', 0x10_0000));
            chunk.extend_from_slice(b"\r\n");
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Answer::TwoMebibytes => {
            let body = format!("{{\"access_token\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
            stream
                .write_all(format!("{JSON}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
                .await?;
        }
    }
    Ok(())
}

/// A client of the API at `url` retrying transport failures up to 3 attempts in all.
fn client(url: &str, timeout: Duration) -> ApiClient {
    let api: ApiSpec = toml::from_str(&format!(
        "base_url = \"{url}\"\n[retry]\nmax_attempts = 3\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\""
    ))
    .unwrap();
    ApiClient::new(http_client(), &api, url.parse().unwrap()).with_timeout(timeout)
}

#[tokio::test]
async fn a_dripped_answer_is_cut_at_the_timeout_of_each_attempt() {
    let (url, requests) = serve(Answer::Drip).await;
    let timeout = Duration::from_millis(700);
    let started = Instant::now();
    let error = client(&url, timeout)
        .send(&HttpRequest::get("/v1/items"), Some("TOKEN"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind, ErrorKind::Transport, "{error:?}");
    assert!(
        error.message.starts_with("GET /v1/items: "),
        "{}",
        error.message
    );
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert!(
        error.message.contains("(after 3 attempt(s))"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("TOKEN"));
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // Three attempts of 0.7 s and two short backoffs, not the 100 s the drip would take.
    assert!(took >= timeout * 3, "{took:?}");
    assert!(took < timeout * 3 + Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn an_answer_larger_than_the_bound_is_refused_once() {
    let (url, requests) = serve(Answer::Endless).await;
    let started = Instant::now();
    let error = client(&url, Duration::from_secs(30))
        .send(&HttpRequest::get("/v1/items"), Some("TOKEN"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Transport, "{error:?}");
    assert_eq!(
        error.message,
        "GET /v1/items: reading the body of the 200 answer failed: the answer is larger than \
         32 MiB, the most Plugboard reads (after 1 attempt(s))"
    );
    assert_eq!(MAX_ANSWER_SIZE, 32 * 1024 * 1024);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "not asked for again");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_token_answer_of_megabytes_is_refused_as_no_token_endpoint() {
    let (url, requests) = serve(Answer::TwoMebibytes).await;
    let spec: OAuth2Spec = toml::from_str(
        "authorization_url = \"https://login.example/authorize\"\n\
         token_url = \"https://login.example/token\"\nscopes = []",
    )
    .unwrap();
    let oauth = OAuthClient::new(
        http_client(),
        OAuthClientConfig {
            scopes: Vec::new(),
            spec: OAuth2Spec {
                client_authentication: ClientAuthentication::Form,
                ..spec
            },
            client_id: "client".to_owned(),
            client_secret: SecretString::from("SECRET-VALUE".to_owned()),
            redirect_uri: "http://127.0.0.1:5555/callback".to_owned(),
            authorization_url: None,
            token_url: Some(format!("{url}/token")),
            admin_consent_url: None,
        },
    );
    let refresh = SecretString::from("REFRESH-VALUE".to_owned());
    let error = oauth
        .refresh(&BTreeMap::new(), &refresh, None)
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        OAuthErrorKind::IntegrationMisconfigured,
        "{error}"
    );
    assert_eq!(
        error.fix(),
        "the token endpoint's answer was refused: the answer is larger than 1 MiB, the most \
         Plugboard reads — check token_url"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("SECRET-VALUE") && !shown.contains("REFRESH-VALUE"));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

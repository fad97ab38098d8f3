//! The API Management gateway under `/apim`: subscription keys in the header or the query,
//! APIM's 401 bodies for a missing, unknown or revoked key.

use plugboard_emulator::CreateSubscription;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::harness::start;

const MISSING: &str = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.";
const INVALID: &str = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.";

/// Sends the request and checks the gateway let it through (200): the JSON body.
async fn json_answer(request: RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn subscription_keys_are_checked_in_the_header_or_the_query() {
    let h = start(0).await;
    let subscription = h
        .control
        .create_subscription(&CreateSubscription {
            name: Some("Contoso".to_owned()),
        })
        .await
        .unwrap();

    let me = json_answer(
        h.http
            .get(format!("{}/apim/subscription", h.url))
            .header("Ocp-Apim-Subscription-Key", &subscription.key),
    )
    .await;
    assert_eq!(me, json!({"id": subscription.id, "name": "Contoso"}));

    let echoed = json_answer(h.http.post(format!(
        "{}/apim/echo/resource?a=1&subscription-key={}",
        h.url, subscription.key
    )))
    .await;
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/resource");
    assert_eq!(echoed["query"], json!({"a": "1"}));
    assert_eq!(echoed["key_location"], "query");
    assert_eq!(echoed["subscription"]["id"], subscription.id.as_str());

    let denied = |key: Option<String>| {
        let mut request = h.http.get(format!("{}/apim/echo/resource", h.url));
        if let Some(key) = key {
            request = request.header("Ocp-Apim-Subscription-Key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(response.headers().contains_key("www-authenticate"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["statusCode"], 401);
            body["message"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(denied(None).await, MISSING);
    assert_eq!(denied(Some("not-a-key".to_owned())).await, INVALID);

    let revoked = h
        .control
        .revoke_subscription(&subscription.id)
        .await
        .unwrap();
    assert_eq!(revoked, subscription);
    assert_eq!(denied(Some(subscription.key.clone())).await, INVALID);
    assert!(
        h.control
            .revoke_subscription(&subscription.id)
            .await
            .is_err()
    );
}

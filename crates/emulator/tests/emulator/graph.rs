//! Graph: bearer checks, error bodies, paging and the query options.

use std::collections::HashSet;

use plugboard_emulator::{CreateUser, ExpireTokens};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{scrub, start};

#[tokio::test]
async fn error_bodies() {
    let h = start(20).await;
    let token = h.access_token().await;
    let user_read_only = h.tokens("User.Read").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let colleague = h
        .control
        .create_user(&CreateUser {
            tenant: h.demo.tenant_id.clone(),
            ..CreateUser::default()
        })
        .await
        .unwrap();

    let cases = [
        ("401_unknown_token", "/v1.0/me/people", "not-a-token"),
        (
            "403_people_without_people_read",
            "/v1.0/me/people",
            user_read_only.as_str(),
        ),
        ("400_bad_top", "/v1.0/me/people?$top=ten", token.as_str()),
        (
            "400_bad_filter",
            "/v1.0/me/people?$filter=startswith(displayName,'A')",
            token.as_str(),
        ),
        (
            "400_search_with_skip",
            "/v1.0/me/people?$search=ann&$skip=10",
            token.as_str(),
        ),
        (
            "400_unknown_select",
            "/v1.0/me/people?$select=displayName,shoeSize",
            token.as_str(),
        ),
        (
            "404_unknown_user",
            "/v1.0/users/nobody@contoso.onmicrosoft.com/people",
            token.as_str(),
        ),
    ];
    let colleague_path = format!("/v1.0/users/{}/people", colleague.id);
    let cases = cases.into_iter().chain([(
        "403_other_user_without_admin_consent",
        colleague_path.as_str(),
        token.as_str(),
    )]);
    for (name, path, token) in cases {
        let (status, headers, body) = h.graph(path, token).await;
        assert_eq!(
            body["error"]["innerError"]["request-id"],
            headers["request-id"].to_str().unwrap()
        );
        insta::assert_json_snapshot!(
            name,
            json!({"status": status.as_u16(), "body": scrub(body)})
        );
    }

    let response = h
        .http
        .get(format!("{}/v1.0/me", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn expired_access_tokens_are_rejected() {
    let h = start(5).await;
    let token = h.access_token().await;
    assert_eq!(h.graph("/v1.0/me/people", &token).await.0, StatusCode::OK);
    h.control.advance_clock(5400).await.unwrap();
    let (status, _, body) = h.graph("/v1.0/me/people", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("401_expired_token", scrub(body));

    let fresh = h.access_token().await;
    let request = ExpireTokens {
        access_token: Some(fresh.clone()),
        ..ExpireTokens::default()
    };
    assert_eq!(
        h.control
            .expire_tokens(&request)
            .await
            .unwrap()
            .access_tokens,
        1
    );
    assert_eq!(
        h.graph("/beta/me/people", &fresh).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn paging_through_a_thousand_people() {
    let h = start(1000).await;
    let token = h.access_token().await;
    let mut ids = HashSet::new();
    let mut next = Some(format!("{}/v1.0/me/people?$top=100", h.url));
    let mut pages = 0;
    while let Some(url) = next {
        let response = h.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        if pages == 0 {
            assert_eq!(
                page["@odata.context"],
                format!(
                    "{}/v1.0/$metadata#users('{}')/people",
                    h.url, h.demo.user_id
                )
            );
            assert_eq!(
                page["@odata.nextLink"],
                format!("{}/v1.0/me/people?%24top=100&%24skip=100", h.url)
            );
        }
        let value = page["value"].as_array().unwrap();
        assert_eq!(value.len(), 100);
        ids.extend(value.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!((pages, ids.len()), (10, 1000));
}

#[tokio::test]
async fn next_links_use_the_requests_host_and_keep_options() {
    let h = start(30).await;
    let token = h.access_token().await;
    let response = h
        .http
        .get(format!("{}/beta/me/people?%24top=5&%24select=displayName&%24filter=personType/class%20eq%20'Person'", h.url))
        .header("host", "graph.example.test:8443")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with("http://graph.example.test:8443/beta/me/people?"),
        "{next}"
    );
    assert!(
        next.contains("%24select=displayName")
            && next.contains("%24filter=personType%2Fclass+eq+%27Person%27")
    );
    assert!(next.ends_with("%24top=5&%24skip=5"), "{next}");
}

#[tokio::test]
async fn select_filter_search_and_orderby() {
    let h = start(300).await;
    let token = h.access_token().await;
    let people = |query: String| {
        let (h, token) = (&h, &token);
        async move {
            let (status, _, body) = h.graph(&format!("/v1.0/me/people?{query}"), token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["value"].as_array().unwrap().clone()
        }
    };

    let selected = people("$top=3&$select=displayName,jobTitle".into()).await;
    for person in &selected {
        let keys: HashSet<&str> = person
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, HashSet::from(["id", "displayName", "jobTitle"]));
    }

    let contacts = people("$top=1000&$filter=personType/class eq 'Person' and personType/subclass eq 'PersonalContact'".into()).await;
    assert!(!contacts.is_empty());
    assert!(
        contacts
            .iter()
            .all(|p| p["personType"]["subclass"] == "PersonalContact")
    );
    assert!(
        contacts
            .iter()
            .any(|p| uuid::Uuid::parse_str(p["id"].as_str().unwrap()).is_err())
    );
    let groups = people("%24top=1000&%24filter=personType%2Fclass%20eq%20%27Group%27".into()).await;
    assert!(
        !groups.is_empty()
            && groups
                .iter()
                .all(|p| p["personType"]["subclass"] == "UnifiedGroup")
    );

    let all = people("$top=1000".into()).await;
    let name = all[7]["surname"].as_str().unwrap().to_owned();
    for search in [name.to_lowercase(), format!("\"{}\"", name.to_uppercase())] {
        let found = people(format!("$search={}&$top=1000", urlencode(&search))).await;
        assert!(found.iter().any(|p| p["id"] == all[7]["id"]));
        assert!(found.len() < all.len());
    }

    let sorted = people("$top=1000&$orderby=displayName".into()).await;
    let names: Vec<String> = sorted
        .iter()
        .filter_map(|p| p["displayName"].as_str())
        .map(str::to_lowercase)
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(sorted.len(), all.len());

    assert_eq!(people(String::new()).await.len(), 10, "default $top");
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn seed_data_has_every_shape() {
    let h = start(500).await;
    let people = h.control.people(&h.demo.user_id).await.unwrap();
    let json: Vec<Value> = people
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    let has = |test: &dyn Fn(&Value) -> bool| json.iter().any(test);
    assert!(
        has(&|p| p["jobTitle"].is_null() && p.get("jobTitle").is_some()),
        "null properties"
    );
    assert!(has(&|p| p.get("jobTitle").is_none()), "missing properties");
    assert!(
        has(&|p| p["phones"].as_array().is_some_and(Vec::is_empty)),
        "empty arrays"
    );
    assert!(
        has(&|p| p["phones"].as_array().is_some_and(|a| a.len() > 1)),
        "several phones"
    );
    let names: HashSet<&str> = json
        .iter()
        .filter_map(|p| p["givenName"].as_str())
        .collect();
    assert!(names.len() > 20, "varied names");
    assert_eq!(people, h.control.people(&h.demo.user_id).await.unwrap());
}

#[tokio::test]
async fn users_people_by_id_or_upn_and_me() {
    let h = start(12).await;
    let token = h.access_token().await;
    for user in [&h.demo.user_id, &h.demo.user_principal_name] {
        let (status, _, page) = h
            .graph(&format!("/v1.0/users/{user}/people?$top=5"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "own people need only People.Read");
        assert_eq!(page["value"].as_array().unwrap().len(), 5);
    }
    let (status, headers, me) = h.graph("/beta/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], h.demo.user_id.as_str());
    assert!(headers.contains_key("request-id"));

    let response = h
        .http
        .get(format!("{}/v1.0/me", h.url))
        .bearer_auth(&token)
        .header("client-request-id", "my-correlation")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["client-request-id"], "my-correlation");
}

#[tokio::test]
async fn a_hundred_thousand_people_seed_and_page_quickly() {
    let h = start(0).await;
    let started = std::time::Instant::now();
    h.control
        .seed_people(&h.demo.user_id, 100_000, 42)
        .await
        .unwrap();
    let seeded = started.elapsed();
    let token = h.access_token().await;
    let started = std::time::Instant::now();
    for skip in [0, 50_000, 99_000] {
        let (status, _, page) = h
            .graph(&format!("/v1.0/me/people?$top=1000&$skip={skip}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["value"].as_array().unwrap().len(), 1000);
        assert_eq!(page.get("@odata.nextLink").is_some(), skip != 99_000);
    }
    // Generous bounds: this crate is unoptimised in test builds.
    assert!(seeded.as_secs_f64() < 5.0, "seeding took {seeded:?}");
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "paging took {:?}",
        started.elapsed()
    );
}

//! The control API: directory, people changes seen through Graph, counters, settings, clock.

use plugboard_emulator::{ControlClient, CreateTenant, Prop, Settings, UpdateSettings};
use serde_json::{Value, json};

use crate::harness::{SCOPES, start};

#[tokio::test]
async fn people_changes_show_in_graph() {
    let h = start(3).await;
    let token = h.access_token().await;
    let user = &h.demo.user_principal_name;

    let added = h
        .control
        .add_person(user, &json!({"id": "AAMkAG/contact+1=", "displayName": "Zed Contact", "personType": {"class": "Person", "subclass": "PersonalContact"}}))
        .await
        .unwrap();
    let minted = h
        .control
        .add_person(user, &json!({"displayName": "No Id"}))
        .await
        .unwrap();
    assert!(uuid::Uuid::parse_str(&minted.id).is_ok());

    let patched = h
        .control
        .update_person(
            user,
            &added.id,
            &json!({"jobTitle": "Buyer", "displayName": null}),
        )
        .await
        .unwrap();
    assert_eq!(patched.job_title, Prop::Value("Buyer".to_owned()));
    assert_eq!(patched.display_name, Prop::Missing);

    let ids = |page: &Value| {
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, _, page) = h.graph("/v1.0/me/people?$top=10", &token).await;
    assert_eq!(
        ids(&page)[3..],
        ["AAMkAG/contact+1=".to_owned(), minted.id.clone()]
    );

    h.control.remove_person(user, &added.id).await.unwrap();
    let (_, _, page) = h.graph("/v1.0/me/people?$top=10", &token).await;
    assert_eq!(ids(&page).len(), 4);
    assert!(h.control.remove_person(user, &added.id).await.is_err());
    assert!(
        h.control
            .add_person(user, &json!({"id": minted.id}))
            .await
            .is_err(),
        "duplicate id"
    );
}

#[tokio::test]
async fn directory_and_counters() {
    let h = start(0).await;
    let tenant = h
        .control
        .create_tenant(&CreateTenant {
            id: Some("6c0e9f3a-2b7d-4e1f-9a58-0d3c7b2e4f61".into()),
            domain: Some("fabrikam.com".into()),
            display_name: None,
        })
        .await
        .unwrap();
    assert_eq!(tenant.domains, ["fabrikam.com"]);
    assert_eq!(h.control.tenants().await.unwrap().len(), 2);
    assert_eq!(
        h.control.apps().await.unwrap()[0].client_id,
        h.demo.client_id
    );
    assert_eq!(h.control.users().await.unwrap()[0].people, 0);
    assert!(
        h.control
            .create_tenant(&CreateTenant {
                domain: Some("fabrikam.com".into()),
                ..CreateTenant::default()
            })
            .await
            .is_err()
    );

    h.control.reset_counters().await.unwrap();
    let body = h.tokens(SCOPES).await;
    h.refresh(body["refresh_token"].as_str().unwrap(), None)
        .await;
    h.graph("/v1.0/me", body["access_token"].as_str().unwrap())
        .await;
    let counters = h.control.counters().await.unwrap();
    assert_eq!(counters.token_requests["authorization_code"], 1);
    assert_eq!(counters.token_requests["refresh_token"], 1);
    assert_eq!(counters.graph_requests["/v1.0/me"], 1);
    assert_eq!(
        h.control.reset_counters().await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn settings_and_clock() {
    let h = start(0).await;
    assert_eq!(h.control.settings().await.unwrap(), Settings::default());
    let updated = h
        .control
        .update_settings(&UpdateSettings {
            graph_latency_ms: Some(5),
            ..UpdateSettings::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.graph_latency_ms, 5);
    let before = h.control.clock().await.unwrap();
    let after = h.control.advance_clock(3600).await.unwrap();
    assert_eq!(after.offset_secs, 3600);
    assert!(after.now - before.now >= chrono::TimeDelta::seconds(3600));
}

#[tokio::test]
async fn control_errors_and_shutdown() {
    let h = start(0).await;
    let missing = h.control.people("nobody").await.unwrap_err().to_string();
    assert!(
        missing.contains("404") && missing.contains("user 'nobody' not found"),
        "{missing}"
    );
    let url = h.url.clone();
    h.emulator.shutdown().await;
    assert!(
        ControlClient::new(format!("{url}/"))
            .tenants()
            .await
            .is_err()
    );
}

//! Connections, OAuth flows and key rotation.

use std::collections::BTreeMap;

use plugboard_store::{ConnectionStatus, RefreshLease, TakenState};
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

pub async fn connections_round_trip_and_reconnect_keeps_the_row(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let first = store
        .save_connection(new_connection("c1", "access-1"), now)
        .await
        .unwrap();
    let read = store.connection(&first.key).await.unwrap().unwrap();
    assert_eq!(read.tokens.access_token.expose_secret(), "access-1");
    assert_eq!(
        read.tokens.refresh_token.unwrap().expose_secret(),
        "refresh-1"
    );
    assert_eq!(read.connection_config["tenant"], "common");
    assert_eq!(read.token_version, 1);

    let again = store
        .save_connection(new_connection("c1", "access-2"), now)
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.token_version),
        (first.id.as_str(), 2)
    );
    assert_eq!(store.connections(Some("microsoft")).await.unwrap().len(), 1);
    assert!(store.connections(Some("other")).await.unwrap().is_empty());
    assert!(store.delete_connection(&first.key).await.unwrap());
    assert!(store.connection(&first.key).await.unwrap().is_none());
}

pub async fn token_updates_are_compare_and_swap_and_keep_the_refresh_token(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let conn = store
        .save_connection(new_connection("c1", "access-1"), now)
        .await
        .unwrap();
    let update = |access: &str, refresh: Option<&str>| TokenUpdate {
        access_token: SecretString::from(access),
        refresh_token: refresh.map(SecretString::from),
        id_token: None,
        expires_at: None,
        scopes: vec![],
    };
    let won = store
        .update_tokens(&conn, update("access-2", None), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(won.token_version, 2);
    assert!(
        store
            .update_tokens(&conn, update("access-3", None), now)
            .await
            .unwrap()
            .is_none()
    );
    let read = store.connection(&conn.key).await.unwrap().unwrap();
    assert_eq!(read.tokens.access_token.expose_secret(), "access-2");
    assert_eq!(
        read.tokens.refresh_token.unwrap().expose_secret(),
        "refresh-1"
    );

    assert!(
        !store
            .mark_needs_reconnect(&conn.key, 1, "stale", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_needs_reconnect(&conn.key, 2, "invalid_grant", now)
            .await
            .unwrap()
    );
    let read = store.connection(&conn.key).await.unwrap().unwrap();
    assert_eq!(read.status, ConnectionStatus::NeedsReconnect);
    assert_eq!(read.status_reason.as_deref(), Some("invalid_grant"));
}

pub async fn refresh_failure_and_recovery_each_change_once(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let conn = store
        .save_connection(new_connection("c1", "a"), now)
        .await
        .unwrap();
    assert!(
        !store.set_refresh_failing(&conn.key, None).await.unwrap(),
        "not failing"
    );
    assert!(
        store
            .set_refresh_failing(&conn.key, Some(now))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_refresh_failing(&conn.key, Some(now))
            .await
            .unwrap(),
        "already failing"
    );
    // A reconnect does not clear it: whoever clears it announces the recovery.
    store
        .save_connection(new_connection("c1", "b"), now)
        .await
        .unwrap();
    assert!(store.set_refresh_failing(&conn.key, None).await.unwrap());
    assert!(!store.set_refresh_failing(&conn.key, None).await.unwrap());
}

pub async fn leases_exclude_other_owners_until_released_or_expired(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let conn = store
        .save_connection(new_connection("c1", "a"), now)
        .await
        .unwrap();
    let later = now + chrono::Duration::seconds(30);
    let take = |owner: &'static str, at| {
        let (store, key) = (store.clone(), conn.key.clone());
        async move {
            store
                .acquire_refresh_lease(&key, owner, later, at)
                .await
                .unwrap()
        }
    };
    assert_eq!(take("a", now).await, RefreshLease::Taken);
    assert_eq!(take("a", now).await, RefreshLease::Taken, "already a's");
    assert_eq!(take("b", now).await, RefreshLease::NotTaken);
    // a never released it: once expired, b takes it over and learns a was interrupted.
    assert_eq!(take("b", later).await, RefreshLease::TakenOver);
    store.release_refresh_lease(&conn.key, "b").await.unwrap();
    assert_eq!(take("a", now).await, RefreshLease::Taken, "released");
    let unknown = ConnectionKey::new("microsoft", "nobody");
    assert_eq!(
        store
            .acquire_refresh_lease(&unknown, "a", later, now)
            .await
            .unwrap(),
        RefreshLease::NotTaken
    );
}

pub async fn oauth_states_are_single_use_bound_to_their_browser_and_expire(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let state = OAuthState {
        flow: Flow::Connect,
        integration: "microsoft".into(),
        connection_id: "c1".into(),
        connection_config: BTreeMap::new(),
        return_url: None,
        pkce_verifier: Some(SecretString::from("verifier")),
        browser_hash: "b".into(),
        expires_at: now + chrono::Duration::minutes(10),
    };
    store.create_oauth_state("h1", &state, now).await.unwrap();
    store.create_oauth_state("h2", &state, now).await.unwrap();
    // Another browser's callback is refused and leaves the state to the browser it belongs to.
    assert!(matches!(
        store.take_oauth_state("h1", "other", now).await.unwrap(),
        TakenState::OtherBrowser
    ));
    let TakenState::Taken(taken) = store.take_oauth_state("h1", "b", now).await.unwrap() else {
        panic!("the state's own browser takes it");
    };
    assert_eq!(taken.pkce_verifier.unwrap().expose_secret(), "verifier");
    assert!(matches!(
        store.take_oauth_state("h1", "b", now).await.unwrap(),
        TakenState::Unknown
    ));
    let late = now + chrono::Duration::minutes(11);
    assert!(matches!(
        store.take_oauth_state("h2", "b", late).await.unwrap(),
        TakenState::Unknown
    ));
    assert_eq!(
        store.purge_expired(late).await.unwrap(),
        1,
        "the taken state is gone already"
    );
}

pub async fn rotation_moves_every_secret_to_the_active_key(b: &Backend) {
    let now = Utc::now();
    {
        let store = b.open(ring(&[("k1", 1)], "k1")).await;
        store
            .save_connection(new_connection("c1", "a1"), now)
            .await
            .unwrap();
        store
            .save_connection(new_connection("c2", "a2"), now)
            .await
            .unwrap();
    }
    let both = b.open(ring(&[("k1", 1), ("k2", 2)], "k2")).await;
    let rotation = both.reencrypt_all().await.unwrap();
    assert_eq!(
        rotation,
        Rotation {
            reencrypted: 2,
            current: 0
        }
    );
    assert_eq!(
        both.reencrypt_all().await.unwrap(),
        Rotation {
            reencrypted: 0,
            current: 2
        }
    );
    let new_only = b.open(ring(&[("k2", 2)], "k2")).await;
    let read = new_only
        .connection(&ConnectionKey::new("microsoft", "c2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.tokens.access_token.expose_secret(), "a2");
}

pub async fn a_connect_session_is_taken_once_until_it_expires(b: &Backend) {
    let store = b.open(ring(&[("k1", 1)], "k1")).await;
    let now = Utc::now();
    let session = plugboard_store::ConnectSession {
        integration: "microsoft".into(),
        connection_id: "c1".into(),
        connection_config: BTreeMap::from([("tenant".into(), "contoso".into())]),
        return_url: Some("http://localhost:3000/done".into()),
        // Stored to the millisecond.
        expires_at: chrono::DateTime::from_timestamp_millis(
            (now + chrono::Duration::minutes(30)).timestamp_millis(),
        )
        .unwrap(),
    };
    store.create_connect_session("h1", &session).await.unwrap();
    store.create_connect_session("h2", &session).await.unwrap();
    assert_eq!(
        store.take_connect_session("other", now).await.unwrap(),
        None
    );
    // Looking at a session (the connect page) leaves it for the flow to take.
    for _ in 0..2 {
        assert_eq!(
            store.connect_session("h1", now).await.unwrap(),
            Some(session.clone())
        );
    }
    assert_eq!(
        store.take_connect_session("h1", now).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.connect_session("h1", now).await.unwrap(), None);
    assert_eq!(
        store.take_connect_session("h1", now).await.unwrap(),
        None,
        "one link, one flow"
    );
    let late = now + chrono::Duration::minutes(31);
    assert_eq!(store.connect_session("h2", late).await.unwrap(), None);
    assert_eq!(store.take_connect_session("h2", late).await.unwrap(), None);
    assert_eq!(store.purge_expired(late).await.unwrap(), 1);
    assert_eq!(b.rows("connect_sessions").await, 0);
}

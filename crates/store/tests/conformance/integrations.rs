//! Integrations' own state: credential expiry notices, each claimed by one process, and the
//! refused-credential mark, set and cleared once whichever replica sees the change.

use chrono::NaiveDate;
use plugboard_store::CredentialNotice;

use crate::support::*;

fn notice(credential: &str, expires_on: &str, days_ahead: i64) -> CredentialNotice {
    CredentialNotice {
        integration: "microsoft".into(),
        credential: credential.into(),
        expires_on: expires_on.parse::<NaiveDate>().unwrap(),
        days_ahead,
    }
}

pub async fn each_credential_notice_is_claimed_once_among_replicas(b: &Backend) {
    let keys = ring(&[("k1", 1)], "k1");
    let (one, two) = (b.open(keys.clone()).await, b.open(keys).await);
    let now = Utc::now();
    let first = notice("integrations.microsoft.credentials[0]", "2027-05-01", 30);
    // Two replicas checking at once: exactly one claim wins.
    let (a, b2) = tokio::join!(
        one.claim_credential_notice(&first, now),
        two.claim_credential_notice(&first, now)
    );
    assert_eq!(
        [a.unwrap(), b2.unwrap()].iter().filter(|won| **won).count(),
        1
    );
    assert!(!one.claim_credential_notice(&first, now).await.unwrap());
    // Another threshold, another credential, or the same key holding a new credential (a new
    // expiry) are other notices.
    for other in [
        notice("integrations.microsoft.credentials[0]", "2027-05-01", 7),
        notice("integrations.microsoft.credentials[1]", "2027-05-01", 30),
        notice("integrations.microsoft.credentials[0]", "2028-05-01", 30),
    ] {
        assert!(two.claim_credential_notice(&other, now).await.unwrap());
        assert!(!one.claim_credential_notice(&other, now).await.unwrap());
    }
    let mut elsewhere = first.clone();
    elsewhere.integration = "graph".into();
    assert!(one.claim_credential_notice(&elsewhere, now).await.unwrap());
    assert_eq!(b.rows("credential_notices").await, 5);
}

pub async fn a_refused_credential_is_marked_and_cleared_once_among_replicas(b: &Backend) {
    let keys = ring(&[("k1", 1)], "k1");
    let (one, two) = (b.open(keys.clone()).await, b.open(keys).await);
    let now = Utc::now();
    assert!(!one.set_credential_failing("microsoft", None).await.unwrap());
    assert!(one.credential_failures().await.unwrap().is_empty());
    let (a, b2) = tokio::join!(
        one.set_credential_failing("microsoft", Some(("AADSTS7000222: expired", now))),
        two.set_credential_failing("microsoft", Some(("AADSTS7000222: expired", now)))
    );
    assert_eq!(
        [a.unwrap(), b2.unwrap()].iter().filter(|won| **won).count(),
        1,
        "the failure is recorded once"
    );
    let failures = two.credential_failures().await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].integration, "microsoft");
    assert_eq!(failures[0].reason, "AADSTS7000222: expired");
    assert_eq!(failures[0].since.timestamp_millis(), now.timestamp_millis());
    assert!(
        !one.set_credential_failing("microsoft", Some(("later", Utc::now())))
            .await
            .unwrap(),
        "already failing: the first failure's time and reason stay"
    );
    assert_eq!(
        two.credential_failures().await.unwrap()[0].reason,
        "AADSTS7000222: expired"
    );
    // Another integration is its own.
    assert!(
        one.set_credential_failing("graph", Some(("x", now)))
            .await
            .unwrap()
    );
    let (a, b2) = tokio::join!(
        one.set_credential_failing("microsoft", None),
        two.set_credential_failing("microsoft", None)
    );
    assert_eq!(
        [a.unwrap(), b2.unwrap()].iter().filter(|won| **won).count(),
        1,
        "the recovery is recorded once"
    );
    let left: Vec<String> = one
        .credential_failures()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.integration)
        .collect();
    assert_eq!(left, ["graph"]);
    // It can fail again after recovering.
    assert!(
        two.set_credential_failing("microsoft", Some(("again", now)))
            .await
            .unwrap()
    );
}

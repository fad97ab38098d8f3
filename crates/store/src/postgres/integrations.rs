//! Integrations' own state on PostgreSQL: credential expiry notices claimed by an insert that does
//! nothing when the row exists, and the refused-credential mark set and cleared by a
//! compare-and-swap (see `crate::integrations`).

use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::columns::{from_millis, millis};
use crate::integrations::date_text;
use crate::{CredentialFailure, CredentialNotice, StoreResult};

impl PostgresStore {
    pub(super) async fn claim_credential_notice_postgres(
        &self,
        notice: &CredentialNotice,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO credential_notices \
             (integration, credential, expires_on, days_ahead, sent_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&notice.integration)
        .bind(&notice.credential)
        .bind(date_text(notice.expires_on))
        .bind(notice.days_ahead)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn set_credential_failing_postgres(
        &self,
        integration: &str,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> StoreResult<bool> {
        let done = match failure {
            Some((reason, since)) => {
                sqlx::query(
                    "INSERT INTO integration_states \
                     (integration, credential_failed_at, credential_failure) VALUES ($1, $2, $3) \
                     ON CONFLICT (integration) DO UPDATE \
                     SET credential_failed_at = excluded.credential_failed_at, \
                     credential_failure = excluded.credential_failure \
                     WHERE integration_states.credential_failed_at IS NULL",
                )
                .bind(integration)
                .bind(millis(since))
                .bind(reason)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE integration_states \
                     SET credential_failed_at = NULL, credential_failure = NULL \
                     WHERE integration = $1 AND credential_failed_at IS NOT NULL",
                )
                .bind(integration)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn credential_failures_postgres(&self) -> StoreResult<Vec<CredentialFailure>> {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT integration, credential_failed_at, credential_failure \
             FROM integration_states WHERE credential_failed_at IS NOT NULL ORDER BY integration",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(integration, since, reason)| {
                Ok(CredentialFailure {
                    integration,
                    since: from_millis(since)?,
                    reason: reason.unwrap_or_default(),
                })
            })
            .collect()
    }
}

//! [`ControlClient`]: the control API over HTTP, so it drives an in-process emulator and a
//! separate `plugboard-emulator` process alike.

use anyhow::{Context, bail};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::control::types::*;
use crate::people::Person;

#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base_url: String,
}

impl ControlClient {
    /// `base_url` is the emulator's root, e.g. `http://127.0.0.1:8400`.
    pub fn new(base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        ControlClient {
            http: reqwest::Client::new(),
            base_url,
        }
    }

    /// Sends a control call to `/_emulator/{segments…}`; segments are percent-encoded, so ids
    /// with `/` or `+` (personal contacts have them) are safe.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<T> {
        let mut url = Url::parse(&self.base_url)
            .with_context(|| format!("emulator URL '{}'", self.base_url))?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("emulator URL '{}' cannot have a path", self.base_url))?
            .pop_if_empty()
            .push("_emulator")
            .extend(segments);
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {url}: {status}: {text}");
        }
        response
            .json()
            .await
            .with_context(|| format!("decoding the answer of {method} {url}"))
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.call(Method::GET, segments, None::<&()>).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &(impl Serialize + ?Sized),
    ) -> anyhow::Result<T> {
        self.call(Method::POST, segments, Some(body)).await
    }

    async fn delete<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.call(Method::DELETE, segments, None::<&()>).await
    }

    pub async fn create_tenant(&self, request: &CreateTenant) -> anyhow::Result<TenantInfo> {
        self.post(&["tenants"], request).await
    }

    pub async fn tenants(&self) -> anyhow::Result<Vec<TenantInfo>> {
        self.get(&["tenants"]).await
    }

    pub async fn create_app(&self, request: &CreateApp) -> anyhow::Result<AppInfo> {
        self.post(&["apps"], request).await
    }

    pub async fn apps(&self) -> anyhow::Result<Vec<AppInfo>> {
        self.get(&["apps"]).await
    }

    pub async fn create_user(&self, request: &CreateUser) -> anyhow::Result<UserInfo> {
        self.post(&["users"], request).await
    }

    /// A subscription (and key) for the API Management service under `/apim`.
    pub async fn create_subscription(
        &self,
        request: &CreateSubscription,
    ) -> anyhow::Result<SubscriptionInfo> {
        self.post(&["subscriptions"], request).await
    }

    /// Revokes a subscription: its key is answered 401 from now on.
    pub async fn revoke_subscription(&self, id: &str) -> anyhow::Result<SubscriptionInfo> {
        self.delete(&["subscriptions", id]).await
    }

    pub async fn users(&self) -> anyhow::Result<Vec<UserInfo>> {
        self.get(&["users"]).await
    }

    /// Replaces the user's people with `count` generated from `seed`.
    pub async fn seed_people(
        &self,
        user: &str,
        count: usize,
        seed: u64,
    ) -> anyhow::Result<PeopleCount> {
        self.post(
            &["users", user, "people", "seed"],
            &SeedPeople { count, seed },
        )
        .await
    }

    /// Adds a person given as a [`Person`] or any JSON of that shape; an id is minted if absent.
    pub async fn add_person(
        &self,
        user: &str,
        person: &(impl Serialize + ?Sized),
    ) -> anyhow::Result<Person> {
        self.post(&["users", user, "people"], person).await
    }

    /// Applies a JSON merge patch to a person (`null` removes a property).
    pub async fn update_person(
        &self,
        user: &str,
        person_id: &str,
        patch: &serde_json::Value,
    ) -> anyhow::Result<Person> {
        self.call(
            Method::PATCH,
            &["users", user, "people", person_id],
            Some(patch),
        )
        .await
    }

    pub async fn remove_person(&self, user: &str, person_id: &str) -> anyhow::Result<Person> {
        self.delete(&["users", user, "people", person_id]).await
    }

    pub async fn people(&self, user: &str) -> anyhow::Result<Vec<Person>> {
        self.get(&["users", user, "people"]).await
    }

    pub async fn expire_tokens(&self, request: &ExpireTokens) -> anyhow::Result<Expired> {
        self.post(&["tokens", "expire"], request).await
    }

    pub async fn revoke_refresh_tokens(&self, user: &str) -> anyhow::Result<UserInfo> {
        self.post(&["users", user, "revoke-refresh-tokens"], &())
            .await
    }

    pub async fn revoke_consent(&self, user: &str) -> anyhow::Result<UserInfo> {
        self.post(&["users", user, "revoke-consent"], &()).await
    }

    pub async fn require_mfa(&self, user: &str) -> anyhow::Result<UserInfo> {
        self.post(&["users", user, "require-mfa"], &()).await
    }

    pub async fn update_secret(
        &self,
        client_id: &str,
        request: &UpdateSecret,
    ) -> anyhow::Result<AppInfo> {
        self.post(&["apps", client_id, "secret"], request).await
    }

    /// Adds a client secret next to those the app holds: its id, value and expiry.
    pub async fn add_secret(
        &self,
        client_id: &str,
        request: &AddSecret,
    ) -> anyhow::Result<NewSecret> {
        self.post(&["apps", client_id, "secrets"], request).await
    }

    /// One of the app's secrets expires now: sending it answers AADSTS7000222.
    pub async fn expire_secret_by_id(
        &self,
        client_id: &str,
        secret_id: &str,
    ) -> anyhow::Result<SecretInfo> {
        self.post(&["apps", client_id, "secrets", secret_id, "expire"], &())
            .await
    }

    /// Removes one of the app's secrets: sending it answers AADSTS7000215.
    pub async fn remove_secret(
        &self,
        client_id: &str,
        secret_id: &str,
    ) -> anyhow::Result<SecretInfo> {
        self.delete(&["apps", client_id, "secrets", secret_id])
            .await
    }

    /// Registers a certificate on the app: client assertions signed with its key are accepted.
    pub async fn add_certificate(
        &self,
        client_id: &str,
        request: &AddCertificate,
    ) -> anyhow::Result<CertificateInfo> {
        self.post(&["apps", client_id, "certificates"], request)
            .await
    }

    /// The app's first client secret expires now: the token endpoint answers AADSTS7000222
    /// for it (other secrets the app holds keep working).
    pub async fn expire_secret(&self, client_id: &str) -> anyhow::Result<AppInfo> {
        self.update_secret(
            client_id,
            &UpdateSecret {
                expires_in_secs: 0,
                rotate: false,
            },
        )
        .await
    }

    /// Forces the outcome of the app's next authorize or admin consent request.
    pub async fn schedule_outcome(
        &self,
        client_id: &str,
        outcome: &NextOutcome,
    ) -> anyhow::Result<NextOutcome> {
        self.post(&["apps", client_id, "next-outcome"], outcome)
            .await
    }

    pub async fn clock(&self) -> anyhow::Result<ClockInfo> {
        self.get(&["clock"]).await
    }

    pub async fn advance_clock(&self, seconds: i64) -> anyhow::Result<ClockInfo> {
        self.post(&["clock", "advance"], &AdvanceClock { seconds })
            .await
    }

    /// Adds a fault rule; returns the rules still pending.
    pub async fn add_fault(&self, rule: &FaultRule) -> anyhow::Result<Vec<FaultRule>> {
        self.post(&["faults"], rule).await
    }

    pub async fn faults(&self) -> anyhow::Result<Vec<FaultRule>> {
        self.get(&["faults"]).await
    }

    pub async fn clear_faults(&self) -> anyhow::Result<Vec<FaultRule>> {
        self.delete(&["faults"]).await
    }

    pub async fn counters(&self) -> anyhow::Result<Counters> {
        self.get(&["counters"]).await
    }

    pub async fn reset_counters(&self) -> anyhow::Result<Counters> {
        self.delete(&["counters"]).await
    }

    pub async fn settings(&self) -> anyhow::Result<Settings> {
        self.get(&["settings"]).await
    }

    pub async fn update_settings(&self, update: &UpdateSettings) -> anyhow::Result<Settings> {
        self.call(Method::PATCH, &["settings"], Some(update)).await
    }

    /// Sets what redeeming a refresh token does to it: Microsoft's behaviour (`Off`, the
    /// default) or a rotating provider's, for tests of clients that lose a new refresh token.
    pub async fn set_refresh_token_rotation(
        &self,
        rotation: RefreshTokenRotation,
    ) -> anyhow::Result<Settings> {
        self.update_settings(&UpdateSettings {
            refresh_token_rotation: Some(rotation),
            ..UpdateSettings::default()
        })
        .await
    }

    /// Creates a tenant, a multi-tenant app registration with a secret and the given redirect
    /// URIs, and one user with `people` seeded people.
    pub async fn setup_demo(&self, options: DemoOptions) -> anyhow::Result<DemoSetup> {
        let tenant = self.create_tenant(&CreateTenant::default()).await?;
        let app = self
            .create_app(&CreateApp {
                name: Some("Plugboard".into()),
                home_tenant: tenant.id.clone(),
                redirect_uris: options.redirect_uris,
                ..CreateApp::default()
            })
            .await?;
        let user = self
            .create_user(&CreateUser {
                tenant: tenant.id.clone(),
                ..CreateUser::default()
            })
            .await?;
        self.seed_people(&user.id, options.people, options.seed)
            .await?;
        Ok(DemoSetup {
            tenant_domain: tenant.domains[0].clone(),
            tenant_id: tenant.id,
            client_id: app.client_id,
            client_secret: app.client_secret,
            user_id: user.id,
            user_principal_name: user.user_principal_name,
        })
    }
}

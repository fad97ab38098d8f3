//! `POST /{tenant}/oauth2/v2.0/token`: redeems authorization codes and refresh tokens.
//!
//! Checks run in Microsoft's order: tenant, grant type, client, client credential, then the
//! grant itself. Client authentication failures are 401s, everything else 400.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::form_urlencoded;

use super::error::{Aadsts, OAuthError};
use super::{assertion, jwt, resolve_client};
use crate::control::types::RefreshTokenRotation;
use crate::directory::App;
use crate::random;
use crate::scopes::{GRAPH_APP_ID, Scopes};
use crate::state::{AppState, World};
use crate::tokens::{AccessToken, Grant, REFRESH_INACTIVITY};

type TokenForm = HashMap<String, String>;

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    token_type: &'static str,
    scope: String,
    expires_in: i64,
    ext_expires_in: i64,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        (
            [
                (header::CACHE_CONTROL, "no-store, no-cache"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(self),
        )
            .into_response()
    }
}

pub async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<TokenResponse, OAuthError> {
    let answer = redeem(&state, &tenant, &headers, &body);
    if let Err(error) = &answer {
        state.counters.token_error(error.code());
    }
    answer
}

fn redeem(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<TokenResponse, OAuthError> {
    let form: TokenForm = form_urlencoded::parse(body).into_owned().collect();
    let grant_type = form.get("grant_type").map(String::as_str);
    state
        .counters
        .token_request(grant_type.unwrap_or("missing"));
    let now = state.clock.now();
    let rotation = state.settings().refresh_token_rotation;
    let mut world = state.write();

    let (basic_id, credential) = credential(headers, &form)?;
    let client_id = form.get("client_id").cloned().or(basic_id);
    let app = match resolve_client(&world.directory, tenant, client_id.as_deref()) {
        Err(aadsts) if aadsts.code == 700016 => {
            return Err(OAuthError::unauthorized_client(aadsts));
        }
        Err(aadsts) => return Err(OAuthError::invalid_request(aadsts)),
        Ok((_, app)) => app,
    };
    let grant_type = grant_type
        .ok_or_else(|| OAuthError::invalid_request(Aadsts::missing_parameter("grant_type")))?;
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return Err(OAuthError::unsupported_grant_type(grant_type));
    }
    let client_id = app.client_id.clone();
    let authenticated = match credential {
        Credential::Assertion {
            assertion_type,
            assertion,
        } => {
            let app = world.directory.app_mut(&client_id).expect("resolved");
            let audiences = token_endpoints(headers, tenant);
            let thumbprint =
                assertion::verify(app, assertion_type.as_deref(), &assertion, &audiences, now)
                    .map_err(OAuthError::invalid_client)?;
            format!("certificate:{thumbprint}")
        }
        Credential::Secret(secret) => authenticate(app, Some(secret), now)?,
        Credential::Missing => authenticate(app, None, now)?,
    };
    state.counters.client_credential(&authenticated);

    let redeemed = match grant_type {
        "authorization_code" => redeem_code(&mut world, &client_id, &form, now)?,
        _ => redeem_refresh_token(&mut world, &client_id, &form, rotation, now)?,
    };
    Ok(issue(&mut world, redeemed, now))
}

enum Credential {
    Secret(String),
    Assertion {
        assertion_type: Option<String>,
        assertion: String,
    },
    Missing,
}

/// Where this request was sent, as a client assertion's `aud` must name it: Entra's
/// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token` with the tenant as the URL
/// has it, here on the emulator's own host (plain HTTP, or HTTPS behind a proxy).
fn token_endpoints(headers: &HeaderMap, tenant: &str) -> Vec<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("login.microsoftonline.com");
    ["http", "https"]
        .iter()
        .map(|scheme| format!("{scheme}://{host}/{tenant}/oauth2/v2.0/token"))
        .collect()
}

/// The client's credential: `client_secret` in the body, or HTTP Basic whose halves are
/// form-urlencoded (RFC 6749 §2.3.1). Returns the Basic user name too: it is the client id.
fn credential(
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(Option<String>, Credential), OAuthError> {
    if let Some(secret) = form.get("client_secret") {
        return Ok((None, Credential::Secret(secret.clone())));
    }
    if let Some(assertion) = form.get("client_assertion") {
        return Ok((
            None,
            Credential::Assertion {
                assertion_type: form.get("client_assertion_type").cloned(),
                assertion: assertion.clone(),
            },
        ));
    }
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok((None, Credential::Missing));
    };
    let malformed = || OAuthError::invalid_request(Aadsts::malformed_grant());
    let encoded = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded.trim())
        .ok_or_else(malformed)?;
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // `form_urlencoded` decodes whole `name=value` pairs, so decode each half as a value.
    let unescape = |part: &str| {
        form_urlencoded::parse(format!("v={part}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
    };
    Ok((
        unescape(id),
        Credential::Secret(unescape(secret).unwrap_or_default()),
    ))
}

/// Checks a client secret against every secret the app holds (client assertions are
/// `assertion::verify`'s): an unexpired one authenticates, an expired one answers
/// AADSTS7000222, a value the app does not hold AADSTS7000215. Answers the secret's id.
fn authenticate(
    app: &App,
    secret: Option<String>,
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let Some(secret) = secret else {
        return Err(OAuthError::invalid_client(Aadsts::missing_credential()));
    };
    match app.secrets.iter().find(|s| s.value == secret) {
        None => Err(OAuthError::invalid_client(Aadsts::wrong_secret(
            &app.client_id,
        ))),
        Some(held) if now >= held.expires_at => Err(OAuthError::invalid_client(
            Aadsts::secret_expired(&app.client_id),
        )),
        Some(held) => Ok(held.id.clone()),
    }
}

fn required<'f>(form: &'f TokenForm, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(Aadsts::missing_parameter(name)))
}

fn parse_scope(raw: &str) -> Result<Scopes, OAuthError> {
    Scopes::parse(raw).map_err(|bad| OAuthError::invalid_scope(Aadsts::invalid_scope(&bad)))
}

/// What a redeemed code or refresh token yields.
struct Redeemed {
    grant: Grant,
    /// Of the new tokens.
    scopes: Scopes,
    /// For the id token.
    nonce: Option<String>,
    /// The refresh token family a new refresh token joins; `None` starts one (a sign-in).
    family: Option<String>,
}

fn redeem_code(
    world: &mut World,
    client_id: &str,
    form: &TokenForm,
    now: DateTime<Utc>,
) -> Result<Redeemed, OAuthError> {
    let value = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    if let Some(raw) = form.get("scope") {
        parse_scope(raw)?;
    }
    let code = world
        .tokens
        .codes
        .get_mut(value)
        .filter(|code| code.grant.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant(Aadsts::malformed_grant()))?;
    if code.redeemed {
        return Err(OAuthError::invalid_grant(Aadsts::code_redeemed()));
    }
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant(Aadsts::expired_grant()));
    }
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(Aadsts::reply_address_mismatch(
            redirect_uri,
            &code.redirect_uri,
        )));
    }
    if let Some(challenge) = &code.code_challenge {
        let verified = form
            .get("code_verifier")
            .is_some_and(|verifier| s256(verifier) == *challenge);
        if !verified {
            return Err(OAuthError::invalid_grant(Aadsts::pkce_mismatch()));
        }
    }
    code.redeemed = true;
    Ok(Redeemed {
        grant: code.grant.clone(),
        scopes: code.grant.scopes.clone(),
        nonce: code.nonce.clone(),
        family: None,
    })
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Redeems a refresh token. While refresh tokens rotate, the token is used up by this, and a
/// used one coming back is refused as revoked (with its whole family, if so set).
fn redeem_refresh_token(
    world: &mut World,
    client_id: &str,
    form: &TokenForm,
    rotation: RefreshTokenRotation,
    now: DateTime<Utc>,
) -> Result<Redeemed, OAuthError> {
    let value = required(form, "refresh_token")?;
    let token = world
        .tokens
        .refresh
        .get_mut(value)
        .filter(|token| token.grant.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant(Aadsts::malformed_grant()))?;
    if let Some(used_at) = token.used_at
        && rotation != RefreshTokenRotation::Off
    {
        let (issued_at, family) = (token.issued_at, token.family.clone());
        if rotation == RefreshTokenRotation::RevokeFamilyOnReuse {
            world.tokens.revoke_family(&family, now);
        }
        return Err(OAuthError::invalid_grant(Aadsts::revoked_grant(
            issued_at, used_at,
        )));
    }
    if let Some(revoked_at) = token.revoked_at {
        return Err(OAuthError::invalid_grant(Aadsts::revoked_grant(
            token.issued_at,
            revoked_at,
        )));
    }
    if token.expired {
        return Err(OAuthError::invalid_grant(Aadsts::expired_grant()));
    }
    if now - token.last_used_at >= REFRESH_INACTIVITY {
        return Err(OAuthError::invalid_grant(Aadsts::inactive_refresh_token(
            token.issued_at,
        )));
    }
    let grant = token.grant.clone();
    let user = world
        .directory
        .user(&grant.user_id)
        .expect("tokens belong to existing users");
    if user.mfa_required {
        return Err(OAuthError::mfa_required());
    }
    let app = world.directory.app(client_id).expect("authenticated");
    if user.consent_revoked {
        return Err(OAuthError::consent_required(&app.client_id, &app.name));
    }

    // What the refresh token can reach: the user's grant plus what an admin has consented to.
    let mut available = grant.scopes.graph.clone();
    available.extend(
        app.admin_consented(&grant.tenant_id)
            .iter()
            .filter(|s| !grant.scopes.graph.contains(s)),
    );
    let scopes = match form.get("scope") {
        None => Scopes {
            graph: available,
            ..grant.scopes.clone()
        },
        Some(raw) => {
            let requested = parse_scope(raw)?.expand_default(&available);
            if requested.graph.iter().any(|s| !available.contains(s)) {
                return Err(OAuthError::invalid_grant(Aadsts::scopes_not_granted()));
            }
            requested
        }
    };
    token.last_used_at = now;
    if rotation != RefreshTokenRotation::Off {
        token.used_at = Some(now);
    }
    Ok(Redeemed {
        grant,
        scopes,
        nonce: None,
        family: Some(token.family.clone()),
    })
}

/// Mints the access token (and the refresh and id tokens the grant and scopes call for).
fn issue(world: &mut World, redeemed: Redeemed, now: DateTime<Utc>) -> TokenResponse {
    let Redeemed {
        grant,
        scopes,
        nonce,
        family,
    } = redeemed;
    let user = world
        .directory
        .user(&grant.user_id)
        .expect("grants belong to existing users");
    let app = world
        .directory
        .app(&grant.client_id)
        .expect("grants belong to existing apps");
    let expires_in = random::token_lifetime_secs();
    let expires_at = now + TimeDelta::seconds(expires_in);
    let access_token = jwt::access_token(&json!({
        "aud": GRAPH_APP_ID,
        "iss": format!("https://sts.windows.net/{}/", grant.tenant_id),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": expires_at.timestamp(),
        "app_displayname": app.name,
        "appid": app.client_id,
        "name": user.display_name,
        "oid": user.id,
        "scp": scopes.graph.join(" "),
        "tid": grant.tenant_id,
        "upn": user.user_principal_name,
        "uti": random::opaque(16),
        "ver": "1.0",
    }));
    let id_token = scopes.has("openid").then(|| {
        let mut claims = json!({
            "aud": app.client_id,
            "iss": format!("https://login.microsoftonline.com/{}/v2.0", grant.tenant_id),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": (now + TimeDelta::hours(1)).timestamp(),
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}:{}", app.client_id, user.id))),
            "tid": grant.tenant_id,
            "ver": "2.0",
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if scopes.has("email") {
            claims["email"] = user.mail.clone().into();
        }
        jwt::id_token(&claims, app.signing_secret())
    });
    let response_scope = scopes.response_value();
    world.tokens.access.insert(
        access_token.clone(),
        AccessToken {
            client_id: grant.client_id.clone(),
            user_id: grant.user_id.clone(),
            tenant_id: grant.tenant_id.clone(),
            scopes: scopes.graph,
            expires_at,
        },
    );
    let refresh_token = grant
        .scopes
        .has("offline_access")
        .then(|| world.tokens.issue_refresh(grant, family, now));
    TokenResponse {
        token_type: "Bearer",
        scope: response_scope,
        expires_in,
        ext_expires_in: expires_in,
        access_token,
        refresh_token,
        id_token,
    }
}

//! WorkOS AuthKit access tokens: RS256 JWTs checked against AuthKit's JWKS.
//!
//! The key set is fetched on first use, refreshed after an hour, and fetched again when a
//! token names a key id we do not know (AuthKit rotated its keys). Every fetch attempt —
//! successful or not — is at most one per [`MIN_REFETCH_INTERVAL`], so neither a stream of
//! forged key ids nor an AuthKit outage makes us hammer AuthKit, and requests never queue
//! behind a string of doomed fetches. When a refresh fails, the keys we have keep working;
//! a token naming a key we do not have is then [`TokenError::KeysUnavailable`] (the server
//! answers `503`, not `401`): we cannot tell a rotation from a forgery until AuthKit answers.
//! A token is accepted only with `alg` RS256, a known `kid`, a valid signature, `iss` equal
//! to the AuthKit issuer, `aud` containing this resource's URL, and `exp`/`nbf` within
//! [`LEEWAY_SECS`]. Besides `sub`, the principal gets the token's `org_id` and, when a JWT
//! template puts them there, the user's name, e-mail and its verification ([`IdentityClaims`]).
//! This module must not log tokens or pass them anywhere.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind as JwtErrorKind};
use serde::Deserialize;

use super::{AuthMethod, Principal};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// A cached key set is refreshed after this long.
pub const JWKS_TTL: Duration = Duration::from_secs(3600);
/// At most one key-set fetch attempt per this interval.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Why a token was refused; the message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted; AuthKit signs with RS256")]
    Algorithm(String),
    #[error("the token names no signing key (kid)")]
    NoKeyId,
    #[error("the token was signed with a key AuthKit does not publish")]
    UnknownKey,
    #[error("the token signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued by this server's authorization server")]
    Issuer,
    #[error("the token was not issued for this resource")]
    Audience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token could not be checked: {0}")]
    Invalid(String),
    #[error("the authorization server's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// Which claims carry the user's name, e-mail address and whether that address is verified.
/// AuthKit's access tokens have none of them unless a JWT template adds them, e.g.
/// `{"name": "{{ user.first_name }} {{ user.last_name }}", "email": {{ user.email }},
/// "email_verified": {{ user.email_verified }}}`; when present, no WorkOS lookup is needed.
/// Settings: `MCP_NAME_CLAIM`, `MCP_EMAIL_CLAIM`, `MCP_EMAIL_VERIFIED_CLAIM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityClaims {
    pub name: String,
    pub email: String,
    pub email_verified: String,
}

impl Default for IdentityClaims {
    fn default() -> Self {
        Self {
            name: "name".into(),
            email: "email".into(),
            email_verified: "email_verified".into(),
        }
    }
}

/// The claims we read from an AuthKit access token (`iss`, `aud`, `exp`, `nbf` are checked
/// by the validation itself); the template's claims are among `other`.
#[derive(Debug, Deserialize)]
struct AccessClaims {
    // Optional here so that a missing `sub` is reported as such by the validation.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    /// Whether the last fetch attempt failed (AuthKit unreachable, or a useless answer).
    last_failed: bool,
}

/// Verifies AuthKit access tokens for one resource.
pub struct AuthKitVerifier {
    issuer: String,
    jwks_url: String,
    validation: Validation,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    refetch: tokio::sync::Mutex<()>,
    min_refetch_interval: Duration,
    key_ttl: Duration,
    claims: IdentityClaims,
}

impl AuthKitVerifier {
    /// `issuer` is the AuthKit URL (`https://<subdomain>.authkit.app`), `audience` the
    /// resource URL tokens must be issued for.
    pub fn new(issuer: &str, audience: &str) -> Result<Self, String> {
        super::jwt_crypto::install();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let http = crate::tls::client_builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot set up HTTPS for the AuthKit key set: {e}"))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            jwks_url: format!("{issuer}/oauth2/jwks"),
            validation,
            http,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
                last_attempt: None,
                last_failed: false,
            }),
            refetch: tokio::sync::Mutex::new(()),
            min_refetch_interval: MIN_REFETCH_INTERVAL,
            key_ttl: JWKS_TTL,
            claims: IdentityClaims::default(),
        })
    }

    /// Another spacing of key-set fetches than [`MIN_REFETCH_INTERVAL`], and another key-set
    /// lifetime than [`JWKS_TTL`] (tests exercise refresh and rotation with these).
    pub fn with_timing(mut self, min_refetch_interval: Duration, key_ttl: Duration) -> Self {
        self.min_refetch_interval = min_refetch_interval;
        self.key_ttl = key_ttl;
        self
    }

    /// Other claim names for the user's name and e-mail than [`IdentityClaims::default`].
    pub fn with_identity_claims(mut self, claims: IdentityClaims) -> Self {
        self.claims = claims;
        self
    }

    /// How long until the key set may be fetched again: what a client kept waiting by an
    /// AuthKit outage is told (`Retry-After`), at least a second.
    pub fn retry_after(&self) -> Duration {
        let waited = self
            .read_cache()
            .last_attempt
            .map_or(self.min_refetch_interval, |t| t.elapsed());
        self.min_refetch_interval
            .saturating_sub(waited)
            .max(Duration::from_secs(1))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Installs a key set as if just fetched (benchmarks; a warm cache).
    pub fn preload(&self, keys: &JwkSet) -> Result<(), TokenError> {
        self.install(keys, Instant::now())
    }

    /// Checks `token` and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| match declared_algorithm(token) {
                Some(alg) => TokenError::Algorithm(alg),
                None => TokenError::Malformed,
            })?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let key = self.key(&kid).await?;
        self.decode(token, &key)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Principal, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|e| token_error(e.kind()))?;
        let claims = data.claims;
        let subject = claims
            .sub
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        let text = |name: &str| claims.other.get(name).and_then(serde_json::Value::as_str);
        let email = text(&self.claims.email);
        // Liquid renders `{{ user.email_verified }}` as a JSON boolean; accept "true" too.
        let verified = match claims.other.get(&self.claims.email_verified) {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let mut principal = Principal::new(
            AuthMethod::AuthKit,
            &subject,
            text(&self.claims.name),
            email,
        );
        principal.org_id = claims
            .org_id
            .filter(|o| !o.trim().is_empty() && o.len() <= 100);
        principal.verified_email = email
            .filter(|_| verified)
            .filter(|e| e.contains('@') && !e.chars().any(char::is_control))
            .map(|e| e.trim().to_owned());
        Ok(principal)
    }

    /// The key for `kid` from a key set fetched within the TTL.
    fn fresh_key(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self.read_cache();
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < self.key_ttl);
        fresh.then(|| cache.keys.get(kid).cloned()).flatten()
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        // One fetch at a time; whoever waited re-checks the cache the winner filled.
        let _turn = self.refetch.lock().await;
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        let may_fetch = self
            .read_cache()
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.min_refetch_interval);
        let fetched = if may_fetch {
            Some(self.fetch().await)
        } else {
            None
        };
        let cache = self.read_cache();
        // Keys past their TTL still verify when a refresh failed or was just tried. A key we
        // do not have is "unknown" only if AuthKit just told us its current set; otherwise
        // it may be a new key we could not fetch.
        match (cache.keys.get(kid), fetched) {
            (Some(key), Some(Err(e))) => {
                tracing::warn!(error = %e, "AuthKit key set refresh failed; using the keys we have");
                Ok(key.clone())
            }
            (Some(key), _) => Ok(key.clone()),
            (None, Some(Err(e))) => Err(e),
            (None, None) if cache.last_failed => Err(TokenError::KeysUnavailable(
                "the last fetch failed moments ago".into(),
            )),
            (None, _) => Err(TokenError::UnknownKey),
        }
    }

    async fn fetch(&self) -> Result<(), TokenError> {
        let attempt = Instant::now();
        self.write_cache().last_attempt = Some(attempt);
        let fetched = self.fetch_at(attempt).await;
        self.write_cache().last_failed = fetched.is_err();
        fetched
    }

    async fn fetch_at(&self, attempt: Instant) -> Result<(), TokenError> {
        let unavailable =
            |e: reqwest::Error| TokenError::KeysUnavailable(e.without_url().to_string());
        let keys: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        tracing::info!(keys = keys.keys.len(), "fetched the AuthKit key set");
        self.install(&keys, attempt)
    }

    fn read_cache(&self) -> RwLockReadGuard<'_, KeyCache> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_cache(&self) -> RwLockWriteGuard<'_, KeyCache> {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn install(&self, keys: &JwkSet, at: Instant) -> Result<(), TokenError> {
        let usable: HashMap<String, DecodingKey> = keys
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect();
        if usable.is_empty() {
            return Err(TokenError::KeysUnavailable(
                "the key set has no usable keys".into(),
            ));
        }
        *self.write_cache() = KeyCache {
            keys: usable,
            fetched_at: Some(at),
            last_attempt: Some(at),
            last_failed: false,
        };
        Ok(())
    }
}

/// The `alg` a token's header declares, when the header is JSON but names an algorithm the
/// JWT library does not know (such as `none`): for a precise refusal message.
fn declared_algorithm(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let alg: String = json.get("alg")?.as_str()?.chars().take(20).collect();
    Some(alg)
}

fn token_error(kind: &JwtErrorKind) -> TokenError {
    match kind {
        JwtErrorKind::InvalidSignature => TokenError::Signature,
        JwtErrorKind::ExpiredSignature => TokenError::Expired,
        JwtErrorKind::ImmatureSignature => TokenError::NotYetValid,
        JwtErrorKind::InvalidIssuer => TokenError::Issuer,
        JwtErrorKind::InvalidAudience => TokenError::Audience,
        JwtErrorKind::InvalidAlgorithm => TokenError::Algorithm("another algorithm".into()),
        JwtErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        JwtErrorKind::InvalidToken
        | JwtErrorKind::Base64(_)
        | JwtErrorKind::Json(_)
        | JwtErrorKind::Utf8(_) => TokenError::Malformed,
        other => TokenError::Invalid(format!("{other:?}")),
    }
}

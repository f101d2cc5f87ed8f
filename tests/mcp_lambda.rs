//! The compiled `mcp-server` bootstrap under the Runtime API emulator, fed API Gateway REST
//! (v1) proxy events as a `prod` stage delivers them: the stage prefix must not break
//! routing, tokens are checked against the (mock) AuthKit, and answers are proxy responses.

mod common;

use common::mock_authkit::{self, MockAuthKit};
use common::{spec, start};
use serde_json::{Value, json};
use wikibot::lambda::emulator::RunningFunction;

const HOST: &str = "abc123.execute-api.us-east-1.amazonaws.com";
const RESOURCE: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp";
const STATIC: &str = "lambda-static-token-0123456789abcdefgh";

/// An API Gateway REST API proxy event for stage `prod`.
fn rest_event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Value {
    let mut all: Vec<(&str, &str)> = vec![
        ("Host", HOST),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "443"),
        ("User-Agent", "Claude-User"),
    ];
    all.extend_from_slice(headers);
    let single: serde_json::Map<String, Value> = all
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let multi: serde_json::Map<String, Value> = all
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!([v])))
        .collect();
    json!({
        "resource": path, "path": path, "httpMethod": method,
        "headers": single, "multiValueHeaders": multi,
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r1", "stage": "prod",
            "path": format!("/prod{path}"), "domainName": HOST, "apiId": "abc123",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "httpMethod": method,
            "protocol": "HTTP/1.1", "resourcePath": path, "requestTimeEpoch": 1_795_000_000_000u64,
            "identity": {"sourceIp": "160.79.104.10", "userAgent": "Claude-User"}
        },
        "body": body.map(Value::to_string), "isBase64Encoded": false
    })
}

fn mcp_post(path: &str, token: Option<&str>, body: &Value) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    rest_event("POST", path, &headers, Some(body))
}

fn echo_call(text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}})
}

async fn invoke(function: &mut RunningFunction, event: &Value) -> Value {
    let invocation = function
        .invoke(event.to_string().as_bytes())
        .await
        .expect("invocation");
    invocation.json()
}

/// A response header: REST proxy responses may carry it in `headers` or `multiValueHeaders`.
fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    let find = |field: &str| {
        response[field]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    match find("headers") {
        Some(value) => value.as_str(),
        None => find("multiValueHeaders")?.get(0)?.as_str(),
    }
}

async fn mcp_server(root: &std::path::Path, authkit: &MockAuthKit) -> RunningFunction {
    start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root)
            .env("MCP_RESOURCE_URL", RESOURCE)
            .env("AUTHKIT_DOMAIN", &authkit.issuer)
            .env("MCP_ALLOW_ANY_USER", "true")
            .env("MCP_AUTH_TOKEN", STATIC),
    )
    .await
}

#[tokio::test]
async fn echo_works_with_an_authkit_token_through_a_stage_prefixed_rest_event() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = mcp_server(root.path(), &authkit).await;
    let token = authkit.token(RESOURCE, |_| {});

    // API Gateway's `path` is stage-free; lambda_http puts the stage back; we strip it.
    let response = invoke(
        &mut function,
        &mcp_post("/mcp", Some(&token), &echo_call("cold")),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "cold", "{body}");
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("application/json")
    );

    // A custom domain with a base path delivers the stage in `path` too; still routed.
    let response = invoke(
        &mut function,
        &mcp_post("/prod/mcp", Some(&token), &echo_call("warm")),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert!(response["body"].as_str().unwrap().contains("\"warm\""));

    let response = invoke(
        &mut function,
        &mcp_post("/mcp", Some(STATIC), &echo_call("static")),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        authkit.jwks_fetches(),
        1,
        "the key set is cached across warm invocations"
    );
}

#[tokio::test]
async fn unauthenticated_requests_get_a_challenge_with_the_public_metadata_url() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = mcp_server(root.path(), &authkit).await;

    let response = invoke(&mut function, &mcp_post("/mcp", None, &echo_call("x"))).await;
    assert_eq!(response["statusCode"], 401, "{response}");
    let challenge = header(&response, "www-authenticate").unwrap();
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"https://{HOST}/prod/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );

    let wrong_audience = authkit.token("https://elsewhere.example/mcp", |_| {});
    let response = invoke(
        &mut function,
        &mcp_post("/mcp", Some(&wrong_audience), &echo_call("x")),
    )
    .await;
    assert_eq!(response["statusCode"], 401);
    assert!(
        header(&response, "www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let prm = invoke(
        &mut function,
        &rest_event(
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
            &[],
            None,
        ),
    )
    .await;
    assert_eq!(prm["statusCode"], 200, "{prm}");
    let document: Value = serde_json::from_str(prm["body"].as_str().unwrap()).unwrap();
    assert_eq!(document["resource"], RESOURCE);
    assert_eq!(document["authorization_servers"], json!([authkit.issuer]));
}

#[tokio::test]
async fn a_foreign_host_is_forbidden_and_bad_configuration_stops_init() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = mcp_server(root.path(), &authkit).await;
    let mut event = mcp_post("/mcp", Some(STATIC), &echo_call("x"));
    event["headers"]["Host"] = json!("evil.example");
    event["multiValueHeaders"]["Host"] = json!(["evil.example"]);
    let response = invoke(&mut function, &event).await;
    assert_eq!(response["statusCode"], 403, "{response}");

    // No resource URL: the function refuses to start, naming the variable.
    let mut broken = start(spec(env!("CARGO_BIN_EXE_mcp-server"), root.path())).await;
    let err = broken.invoke(b"{}").await.unwrap_err().to_string();
    assert!(
        err.contains("init failed") && err.contains("MCP_RESOURCE_URL"),
        "{err}"
    );
}

/// A traced request's spans reach the X-Ray daemon nested under the handler: the tool, then
/// the store's git operations, annotated with the tool and the wiki.
#[tokio::test]
async fn a_traced_tool_call_exports_handler_tool_and_git_subsegments() {
    use std::time::Duration;
    use wikibot::lambda::xray::{LocalDaemon, TraceHeader};
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let daemon = LocalDaemon::bind().unwrap();
    let mut function = start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root.path())
            .env("MCP_RESOURCE_URL", RESOURCE)
            .env("AUTHKIT_DOMAIN", &authkit.issuer)
            .env("MCP_ALLOW_ANY_USER", "true")
            .env("MCP_AUTH_TOKEN", STATIC)
            .env(
                "AWS_XRAY_DAEMON_ADDRESS",
                daemon.address().unwrap().to_string(),
            ),
    )
    .await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "write_note", "arguments": {"path": "Traced", "content": "x"}}});
    let header = wikibot::lambda::emulator::trace_header(true);
    let invocation = function
        .invoke_traced(
            mcp_post("/mcp", Some(STATIC), &call).to_string().as_bytes(),
            Some(&header),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(invocation.json()["statusCode"], 200);
    let documents = daemon.drain(Duration::from_millis(200)).unwrap();
    let named = |name: &str| {
        documents
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {documents:?}"))
    };
    let (handler, tool, commit) = (named("handler"), named("tool"), named("git.commit"));
    let parsed = TraceHeader::parse(&header).unwrap();
    assert_eq!(handler["parent_id"], parsed.parent.as_str());
    assert_eq!(tool["parent_id"], handler["id"]);
    assert_eq!(commit["parent_id"], tool["id"], "{documents:#?}");
    assert!(
        documents
            .iter()
            .all(|d| d["trace_id"] == parsed.root.as_str())
    );
    assert_eq!(handler["annotations"]["op"], "write_note");
    assert_eq!(handler["annotations"]["wiki"], "wiki");
    assert_eq!(handler["annotations"]["cold_start"], true);
}

/// The deployed configuration: the policy and the WorkOS key come from the function's
/// environment (as Pulumi sets it); a policy-admitted user's commit carries their real name,
/// anyone else gets `403`.
#[tokio::test]
async fn the_policy_and_workos_lookups_come_from_the_environment() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root.path())
            .env("MCP_RESOURCE_URL", RESOURCE)
            .env("AUTHKIT_DOMAIN", &authkit.issuer)
            .env("MCP_ALLOW", format!("user:{}=rw", mock_authkit::USER))
            .env("WORKOS_API_KEY", mock_authkit::API_KEY)
            .env("WORKOS_BASE_URL", &authkit.issuer),
    )
    .await;
    let write = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "write_note", "arguments": {"path": "Hello", "content": "hi"}}});
    let token = authkit.token(RESOURCE, |_| {});
    let response = invoke(&mut function, &mcp_post("/mcp", Some(&token), &write)).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert!(
        !response["body"]
            .as_str()
            .unwrap()
            .contains("isError\":true")
    );
    let author = common::git(
        &root.path().join("wiki.git"),
        &["log", "-1", "--format=%an <%ae>", "main"],
    );
    assert_eq!(
        author.trim(),
        format!("{} <{}>", mock_authkit::USER_NAME, mock_authkit::USER_EMAIL)
    );

    let stranger = authkit.token(RESOURCE, |c| c["sub"] = json!("user_01STRANGER"));
    let response = invoke(
        &mut function,
        &mcp_post("/mcp", Some(&stranger), &echo_call("x")),
    )
    .await;
    assert_eq!(response["statusCode"], 403, "{response}");
    assert!(
        header(&response, "www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
}

#[tokio::test]
async fn oauth_without_a_policy_refuses_to_start_naming_both_settings() {
    let root = tempfile::tempdir().unwrap();
    let mut function = start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root.path())
            .env("MCP_RESOURCE_URL", RESOURCE)
            .env("AUTHKIT_DOMAIN", "acme-123.authkit.app"),
    )
    .await;
    let err = function.invoke(b"{}").await.unwrap_err().to_string();
    assert!(
        err.contains("init failed")
            && err.contains("MCP_ALLOW")
            && err.contains("MCP_ALLOW_ANY_USER=true"),
        "{err}"
    );
    let mut bad_entry = start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root.path())
            .env("MCP_RESOURCE_URL", RESOURCE)
            .env("AUTHKIT_DOMAIN", "acme-123.authkit.app")
            .env(
                "MCP_ALLOW",
                "domain:example.com=rw, domain:*.example.com=rw",
            ),
    )
    .await;
    let err = bad_entry.invoke(b"{}").await.unwrap_err().to_string();
    assert!(
        err.contains("MCP_ALLOW") && err.contains("*.example.com") && err.contains("wildcards"),
        "{err}"
    );
}

/// lambda_http 1.3 panics converting an event whose `Host` it cannot parse (found by fuzzing);
/// the server answers `400` instead, and keeps serving.
#[tokio::test]
async fn an_event_with_an_unparsable_host_is_a_400_not_a_crash() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = mcp_server(root.path(), &authkit).await;
    for host in ["user@h.example:99999", "h.example:99999", "bad host"] {
        let mut event = mcp_post("/mcp", Some(STATIC), &echo_call("x"));
        event["headers"]["Host"] = json!(host);
        event["multiValueHeaders"]["Host"] = json!([host]);
        // Without API Gateway's own domain name to fall back on, the Host decides.
        event["requestContext"]["domainName"] = Value::Null;
        let response = invoke(&mut function, &event).await;
        assert_eq!(response["statusCode"], 400, "{host}: {response}");
    }
    let response = invoke(
        &mut function,
        &mcp_post("/mcp", Some(STATIC), &echo_call("alive")),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
}

//! The compiled `mcp-server` bootstrap under the Runtime API emulator, fed the events of the
//! front door (`docs/decisions/0005-front-door.md`): the 2.0 payload an HTTP API's `$default`
//! stage sends (the deployed door, on its `execute-api` host or a custom domain) and the one a
//! function URL sends, where Claude.ai must find the discovery documents at the host root
//! and in the 401; and API Gateway REST (v1) proxy events as a `prod` stage delivers them,
//! whose stage prefix must not break routing. Tokens are checked against the (mock) AuthKit,
//! and answers are proxy responses.

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

// --- The front door: 2.0 payload events (HTTP API `$default` stage, function URLs) ---------

/// The MCP URL on the front door: the host root's `/mcp`, no stage.
const DOOR_PATH: &str = "/mcp";

/// Where a 2.0 event comes from: the `execute-api` host of an HTTP API's `$default` stage, a
/// custom domain mapped at its root, or a function URL.
#[derive(Clone, Copy, Debug)]
enum Door {
    HttpApi,
    CustomDomain,
    FunctionUrl,
}

impl Door {
    fn host(self) -> &'static str {
        match self {
            Door::HttpApi => "k7x2pq9d1a.execute-api.us-east-1.amazonaws.com",
            Door::CustomDomain => "wiki.example.com",
            Door::FunctionUrl => "x4mvbc2ubfh3sfg7hcvxgrmnyq0ovnxp.lambda-url.us-east-1.on.aws",
        }
    }

    fn resource(self) -> String {
        format!("https://{}{DOOR_PATH}", self.host())
    }

    /// A 2.0 payload event for `raw_path` as the door delivers it (lower-case header names,
    /// the forwarding headers, the `$default` stage).
    fn event(
        self,
        method: &str,
        raw_path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Value {
        self.staged_event("$default", method, raw_path, headers, body)
    }

    fn staged_event(
        self,
        stage: &str,
        method: &str,
        raw_path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Value {
        let mut all: Vec<(String, &str)> = vec![
            ("host".into(), self.host()),
            ("x-forwarded-proto".into(), "https"),
            ("x-forwarded-port".into(), "443"),
            ("x-forwarded-for".into(), "160.79.104.10"),
            (
                "x-amzn-trace-id".into(),
                "Root=1-67891233-abcdef012345678912345678",
            ),
            ("user-agent".into(), "Claude-User"),
        ];
        all.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)));
        let headers: serde_json::Map<String, Value> =
            all.into_iter().map(|(k, v)| (k, json!(v))).collect();
        let (api_id, domain_prefix) = match self {
            Door::FunctionUrl => (
                "x4mvbc2ubfh3sfg7hcvxgrmnyq0ovnxp",
                "x4mvbc2ubfh3sfg7hcvxgrmnyq0ovnxp",
            ),
            Door::HttpApi => ("k7x2pq9d1a", "k7x2pq9d1a"),
            Door::CustomDomain => ("k7x2pq9d1a", "wiki"),
        };
        // The route infra/components/api.py declares for the path.
        let route = if raw_path.contains("/.well-known/") {
            "ANY /.well-known/{proxy+}"
        } else {
            "ANY /mcp"
        };
        let mut event = json!({
            "version": "2.0",
            "routeKey": route,
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": api_id,
                "domainName": self.host(), "domainPrefix": domain_prefix,
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                         "sourceIp": "160.79.104.10", "userAgent": "Claude-User"},
                "requestId": "JKJaXmPLvHcESHA=", "routeKey": route,
                "stage": stage, "time": "01/Dec/2026:19:03:58 +0000", "timeEpoch": 1_796_151_838_390u64
            },
            "isBase64Encoded": false
        });
        if let Door::FunctionUrl = self {
            // Function URLs have one route, `$default`, and say so; no authorizer with auth NONE.
            event["routeKey"] = json!("$default");
            event["requestContext"]["routeKey"] = json!("$default");
            event["requestContext"]["authentication"] = Value::Null;
        }
        if let Some(body) = body {
            event["body"] = json!(body.to_string());
        }
        event
    }

    fn mcp_post(self, token: Option<&str>, body: &Value) -> Value {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2025-06-18"),
        ];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        self.event("POST", DOOR_PATH, &headers, Some(body))
    }
}

async fn door_server(door: Door, root: &std::path::Path, authkit: &MockAuthKit) -> RunningFunction {
    start(
        spec(env!("CARGO_BIN_EXE_mcp-server"), root)
            .env("MCP_RESOURCE_URL", door.resource())
            .env("AUTHKIT_DOMAIN", &authkit.issuer)
            .env("MCP_ALLOW_ANY_USER", "true")
            .env("MCP_AUTH_TOKEN", STATIC),
    )
    .await
}

/// The parameter `name` of a `WWW-Authenticate` challenge.
fn challenge_parameter<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &challenge[start..];
    Some(&rest[..rest.find('"')?])
}

/// What Claude.ai does on the door, step by step: the anonymous `POST` gets a 401 whose
/// `resource_metadata` points at the host root's path-inserted location; that URL, and the
/// root location Claude.ai falls back to when a gateway renames the header, serve the
/// metadata naming this resource and AuthKit; AuthKit's own metadata is proxied at the root;
/// a token for the resource is accepted. Each request leaves one log line naming its caller.
async fn discovery_and_sign_in_through(door: Door) {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let mut function = door_server(door, root.path(), &authkit).await;

    let response = invoke(&mut function, &door.mcp_post(None, &echo_call("x"))).await;
    assert_eq!(response["statusCode"], 401, "{door:?}: {response}");
    let challenge = header(&response, "www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no token, no error (RFC 6750): {challenge}"
    );
    let metadata_url =
        challenge_parameter(challenge, "resource_metadata").expect("resource_metadata");
    let expected = format!(
        "https://{}/.well-known/oauth-protected-resource/mcp",
        door.host()
    );
    assert_eq!(
        metadata_url, expected,
        "RFC 9728 path insertion at the host root"
    );
    assert!(challenge_parameter(challenge, "scope").is_some_and(|s| s.contains("openid")));

    let metadata_path = metadata_url
        .strip_prefix(&format!("https://{}", door.host()))
        .unwrap();
    for path in [metadata_path, "/.well-known/oauth-protected-resource"] {
        let prm = invoke(&mut function, &door.event("GET", path, &[], None)).await;
        assert_eq!(prm["statusCode"], 200, "{door:?} {path}: {prm}");
        assert_eq!(header(&prm, "access-control-allow-origin"), Some("*"));
        let document: Value = serde_json::from_str(prm["body"].as_str().unwrap()).unwrap();
        assert_eq!(document["resource"], door.resource(), "{path}");
        assert_eq!(
            document["authorization_servers"],
            json!([authkit.issuer]),
            "{path}"
        );
    }
    let as_metadata = invoke(
        &mut function,
        &door.event("GET", "/.well-known/oauth-authorization-server", &[], None),
    )
    .await;
    assert_eq!(as_metadata["statusCode"], 200, "{door:?}: {as_metadata}");
    let document: Value = serde_json::from_str(as_metadata["body"].as_str().unwrap()).unwrap();
    assert_eq!(document["issuer"], authkit.issuer.as_str());

    let token = authkit.token(&door.resource(), |_| {});
    let response = invoke(
        &mut function,
        &door.mcp_post(Some(&token), &echo_call("signed in")),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{door:?}: {response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "signed in", "{body}");

    // A token for another door's URL is not one for this resource.
    let elsewhere = authkit.token(
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp",
        |_| {},
    );
    let response = invoke(
        &mut function,
        &door.mcp_post(Some(&elsewhere), &echo_call("x")),
    )
    .await;
    assert_eq!(response["statusCode"], 401, "{door:?}: {response}");
    assert!(
        header(&response, "www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    let lines = request_log_lines(&function, 6).await;
    let logged = |index: usize, wanted: &[&str]| {
        let line = lines
            .get(index)
            .unwrap_or_else(|| panic!("{door:?}: no line {index} in {lines:#?}"));
        assert!(
            wanted.iter().all(|w| line.contains(w)),
            "{door:?}: {line} lacks {wanted:?}"
        );
    };
    logged(
        0,
        &["method=POST", "path=/mcp", "status=401", "caller=\"none\""],
    );
    logged(
        1,
        &["method=GET", &format!("path={metadata_path}"), "status=200"],
    );
    logged(
        4,
        &[
            "path=/mcp",
            "status=200",
            &format!("caller=\"{}\"", mock_authkit::USER),
        ],
    );
    logged(5, &["path=/mcp", "status=401", "caller=\"refused\""]);
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(&token) && !l.contains(&elsewhere)),
        "never a token"
    );
}

/// The function's request log lines, once `count` of them have arrived (or what there is).
async fn request_log_lines(function: &RunningFunction, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = function
            .logs()
            .await
            .into_iter()
            .filter(|line| line.contains("request method="))
            .collect();
        if lines.len() >= count {
            break;
        }
    }
    lines
}

#[tokio::test]
async fn claude_ai_discovers_and_signs_in_through_the_http_api_default_stage() {
    discovery_and_sign_in_through(Door::HttpApi).await;
}

#[tokio::test]
async fn claude_ai_discovers_and_signs_in_through_a_custom_domain_at_the_root() {
    discovery_and_sign_in_through(Door::CustomDomain).await;
}

#[tokio::test]
async fn claude_ai_discovers_and_signs_in_through_a_function_url() {
    discovery_and_sign_in_through(Door::FunctionUrl).await;
}

/// A named HTTP API stage carries the stage in `rawPath`; a custom domain mapped to a named
/// stage does not. Both reach `/mcp`; the `$default` stage keeps a path that merely starts
/// like a stage name.
#[tokio::test]
async fn named_http_api_stages_are_stripped_and_the_default_stage_is_not() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let door = Door::HttpApi;
    let mut function = door_server(door, root.path(), &authkit).await;
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Authorization", &format!("Bearer {STATIC}")),
    ];
    for (stage, raw_path) in [
        ("prod", "/prod/mcp"),
        ("prod", "/mcp"),
        ("$default", "/mcp"),
    ] {
        let event = door.staged_event(
            stage,
            "POST",
            raw_path,
            &headers,
            Some(&echo_call(raw_path)),
        );
        let response = invoke(&mut function, &event).await;
        assert_eq!(
            response["statusCode"], 200,
            "{stage} {raw_path}: {response}"
        );
        assert!(response["body"].as_str().unwrap().contains(raw_path));
    }
    let event = door.staged_event(
        "$default",
        "POST",
        "/prod/mcp",
        &headers,
        Some(&echo_call("x")),
    );
    let response = invoke(&mut function, &event).await;
    assert_eq!(response["statusCode"], 404, "{response}");
}

/// Events no door sends, which lambda_http 1.3 would panic on (an unparsable scheme, query
/// string or fallback domain name): the answer is a 400 or the request served, and the
/// function keeps serving.
#[tokio::test]
async fn malformed_2_0_events_are_answered_not_crashes() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let door = Door::HttpApi;
    let mut function = door_server(door, root.path(), &authkit).await;
    let good = door.mcp_post(Some(STATIC), &echo_call("x"));

    let mut bad_scheme = good.clone();
    bad_scheme["headers"]["x-forwarded-proto"] = json!("1 not a scheme");
    let mut bad_query = good.clone();
    bad_query["rawQueryString"] = json!("a=\"b c\"");
    let mut bad_domain = good.clone();
    bad_domain["headers"]
        .as_object_mut()
        .unwrap()
        .remove("host");
    bad_domain["requestContext"]["domainName"] = json!("bad host:99999");
    // An unparsable Host is dropped: the door's own domain name decides, or without one the
    // request guard refuses it.
    let mut bad_host = good.clone();
    bad_host["headers"]["host"] = json!("user@h.example:99999");
    let mut bad_host_alone = bad_host.clone();
    bad_host_alone["requestContext"]["domainName"] = Value::Null;
    for (what, event, status) in [
        ("scheme", bad_scheme, 200),
        ("query", bad_query, 200),
        ("domain name", bad_domain, 400),
        ("host", bad_host, 200),
        ("host without a domain name", bad_host_alone, 400),
    ] {
        let response = invoke(&mut function, &event).await;
        assert_eq!(response["statusCode"], status, "{what}: {response}");
    }
    let response = invoke(&mut function, &good).await;
    assert_eq!(response["statusCode"], 200, "{response}");
}

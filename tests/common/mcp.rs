//! An in-process MCP server on loopback for tests, and a minimal JSON-RPC caller.

use std::path::Path;

use serde_json::{Value, json};
use wikibot::mcp::{self, AuthConfig, ServerConfig};
use wikibot::store::StoreConfig;

pub const PROTOCOL_VERSION: &str = "2025-06-18";

pub struct TestServer {
    pub url: String,
    pub config: ServerConfig,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves the app for `auth` with the store under `root`; `origins` as configured.
    pub async fn start(root: &Path, auth: AuthConfig, origins: &[String]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let url = format!("http://{address}/mcp");
        let config = ServerConfig::build(
            StoreConfig::new(root),
            "wiki",
            &url,
            auth,
            &[],
            origins,
            mcp::config::DEFAULT_SCOPES,
        )
        .expect("valid configuration");
        let app = mcp::app(&config).expect("the app builds");
        let task = tokio::spawn(async move {
            let _ = mcp::serve_http(app, listener).await;
        });
        Self { url, config, task }
    }

    pub fn base(&self) -> String {
        self.url.trim_end_matches("/mcp").to_owned()
    }
}

/// A JSON-RPC request as an MCP client sends it over Streamable HTTP.
pub fn rpc_request(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
}

pub fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

/// Calls a tool and returns (isError, text of the first content block).
pub async fn call_tool(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    name: &str,
    arguments: Value,
) -> (bool, String) {
    let response = rpc_request(client, url, token, &tool_call(name, arguments))
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{name}: {body}");
    let result = &body["result"];
    assert!(result.is_object(), "{name}: no result in {body}");
    (
        result["isError"].as_bool().unwrap_or(false),
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

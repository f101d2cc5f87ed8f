//! Helpers shared by the integration tests: start the compiled Lambda bootstraps through the
//! Runtime API emulator, and inspect repositories with the real `git` CLI.
#![allow(dead_code)] // each test binary uses a different subset

pub mod jwt_signing;
pub mod mcp;
pub mod mock_authkit;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use wikibot::lambda::emulator::{FunctionSpec, RunningFunction};

pub fn spec(bootstrap: &str, root: &Path) -> FunctionSpec {
    let spec = FunctionSpec::new(bootstrap).env("WIKIBOT_ROOT", root.display().to_string());
    // Lambda's image has system CA certificates; a build sandbox may only have this file.
    match std::env::var("SSL_CERT_FILE") {
        Ok(bundle) => spec.env("SSL_CERT_FILE", bundle),
        Err(_) => spec,
    }
}

pub fn git_probe(root: &Path) -> FunctionSpec {
    spec(env!("CARGO_BIN_EXE_git-probe"), root)
}

pub fn efs_probe(root: &Path) -> FunctionSpec {
    spec(env!("CARGO_BIN_EXE_efs-probe"), root)
}

pub async fn start(spec: FunctionSpec) -> RunningFunction {
    RunningFunction::start(spec).await.expect("function starts")
}

/// Invokes and returns the JSON response; panics on a Lambda-level failure.
pub async fn call(function: &mut RunningFunction, event: Value) -> Value {
    let invocation = function
        .invoke(event.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("invoking with {event}: {e}"));
    invocation.json()
}

/// Like `call`, but the response must not be an error.
pub async fn call_ok(function: &mut RunningFunction, event: Value) -> Value {
    let response = call(function, event.clone()).await;
    assert!(response.get("error").is_none(), "{event} → {response}");
    response
}

pub fn write_event(repo: &str, page: &str, content: &str) -> Value {
    serde_json::json!({
        "op": "write", "repo": repo, "page": page, "content": content,
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "message": format!("Write {content:.40}"),
    })
}

/// Runs the real git CLI against a bare repository; panics unless it succeeds.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("the git CLI is installed");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Like [`git`], with `input` on standard input (committer and author set for commits).
pub fn git_stdin(repo: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.com")
        .env("GIT_COMMITTER_NAME", "Person")
        .env("GIT_COMMITTER_EMAIL", "person@example.com")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the git CLI is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin written");
    let output = child.wait_with_output().expect("git finishes");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `git fsck --full --strict` succeeds and reports nothing but dangling objects.
pub fn assert_fsck_clean(repo: &Path) {
    if let Some(report) = fsck_problems(repo) {
        panic!("{report}");
    }
}

/// What `git fsck --full --strict` found beyond dangling objects, if anything.
pub fn fsck_problems(repo: &Path) -> Option<String> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--full", "--strict", "--no-progress"])
        .output()
        .expect("the git CLI is installed");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Some(format!("fsck failed:\n{report}"));
    }
    let clean = report.lines().all(|line| line.starts_with("dangling "));
    (!clean).then(|| format!("fsck reported:\n{report}"))
}

pub fn commit_count(repo: &Path) -> usize {
    git(repo, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .expect("a number")
}

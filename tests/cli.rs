//! The `wikibot` command line: refusals that protect the user, and clear errors.

use std::process::Command;

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

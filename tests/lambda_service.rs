//! The Lambda API emulator (`wikibot::lambda::service`) spoken to by the real AWS SDK for
//! Rust: Invoke with the log tail and its REPORT line, a configuration update making the next
//! invocation cold (and the SDK's waiter seeing it finish), concurrent invocations in separate
//! processes, errors as the service shapes them, a caller's trace header reaching the
//! function's X-Ray export; then `wikibot emulate` and `wikibot bench lambda` end to end, with
//! the report page read back with the git CLI, and the report page written through MCP.
//! Behaviour only: benchmarks report times, tests do not judge them.
#![cfg(feature = "bench-lambda")]

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::git;
use serde_json::{Value, json};
use wikibot::bench::lambda::sdk::Client;
use wikibot::bench::lambda::sdk::client::Waiters;
use wikibot::bench::lambda::sdk::primitives::Blob;
use wikibot::bench::lambda::sdk::types::{Environment, LastUpdateStatus, LogType};
use wikibot::bench::lambda::{self, parse_report};
use wikibot::lambda::emulator::trace_header;
use wikibot::lambda::service::{FunctionDefinition, LambdaService, ServiceOptions};
use wikibot::lambda::xray::{LocalDaemon, TraceHeader};

const GIT_PROBE: &str = env!("CARGO_BIN_EXE_git-probe");
const EFS_PROBE: &str = env!("CARGO_BIN_EXE_efs-probe");

fn definition(name: &str, bootstrap: impl Into<PathBuf>, root: &Path) -> FunctionDefinition {
    let mut definition = FunctionDefinition::new(name, bootstrap);
    definition
        .environment
        .insert("WIKIBOT_ROOT".into(), root.display().to_string());
    definition
}

/// A shell-script bootstrap (commands by absolute path: the function's PATH is Lambda's).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn sleep_binary() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("sleep"))
                .find(|p| p.is_file())
        })
        .expect("sleep on PATH")
}

/// The service on a free loopback port, and an SDK client pointed at it.
async fn serve(definitions: Vec<FunctionDefinition>) -> (LambdaService, Client) {
    let options = ServiceOptions {
        update_delay: Duration::from_millis(300),
        ..ServiceOptions::default()
    };
    let service = LambdaService::new(definitions, options).unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(service.clone().serve(listener, std::future::pending()));
    (service, lambda::client(Some(&endpoint)).await)
}

struct Answer {
    payload: Value,
    log: String,
    function_error: Option<String>,
}

async fn invoke(client: &Client, function: &str, event: &Value) -> Answer {
    let output = client
        .invoke()
        .function_name(function)
        .log_type(LogType::Tail)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "invoking {function}: {}",
                lambda::sdk::error::DisplayErrorContext(e)
            )
        });
    assert_eq!(output.status_code(), 200);
    assert_eq!(output.executed_version(), Some("$LATEST"));
    let log = base64::engine::general_purpose::STANDARD
        .decode(output.log_result().expect("a log tail was asked for"))
        .unwrap();
    Answer {
        payload: serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap(),
        log: String::from_utf8(log).unwrap(),
        function_error: output.function_error().map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_with_a_log_tail_ends_in_a_report_line_with_init_only_when_cold() {
    let root = tempfile::tempdir().unwrap();
    let (_service, client) = serve(vec![definition("git-probe", GIT_PROBE, root.path())]).await;
    let event = json!({"op": "init", "repo": "demo"});

    let cold = invoke(&client, "git-probe", &event).await;
    assert_eq!(cold.function_error, None);
    assert_eq!(cold.payload["cold_start"], true, "{}", cold.payload);
    let lines: Vec<&str> = cold.log.lines().collect();
    assert!(lines[0].starts_with("START RequestId: "), "{}", cold.log);
    assert!(
        lines.iter().any(|l| l.contains("git probe done")),
        "the function's own log lines are in the tail: {}",
        cold.log
    );
    let request_id = lines[0]
        .strip_prefix("START RequestId: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(lines.contains(&format!("END RequestId: {request_id}").as_str()));
    let report_line = lines.iter().find(|l| l.starts_with("REPORT ")).unwrap();
    assert!(report_line.starts_with(&format!("REPORT RequestId: {request_id}\t")));
    assert!(
        lines.last().unwrap().starts_with("XRAY TraceId: 1-"),
        "{}",
        cold.log
    );
    let report = parse_report(&cold.log).unwrap();
    let init = report["Init Duration"];
    assert!(report["Duration"] > 0.0 && init > 0.0, "{report_line}");
    assert_eq!(report["Memory Size"], 512.0);
    assert!(
        report["Max Memory Used"] >= 1.0 && report["Max Memory Used"] < 512.0,
        "{report_line}"
    );
    // Billed: the invocation plus init (provided runtimes), rounded up to the millisecond
    // (the line's two decimals are rounded, hence the slack).
    let (billed, exact) = (report["Billed Duration"], report["Duration"] + init);
    assert!(
        billed >= exact - 0.02 && billed <= exact.ceil() + 1.0,
        "{report_line}"
    );

    let warm = invoke(&client, "git-probe", &event).await;
    assert_eq!(warm.payload["cold_start"], false);
    assert_eq!(warm.payload["instance_id"], cold.payload["instance_id"]);
    let report = parse_report(&warm.log).unwrap();
    assert!(!report.contains_key("Init Duration"), "{}", warm.log);
    assert!(report["Duration"] > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_update_makes_the_next_invocation_cold_and_the_waiter_sees_it_finish() {
    let root = tempfile::tempdir().unwrap();
    let (_service, client) = serve(vec![definition("efs-probe", EFS_PROBE, root.path())]).await;
    let config = client
        .get_function_configuration()
        .function_name("efs-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(config.function_name(), Some("efs-probe"));
    assert_eq!(
        config.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:efs-probe")
    );
    assert_eq!(
        config.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    assert_eq!(config.memory_size(), Some(512));
    assert_eq!(config.timeout(), Some(30));
    assert_eq!(
        config.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert!(config.code_size() > 0);
    assert_eq!(config.architectures().len(), 1);
    let mut variables = config.environment().unwrap().variables().unwrap().clone();
    assert_eq!(variables["WIKIBOT_ROOT"], root.path().display().to_string());

    let first = invoke(&client, "efs-probe", &json!({})).await;
    let warm = invoke(&client, "efs-probe", &json!({})).await;
    assert_eq!(warm.payload["instance_id"], first.payload["instance_id"]);

    variables.insert("MARKER".into(), "1".into());
    let updated = client
        .update_function_configuration()
        .function_name("efs-probe")
        .environment(
            Environment::builder()
                .set_variables(Some(variables.clone()))
                .build(),
        )
        .memory_size(1024)
        .revision_id(config.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_ne!(updated.revision_id(), config.revision_id());
    // A second update while the first is in progress is refused, as Lambda refuses it.
    let busy = client
        .update_function_configuration()
        .function_name("efs-probe")
        .memory_size(2048)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(busy.is_resource_conflict_exception(), "{busy:?}");
    client
        .wait_until_function_updated_v2()
        .function_name("efs-probe")
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    let after = client
        .get_function_configuration()
        .function_name("efs-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(after.memory_size(), Some(1024));
    assert_eq!(after.environment().unwrap().variables(), Some(&variables));
    // A stale revision is refused.
    let stale = client
        .update_function_configuration()
        .function_name("efs-probe")
        .memory_size(512)
        .revision_id(config.revision_id().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_precondition_failed_exception(), "{stale:?}");

    let cold = invoke(&client, "efs-probe", &json!({})).await;
    assert_eq!(cold.payload["cold_start"], true, "{}", cold.payload);
    assert_ne!(cold.payload["instance_id"], first.payload["instance_id"]);
    let report = parse_report(&cold.log).unwrap();
    assert!(report.contains_key("Init Duration"), "{}", cold.log);
    assert_eq!(report["Memory Size"], 1024.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_run_in_separate_environments() {
    let root = tempfile::tempdir().unwrap();
    let (service, client) = serve(vec![definition("efs-probe", EFS_PROBE, root.path())]).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..3 {
        let client = client.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            invoke(&client, "efs-probe", &json!({"file": format!("f{n}.txt")})).await
        });
    }
    let mut instances = BTreeSet::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.payload["ok"], true, "{}", answer.payload);
        assert_eq!(answer.payload["cold_start"], true);
        instances.insert(answer.payload["instance_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(instances.len(), 3, "three processes: {instances:?}");
    assert_eq!(service.environments("efs-probe"), Some((3, 0)));
    // Sequential invocations reuse them (warm).
    let warm = invoke(&client, "efs-probe", &json!({})).await;
    assert_eq!(warm.payload["cold_start"], false);
    assert!(instances.contains(warm.payload["instance_id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_shaped_as_the_service_shapes_them() {
    let root = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let hang = script(
        scripts.path(),
        "hang",
        &format!("exec {} 60", sleep_binary().display()),
    );
    let crash = script(
        scripts.path(),
        "crash",
        "echo 'no configuration' >&2; exit 3",
    );
    let mut hanging = definition("hang", hang, root.path());
    hanging.timeout = Duration::from_secs(1);
    let (_service, client) = serve(vec![
        definition("efs-probe", EFS_PROBE, root.path()),
        hanging,
        definition("crash", crash, root.path()),
    ])
    .await;

    let missing = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    assert!(
        missing
            .to_string()
            .contains("Function not found: arn:aws:lambda:"),
        "{missing}"
    );
    let missing = client
        .get_function_configuration()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");

    let not_json = client
        .invoke()
        .function_name("efs-probe")
        .payload(Blob::new("not json"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        not_json.is_invalid_request_content_exception(),
        "{not_json:?}"
    );

    let reserved = client
        .update_function_configuration()
        .function_name("efs-probe")
        .environment(Environment::builder().variables("AWS_REGION", "x").build())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        reserved.is_invalid_parameter_value_exception(),
        "{reserved:?}"
    );

    let timed_out = invoke(&client, "hang", &json!({})).await;
    assert_eq!(timed_out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(timed_out.payload["errorType"], "Sandbox.Timedout");
    assert!(
        timed_out.payload["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds")
    );
    assert!(
        timed_out.log.contains("Status: timeout"),
        "{}",
        timed_out.log
    );

    let crashed = invoke(&client, "crash", &json!({})).await;
    assert_eq!(crashed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(crashed.payload["errorType"], "Runtime.ExitError");
    assert!(crashed.log.contains("no configuration"), "{}", crashed.log);
    assert!(
        crashed
            .log
            .contains("Status: error\tError Type: Runtime.ExitError"),
        "{}",
        crashed.log
    );

    let function = client
        .get_function()
        .function_name("efs-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.configuration().and_then(|c| c.function_name()),
        Some("efs-probe")
    );
    let listed = client.list_functions().send().await.unwrap();
    let names: BTreeSet<&str> = listed
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .collect();
    assert_eq!(names, BTreeSet::from(["crash", "efs-probe", "hang"]));
}

/// Invokes git-probe with `X-Amzn-Trace-Id: incoming` set on the SDK's request.
async fn invoke_with_trace(client: &Client, event: &Value, incoming: String) -> Answer {
    let output = client
        .invoke()
        .function_name("git-probe")
        .log_type(LogType::Tail)
        .payload(Blob::new(event.to_string()))
        .customize()
        .mutate_request(move |request| {
            request
                .headers_mut()
                .insert("x-amzn-trace-id", incoming.clone());
        })
        .send()
        .await
        .unwrap();
    let log = base64::engine::general_purpose::STANDARD
        .decode(output.log_result().unwrap())
        .unwrap();
    Answer {
        payload: serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap(),
        log: String::from_utf8(log).unwrap(),
        function_error: output.function_error().map(str::to_owned),
    }
}

/// `(TraceId, SegmentId, Sampled)` of the log tail's XRAY line.
fn xray_line(log: &str) -> (String, String, String) {
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("XRAY "))
        .unwrap_or_else(|| panic!("no XRAY line in {log}"));
    let field = |name: &str| {
        line.split('\t')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_owned()
    };
    (field("TraceId: "), field("SegmentId: "), field("Sampled: "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_header_reaches_the_functions_xray_export() {
    let root = tempfile::tempdir().unwrap();
    let daemon = LocalDaemon::bind().unwrap();
    let mut git_probe = definition("git-probe", GIT_PROBE, root.path());
    git_probe.environment.insert(
        "AWS_XRAY_DAEMON_ADDRESS".into(),
        daemon.address().unwrap().to_string(),
    );
    let (_service, client) = serve(vec![git_probe]).await;
    let event = json!({"op": "init", "repo": "traced"});

    for (sampled, cold) in [(true, true), (true, false), (false, false)] {
        let fresh = TraceHeader::parse(&trace_header(true)).unwrap();
        let incoming = format!("Root={};Sampled={}", fresh.root, u8::from(sampled));
        let answer = invoke_with_trace(&client, &event, incoming).await;
        assert_eq!(answer.function_error, None, "{}", answer.payload);
        assert_eq!(answer.payload["cold_start"], cold);
        let (trace_id, segment_id, sampled_word) = xray_line(&answer.log);
        assert_eq!(trace_id, fresh.root, "the caller's trace is continued");
        assert_eq!(sampled_word, sampled.to_string());
        let documents = daemon.drain(Duration::from_millis(200)).unwrap();
        if !sampled {
            assert!(documents.is_empty(), "unsampled, yet sent: {documents:?}");
            continue;
        }
        assert!(!documents.is_empty(), "nothing reached the daemon");
        for document in &documents {
            assert_eq!(document["trace_id"], fresh.root.as_str(), "{document}");
        }
        let handler = documents
            .iter()
            .find(|d| d["name"] == "handler")
            .expect("a handler subsegment");
        // Under the segment the REPORT's XRAY line names, as in the X-Ray console.
        assert_eq!(handler["parent_id"], segment_id.as_str(), "{handler}");
        assert_eq!(handler["annotations"]["cold_start"], cold, "{handler}");
    }
}

/// `wikibot emulate` in the background; SIGTERM stops it (and its functions) on drop.
struct Emulate {
    child: std::process::Child,
    endpoint: String,
}

impl Emulate {
    fn start(root: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wikibot"))
            .args(["emulate", "--port", "0", "--quiet", "--root"])
            .arg(root)
            .arg("--function")
            .arg(format!("git-probe={GIT_PROBE}"))
            .arg("--function")
            .arg(format!("efs-probe={EFS_PROBE}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wikibot emulate starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let endpoint = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.strip_prefix("endpoint: ").map(str::to_owned))
            .expect("emulate prints its endpoint first");
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, endpoint }
    }
}

impl Drop for Emulate {
    fn drop(&mut self) {
        // SIGTERM: the emulator stops its functions before it exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn bench_lambda_runs_end_to_end_and_commits_its_report_into_the_wiki() {
    let root = tempfile::tempdir().unwrap();
    let emulate = Emulate::start(root.path());
    let chart = root.path().join("chart.svg");
    let page = "Dev/Phase 0 — EFS Benchmarks";
    let output = Command::new(env!("CARGO_BIN_EXE_wikibot"))
        .args(["bench", "lambda", "--endpoint-url", &emulate.endpoint])
        .args(["--wiki", "bench", "--warm", "3", "--cold", "1"])
        .args(["--concurrent-reads", "2", "--writers", "2,3", "--json"])
        .args(["--commit", "test-build", "--report-page", page, "--chart"])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let report = &result["report"];
    let measurements = report["measurements"].as_array().unwrap();
    let by_key = |key: &str| {
        measurements
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {report}"))
    };
    for key in ["warm_read", "warm_write", "efs_warm"] {
        let m = by_key(key);
        assert_eq!(m["samples"].as_array().unwrap().len(), 3, "{m}");
        assert_eq!(m["errors"], 0, "{m}");
        for metric in ["client", "duration"] {
            assert!(
                m["summaries"][metric]["p99_ms"].is_number(),
                "{key} {metric}"
            );
        }
    }
    assert!(by_key("warm_read")["summaries"]["step read"]["p50_ms"].is_number());
    assert!(by_key("warm_write")["summaries"]["step write"]["p50_ms"].is_number());
    for key in ["cold_start", "efs_cold"] {
        let m = by_key(key);
        assert_eq!(m["errors"], 0, "{m}");
        assert!(m["summaries"]["init"]["max_ms"].is_number(), "{m}");
    }
    assert_eq!(by_key("concurrent_reads")["errors"], 0);
    assert_eq!(by_key("concurrent_reads")["environments"], 2);
    for writers in [2, 3] {
        let m = by_key(&format!("writers_{writers}"));
        assert_eq!(m["errors"], 0, "{m}");
        assert_eq!(m["commits_found"], writers, "{m}");
    }
    assert_eq!(report["environment"]["emulated"], true);
    assert_eq!(report["environment"]["commit"], "test-build");
    let verdicts = report["verdicts"].as_array().unwrap();
    assert!(verdicts.len() >= 5, "{verdicts:?}");
    assert!(result["report_page"].as_str().unwrap().contains(page));

    // The cold starts' marker variable is gone again.
    let variables = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = lambda::client(Some(&emulate.endpoint)).await;
        let config = client
            .get_function_configuration()
            .function_name("git-probe")
            .send()
            .await
            .unwrap();
        config.environment().unwrap().variables().unwrap().clone()
    });
    assert!(
        !variables.contains_key(lambda::COLD_START_VARIABLE),
        "{variables:?}"
    );
    assert!(variables.contains_key("WIKIBOT_ROOT"));

    let repo = root.path().join("bench.git");
    common::assert_fsck_clean(&repo);
    let committed = git(&repo, &["show", &format!("main:{page}.md")]);
    for expected in [
        "# Phase 0 — EFS Benchmarks",
        "## Environment",
        "| criterion | measured | verdict |",
        "| measurement | n | failed | envs | metric | p50 | p90 | p99 | max |",
        "```mermaid\nxychart-beta",
        "x-axis [r1, r2, r3, w1, w2, w3, c1]",
        "`test-build`",
        "provided.al2023",
    ] {
        assert!(
            committed.contains(expected),
            "{expected:?} missing:\n{committed}"
        );
    }
    assert!(committed.contains("**PASS**") || committed.contains("**FAIL**"));
    let log = git(&repo, &["log", "-1", "--format=%an <%ae>%n%s", "main"]);
    assert_eq!(
        log.trim(),
        "wikibot bench <bench@wikibot.invalid>\nbench lambda: benchmark report"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("client wall time"),
        "{svg:.200}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_can_be_written_through_the_mcp_endpoint() {
    use wikibot::auth::StaticToken;
    use wikibot::mcp::AuthConfig;
    const TOKEN: &str = "static-token-for-tests-0123456789abcdef";
    let root = tempfile::tempdir().unwrap();
    let auth = AuthConfig::Required {
        authkit: None,
        static_token: Some(StaticToken::new(TOKEN).unwrap()),
    };
    let server = common::mcp::TestServer::start(root.path(), auth, &[]).await;
    let page = "Dev/Phase 0 — EFS Benchmarks";

    let refused = lambda::write_page_through_mcp(&server.url, Some("wrong"), page, "x").await;
    assert!(refused.is_err(), "{refused:?}");
    // Created, then replaced: the second write passes the revision read_note returned.
    for content in ["# First run\n", "# Second run\n"] {
        let answer = lambda::write_page_through_mcp(&server.url, Some(TOKEN), page, content)
            .await
            .unwrap();
        assert!(answer.starts_with("Saved "), "{answer}");
        let repo = root.path().join("wiki.git");
        assert_eq!(git(&repo, &["show", &format!("main:{page}.md")]), content);
    }
    let log = git(
        &root.path().join("wiki.git"),
        &["log", "--format=%s", "main"],
    );
    assert_eq!(
        log.lines()
            .filter(|l| *l == "bench lambda: benchmark report")
            .count(),
        2,
        "{log}"
    );
}

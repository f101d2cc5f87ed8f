//! The compiled functions' X-Ray export, received on a local UDP socket standing in for the
//! daemon: the daemon's header line, valid JSON, the trace id and parent the invocation's
//! header named, subsegments nested as the spans nest, times in order, `cold_start` true
//! only on the first invocation, failures marked, nothing when unsampled, and invocations
//! unaffected when no daemon listens.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{call_ok, efs_probe, git_probe, start, write_event};
use serde_json::{Value, json};
use wikibot::lambda::emulator::{FunctionSpec, RunningFunction, trace_header};
use wikibot::lambda::xray::{LocalDaemon, TraceHeader, parse_datagram};

fn with_daemon(spec: FunctionSpec, daemon: &LocalDaemon) -> FunctionSpec {
    spec.env(
        "AWS_XRAY_DAEMON_ADDRESS",
        daemon.address().unwrap().to_string(),
    )
}

/// Invokes with `header` and returns the response and the documents the daemon received.
async fn traced(
    function: &mut RunningFunction,
    daemon: &LocalDaemon,
    event: &Value,
    header: Option<&str>,
) -> (Value, Vec<Value>) {
    let invocation = function
        .invoke_traced(
            event.to_string().as_bytes(),
            header,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let documents = daemon.drain(Duration::from_millis(200)).unwrap();
    (invocation.json(), documents)
}

/// Checks one trace's documents against the header; returns them by name.
fn check_trace<'a>(documents: &'a [Value], header: &TraceHeader) -> HashMap<String, &'a Value> {
    let by_id: HashMap<&str, &Value> = documents
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d))
        .collect();
    let handler = documents
        .iter()
        .find(|d| d["name"] == "handler")
        .expect("a handler subsegment");
    assert_eq!(
        handler["parent_id"],
        header.parent.as_str(),
        "under Lambda's segment"
    );
    for document in documents {
        assert_eq!(document["type"], "subsegment");
        assert_eq!(document["trace_id"], header.root.as_str());
        let id = document["id"].as_str().unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        let (start, end) = (
            document["start_time"].as_f64().unwrap(),
            document["end_time"].as_f64().unwrap(),
        );
        assert!(start > 1.7e9 && start <= end, "{document}");
        if document["name"] != "handler" {
            // Every other subsegment hangs, through its ancestors, from the handler.
            let mut parent = document["parent_id"].as_str().unwrap();
            while parent != handler["id"] {
                let up = by_id
                    .get(parent)
                    .unwrap_or_else(|| panic!("orphan {document}"));
                assert!(up["start_time"].as_f64() <= document["start_time"].as_f64());
                parent = up["parent_id"].as_str().unwrap();
            }
        }
    }
    documents
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_owned(), d))
        .collect()
}

#[tokio::test]
async fn git_probe_sends_one_nested_trace_per_sampled_invocation() {
    let root = tempfile::tempdir().unwrap();
    let daemon = LocalDaemon::bind().unwrap();
    let mut function = start(with_daemon(git_probe(root.path()), &daemon)).await;

    let header = trace_header(true);
    let parsed = TraceHeader::parse(&header).unwrap();
    let (response, documents) = traced(
        &mut function,
        &daemon,
        &json!({"op": "lifecycle", "repo": "demo"}),
        Some(&header),
    )
    .await;
    assert!(response.get("error").is_none(), "{response}");
    let names = check_trace(&documents, &parsed);
    for name in [
        "handler",
        "git.init",
        "git.commit",
        "git.read",
        "git.history",
    ] {
        assert!(names.contains_key(name), "{name} missing: {documents:?}");
    }
    let annotations = &names["handler"]["annotations"];
    assert_eq!(annotations["cold_start"], true);
    assert_eq!(annotations["op"], "lifecycle");
    assert_eq!(annotations["wiki"], "demo");

    // Warm, and a failure: marked as the caller's error, with the message as its cause.
    let header = trace_header(true);
    let parsed = TraceHeader::parse(&header).unwrap();
    let (_, documents) = traced(
        &mut function,
        &daemon,
        &json!({"op": "read", "repo": "demo", "page": "Nope"}),
        Some(&header),
    )
    .await;
    let names = check_trace(&documents, &parsed);
    let handler = names["handler"];
    assert_eq!(handler["annotations"]["cold_start"], false);
    assert_eq!(handler["error"], true);
    assert!(handler.get("fault").is_none());
    assert!(
        handler["cause"]["exceptions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{handler}"
    );

    // Unsampled, or no header at all: nothing is sent, and the function still answers.
    for header in [Some(trace_header(false)), None] {
        let (response, documents) = traced(
            &mut function,
            &daemon,
            &write_event("demo", "Home", "quiet"),
            header.as_deref(),
        )
        .await;
        assert!(response.get("error").is_none(), "{response}");
        assert!(documents.is_empty(), "{documents:?}");
    }
}

#[tokio::test]
async fn no_daemon_listening_changes_nothing_for_the_function() {
    let root = tempfile::tempdir().unwrap();
    // A port nobody listens on: every send is refused at once, and dropped.
    let nobody = LocalDaemon::bind().unwrap();
    let spec = with_daemon(git_probe(root.path()), &nobody);
    drop(nobody);
    let mut function = start(spec).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    for n in 0..20 {
        let invocation = function
            .invoke(
                write_event("demo", "Home", &format!("v{n}"))
                    .to_string()
                    .as_bytes(),
            )
            .await
            .unwrap();
        assert!(invocation.json().get("error").is_none());
        // A hang detector, not a speed goal: a blocked send would take seconds.
        assert!(invocation.duration < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn efs_probe_traces_its_handler() {
    let root = tempfile::tempdir().unwrap();
    let daemon = LocalDaemon::bind().unwrap();
    let mut function = start(with_daemon(efs_probe(root.path()), &daemon)).await;
    let header = trace_header(true);
    let (_, documents) = traced(&mut function, &daemon, &json!({}), Some(&header)).await;
    let names = check_trace(&documents, &TraceHeader::parse(&header).unwrap());
    assert_eq!(names["handler"]["annotations"]["cold_start"], true);
}

#[test]
fn datagrams_without_the_daemon_header_are_not_documents() {
    assert!(parse_datagram(b"{}").is_none());
}

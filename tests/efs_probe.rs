//! The compiled `efs-probe` bootstrap, driven through the Runtime API emulator (P0-2).

mod common;

use common::{call, call_ok, efs_probe, start};
use serde_json::json;

#[tokio::test]
async fn the_file_persists_across_warm_invocations_and_a_cold_process() {
    let root = tempfile::tempdir().unwrap();

    let mut first_process = start(efs_probe(root.path())).await;
    let cold = call_ok(&mut first_process, json!({})).await;
    assert_eq!(cold["cold_start"], true);
    assert!(cold["previous_content"].is_null());
    assert_eq!(
        cold["path"],
        root.path().join("test.txt").display().to_string()
    );
    for step in ["write", "read", "total"] {
        assert!(cold["timings_ms"][step].as_f64().is_some(), "{cold}");
    }

    let warm = call_ok(&mut first_process, json!({"file": "test.txt"})).await;
    assert_eq!(warm["cold_start"], false);
    assert_eq!(warm["instance_id"], cold["instance_id"]);
    assert_eq!(
        warm["previous_content"], cold["content"],
        "warm invocation sees the file"
    );
    first_process.kill().await;

    let mut second_process = start(efs_probe(root.path())).await;
    let fresh = call_ok(&mut second_process, json!({})).await;
    assert_eq!(fresh["cold_start"], true);
    assert_ne!(fresh["instance_id"], cold["instance_id"]);
    assert_eq!(
        fresh["previous_content"], warm["content"],
        "a new process sees the file"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("test.txt")).unwrap(),
        fresh["content"].as_str().unwrap()
    );
}

#[tokio::test]
async fn bad_events_get_a_structured_error_and_write_nothing() {
    // The function's root is one level down, so `../outside` would land in this test's own
    // directory, not the shared temporary directory.
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().join("efs");
    std::fs::create_dir(&root).unwrap();
    let mut function = start(efs_probe(&root)).await;
    for event in [
        json!({"file": "../outside"}),
        json!({"file": "/etc/passwd"}),
        json!([1, 2]),
    ] {
        let response = call(&mut function, event.clone()).await;
        assert_eq!(
            response["error"]["kind"], "invalid_input",
            "{event} → {response}"
        );
    }
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing beside the root"
    );
    call_ok(&mut function, json!({})).await;
}

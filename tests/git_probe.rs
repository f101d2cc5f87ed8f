//! The compiled `git-probe` bootstrap, driven through the Runtime API emulator (P0-3): the
//! git lifecycle checked by the real git CLI, persistence, concurrent readers and writers in
//! separate processes, writers killed mid-write, stale and fresh locks, hostile input.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{assert_fsck_clean, call, call_ok, commit_count, git, git_probe, start, write_event};
use serde_json::{Value, json};
use wikibot::lambda::emulator::{EmulatorError, MAX_PAYLOAD_BYTES};

#[tokio::test]
async fn the_lifecycle_produces_a_repository_the_git_cli_reads() {
    let root = tempfile::tempdir().unwrap();
    let mut function = start(git_probe(root.path())).await;
    let content = "# Phase 0\n\nGit on EFS, driven by Lambda.\n";
    let response = call_ok(
        &mut function,
        json!({"op": "lifecycle", "repo": "demo", "page": "Dev/Phase 0 — EFS Benchmarks",
               "content": content, "author": {"name": "Ada Lovelace", "email": "ada@example.com"}}),
    )
    .await;
    let result = &response["result"];
    assert_eq!(result["init"]["created"], true);
    assert_eq!(result["read"]["content"], content);
    for step in ["init", "write", "read", "history", "total"] {
        assert!(
            response["timings_ms"][step].is_number(),
            "{step}: {response}"
        );
    }

    let repo = root.path().join("demo.git");
    assert_fsck_clean(&repo);
    let log = git(&repo, &["log", "--format=%H%n%an%n%ae%n%at%n%s", "main"]);
    let lines: Vec<&str> = log.lines().collect();
    let commit = &result["history"]["commits"][0];
    assert_eq!(lines[0], result["write"]["revision"]);
    assert_eq!(lines[1], "Ada Lovelace");
    assert_eq!(lines[2], "ada@example.com");
    assert_eq!(lines[3], commit["timestamp"].to_string());
    assert_eq!(
        lines[4],
        "git-probe lifecycle: update Dev/Phase 0 — EFS Benchmarks"
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let committed: u64 = lines[3].parse().unwrap();
    assert!(
        now.abs_diff(committed) < 120,
        "commit time {committed} vs now {now}"
    );
    assert_eq!(
        git(
            &repo,
            &["cat-file", "-p", "main:Dev/Phase 0 — EFS Benchmarks.md"]
        ),
        content
    );
    assert_eq!(
        git(&repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "--is-bare-repository"]).trim(),
        "true"
    );
}

#[tokio::test]
async fn the_repository_persists_across_warm_invocations_and_a_cold_process() {
    let root = tempfile::tempdir().unwrap();
    let mut first = start(git_probe(root.path())).await;
    call_ok(&mut first, json!({"op": "init", "repo": "demo"})).await;
    let written = call_ok(&mut first, write_event("demo", "Home", "hello")).await;
    let warm = call_ok(
        &mut first,
        json!({"op": "read", "repo": "demo", "page": "Home"}),
    )
    .await;
    assert_eq!(warm["cold_start"], false);
    assert_eq!(warm["result"]["content"], "hello");
    first.kill().await;

    let mut second = start(git_probe(root.path())).await;
    let cold = call_ok(
        &mut second,
        json!({"op": "read", "repo": "demo", "page": "Home"}),
    )
    .await;
    assert_eq!(cold["cold_start"], true);
    assert_eq!(cold["result"]["content"], "hello");
    assert_eq!(cold["result"]["revision"], written["result"]["revision"]);
    let again = call_ok(&mut second, json!({"op": "init", "repo": "demo"})).await;
    assert_eq!(again["result"]["created"], false, "init is idempotent");
    let history = call_ok(
        &mut second,
        json!({"op": "history", "repo": "demo", "limit": 5}),
    )
    .await;
    assert_eq!(history["result"]["commits"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn three_simultaneous_readers_see_identical_content() {
    let root = tempfile::tempdir().unwrap();
    let mut writer = start(git_probe(root.path())).await;
    call_ok(&mut writer, json!({"op": "init", "repo": "demo"})).await;
    let content = "x".repeat(50_000);
    call_ok(&mut writer, write_event("demo", "Big", &content)).await;

    let read = json!({"op": "read", "repo": "demo", "page": "Big"});
    let responses = simultaneously(root.path(), 3, 1, move |_, _| read.clone()).await;
    assert_eq!(responses.len(), 3);
    for response in &responses {
        assert!(response.get("error").is_none(), "{response}");
        assert_eq!(response["result"]["content"], content.as_str());
        assert_eq!(response["result"], responses[0]["result"]);
    }
    let instances: BTreeSet<String> = responses
        .iter()
        .map(|r| r["instance_id"].to_string())
        .collect();
    assert_eq!(instances.len(), 3, "three separate processes");
}

#[tokio::test]
async fn five_simultaneous_writers_all_land() {
    simultaneous_writers_all_land(5, 3).await;
}

#[tokio::test]
async fn fifteen_simultaneous_writers_all_land() {
    simultaneous_writers_all_land(15, 2).await;
}

async fn simultaneous_writers_all_land(writers: usize, rounds: usize) {
    let root = tempfile::tempdir().unwrap();
    let mut setup = start(git_probe(root.path())).await;
    call_ok(&mut setup, json!({"op": "init", "repo": "demo"})).await;

    // Everyone writes the same page: the worst case for contention.
    let responses = simultaneously(root.path(), writers, rounds, |writer, round| {
        write_event(
            "demo",
            "Contended",
            &format!("writer {writer} round {round}"),
        )
    })
    .await;
    let failures: Vec<&Value> = responses
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(failures.is_empty(), "failed writes: {failures:?}");
    let revisions: BTreeSet<&str> = responses
        .iter()
        .map(|r| r["result"]["revision"].as_str().unwrap())
        .collect();
    assert_eq!(
        revisions.len(),
        writers * rounds,
        "every write made its own commit"
    );

    let repo = root.path().join("demo.git");
    assert_eq!(commit_count(&repo), writers * rounds);
    assert_fsck_clean(&repo);
    let messages = git(&repo, &["log", "--format=%s", "main"]);
    for writer in 0..writers {
        for round in 0..rounds {
            assert!(messages.contains(&format!("Write writer {writer} round {round}")));
        }
    }
}

/// Starts `processes` git-probe processes, warms each, then has them all send `rounds`
/// events at the same moment. Returns every response.
async fn simultaneously(
    root: &Path,
    processes: usize,
    rounds: usize,
    event: impl Fn(usize, usize) -> Value,
) -> Vec<Value> {
    let barrier = Arc::new(tokio::sync::Barrier::new(processes));
    let mut tasks = tokio::task::JoinSet::new();
    for process in 0..processes {
        let mut function = start(git_probe(root)).await;
        call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
        let events: Vec<Value> = (0..rounds).map(|round| event(process, round)).collect();
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let mut responses = Vec::new();
            for event in events {
                responses.push(call(&mut function, event).await);
            }
            responses
        });
    }
    let mut all = Vec::new();
    while let Some(responses) = tasks.join_next().await {
        all.extend(responses.expect("task finished"));
    }
    all
}

#[tokio::test]
async fn writers_killed_mid_write_leave_a_healthy_repository() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("demo.git");
    // A dead writer's lock is stale after 1 s here, so the next writer recovers quickly.
    let spec = git_probe(root.path()).env("WIKIBOT_STALE_LOCK_SECS", "1");
    let mut setup = start(spec.clone()).await;
    call_ok(&mut setup, json!({"op": "init", "repo": "demo"})).await;

    // Large pages keep a writer busy for milliseconds; kill times spread over one write's
    // duration land in every phase of it (blob, tree, commit, ref update).
    let big = "wiki text ".repeat(60_000);
    let timed = setup
        .invoke(
            write_event("demo", "Home", &format!("v0 {big}"))
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
    assert!(timed.json().get("error").is_none());
    let write_ms = timed.duration.as_millis().max(2) as u64;
    let mut killed = 0;
    let iterations = 12;
    for i in 0..iterations {
        let mut victim = start(spec.clone()).await;
        call_ok(
            &mut victim,
            json!({"op": "read", "repo": "demo", "page": "Home"}),
        )
        .await;
        let before = commit_count(&repo);
        let event = write_event("demo", "Home", &format!("{i} {big}"));
        let timeout = Duration::from_millis(1 + i as u64 * (write_ms - 1) / iterations as u64);
        match victim
            .invoke_with_timeout(event.to_string().as_bytes(), timeout)
            .await
        {
            Err(EmulatorError::Timeout { .. }) => {
                killed += 1;
                assert!(victim.pid().is_none(), "a timed-out function is killed");
            }
            Ok(invocation) => assert!(invocation.json().get("error").is_none()),
            Err(other) => panic!("unexpected: {other}"),
        }
        assert_fsck_clean(&repo);
        let after_kill = commit_count(&repo);
        assert!(
            after_kill == before || after_kill == before + 1,
            "a write is all or nothing"
        );

        let mut next = start(spec.clone()).await;
        let landed = call_ok(
            &mut next,
            write_event("demo", "Home", &format!("after kill {i}")),
        )
        .await;
        assert_eq!(landed["result"]["changed"], true);
        assert_eq!(commit_count(&repo), after_kill + 1);
        let read = call_ok(
            &mut next,
            json!({"op": "read", "repo": "demo", "page": "Home"}),
        )
        .await;
        assert_eq!(read["result"]["content"], format!("after kill {i}"));
    }
    assert!(
        killed >= iterations / 2,
        "only {killed} of {iterations} writers were killed mid-write"
    );
    assert_fsck_clean(&repo);
}

#[tokio::test]
async fn a_stale_lock_is_recovered_and_a_fresh_one_is_busy() {
    let root = tempfile::tempdir().unwrap();
    let spec = git_probe(root.path())
        .env("WIKIBOT_STALE_LOCK_SECS", "60")
        .env("WIKIBOT_WRITE_BUDGET_MS", "300");
    let mut function = start(spec).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    call_ok(&mut function, write_event("demo", "Home", "v1")).await;
    let lock = root.path().join("demo.git/refs/heads/main.lock");

    // A lock left by a writer that died 2 minutes ago.
    std::fs::write(&lock, "").unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    let recovered = call_ok(&mut function, write_event("demo", "Home", "v2")).await;
    assert_eq!(recovered["result"]["changed"], true);
    assert!(!lock.exists(), "the stale lock was removed");

    // A lock taken just now by a live writer.
    std::fs::write(&lock, "").unwrap();
    let busy = call(&mut function, write_event("demo", "Home", "v3")).await;
    assert_eq!(busy["error"]["kind"], "busy", "{busy}");
    assert!(busy["error"]["message"].as_str().unwrap().contains("retry"));
    assert!(
        busy["timings_ms"]["total"].as_f64().unwrap() >= 300.0,
        "waited out the budget"
    );
    assert!(lock.exists(), "a fresh lock is never removed");

    std::fs::remove_file(&lock).unwrap();
    call_ok(&mut function, write_event("demo", "Home", "v3")).await;
    let read = call_ok(
        &mut function,
        json!({"op": "read", "repo": "demo", "page": "Home"}),
    )
    .await;
    assert_eq!(read["result"]["content"], "v3");
}

#[tokio::test]
async fn hostile_input_gets_clear_errors_and_writes_nothing() {
    // The function's root is one level down, so an escape to `../x` would land inside
    // `outside`, a directory of this test's own (not the shared temporary directory).
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().join("wikis");
    std::fs::create_dir(&root).unwrap();
    let mut function = start(git_probe(&root)).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    call_ok(&mut function, write_event("demo", "Home", "original")).await;
    let repo = root.join("demo.git");
    let before = snapshot(outside.path());

    let long_path = "a/".repeat(300) + "b";
    let hostile_pages = [
        "",
        "..",
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        ".",
        "./Home",
        ".git",
        ".git/config",
        "a/.git/hooks/pre-commit",
        ".GIT/HEAD",
        ".Git",
        ".git.",
        "GIT~1/config",
        "a//b",
        "Home/",
        "a\u{0}b",
        "a\nb",
        "\u{1b}[31mred",
        "a\u{7f}",
        "a\u{85}b",
        "a\\b",
        "C:\\Windows",
        " Home",
        "Home ",
        "Home.md/evil",
        &long_path,
    ];
    for page in hostile_pages {
        for event in [
            write_event("demo", page, "overwritten"),
            json!({"op": "read", "repo": "demo", "page": page}),
            json!({"op": "history", "repo": "demo", "page": page}),
            json!({"op": "lifecycle", "repo": "demo", "page": page}),
        ] {
            let response = call(&mut function, event.clone()).await;
            assert_eq!(
                response["error"]["kind"], "invalid_input",
                "{event} → {response}"
            );
            assert!(
                response["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("page: ")
            );
        }
    }
    for repo_name in [
        "",
        "..",
        "../demo",
        "demo/../x",
        "a/b",
        ".git",
        "demo.git",
        "-x",
        &"r".repeat(65),
    ] {
        let response = call(&mut function, json!({"op": "init", "repo": repo_name})).await;
        assert_eq!(
            response["error"]["kind"], "invalid_input",
            "{repo_name:?} → {response}"
        );
    }
    let malformed = [
        json!(null),
        json!("lifecycle"),
        json!({"repo": "demo"}),
        json!({"op": 7, "repo": "demo"}),
        json!({"op": "WRITE", "repo": "demo"}),
        json!({"op": "write", "repo": "demo", "page": "Home", "content": "x"}),
        json!({"op": "write", "repo": "demo", "page": "Home", "content": 5,
               "author": {"name": "a", "email": "b"}}),
        json!({"op": "write", "repo": "demo", "page": "Home", "content": "x",
               "author": {"name": "Evil <x>", "email": "b"}}),
        json!({"op": "write", "repo": "demo", "page": "Home", "content": "x",
               "author": {"name": "a", "email": "b"}, "base": "HEAD~1"}),
        json!({"op": "read", "repo": "demo", "page": "Home", "sneaky": true}),
        json!({"op": "history", "repo": "demo", "limit": "ten"}),
        json!({"op": "history", "repo": "demo", "limit": 1e9}),
        write_event("demo", "Home", &"x".repeat(1024 * 1024 + 1)),
    ];
    for event in malformed {
        let response = call(&mut function, event.clone()).await;
        let shown: String = event.to_string().chars().take(120).collect();
        assert_eq!(
            response["error"]["kind"], "invalid_input",
            "{shown} → {response}"
        );
        assert!(!response["error"]["message"].as_str().unwrap().is_empty());
    }
    // What Lambda itself refuses never reaches the function.
    assert!(matches!(
        function.invoke(b"{not json").await,
        Err(EmulatorError::EventNotJson(_))
    ));
    let huge = write_event("demo", "Home", &"x".repeat(MAX_PAYLOAD_BYTES)).to_string();
    assert!(matches!(
        function.invoke(huge.as_bytes()).await,
        Err(EmulatorError::EventTooLarge(_))
    ));

    assert_eq!(
        snapshot(outside.path()),
        before,
        "no file was created, changed or removed, inside the root or beside it"
    );
    assert_eq!(commit_count(&repo), 1);
    let read = call_ok(
        &mut function,
        json!({"op": "read", "repo": "demo", "page": "Home"}),
    )
    .await;
    assert_eq!(
        read["result"]["content"], "original",
        "the function still serves"
    );
}

/// Every path under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeSet<(String, u64, SystemTime)> {
    let mut entries = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            }
            entries.insert((
                entry.path().display().to_string(),
                meta.len(),
                meta.modified().unwrap(),
            ));
        }
    }
    entries
}

/// History pages through a cursor to exactly `git log -- <page>.md`; `maintain` packs the
/// loose objects and indexes the commits, and history is unchanged after it.
#[tokio::test]
async fn history_pages_with_a_cursor_and_maintenance_keeps_it_exact() {
    let root = tempfile::tempdir().unwrap();
    let spec = git_probe(root.path()).env("WIKIBOT_MAINTENANCE_GRACE_SECS", "0");
    let mut function = start(spec).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    for n in 0..7 {
        let page = if n % 3 == 0 { "Other" } else { "Home" };
        call_ok(&mut function, write_event("demo", page, &format!("v{n}"))).await;
    }
    let repo = root.path().join("demo.git");
    let expected: Vec<String> = git(&repo, &["log", "--format=%H", "--", "Home.md"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(expected.len(), 4);
    assert_eq!(page_through(&mut function, "Home").await, expected);

    let maintained = call_ok(&mut function, json!({"op": "maintain", "repo": "demo"})).await;
    let report = &maintained["result"];
    assert_eq!(report["commits_indexed"], 7, "{maintained}");
    assert!(
        report["objects_packed"].as_u64().unwrap() >= 7 * 3,
        "{maintained}"
    );
    assert!(
        report["loose_objects_removed"].as_u64().unwrap() >= 7 * 3,
        "{maintained}"
    );
    assert!(maintained["timings_ms"]["maintain"].is_number());
    assert_fsck_clean(&repo);
    assert_eq!(page_through(&mut function, "Home").await, expected);

    let never = call(
        &mut function,
        json!({"op": "history", "repo": "demo", "page": "Never"}),
    )
    .await;
    assert_eq!(never["error"]["kind"], "not_found", "{never}");
    let bad = call(
        &mut function,
        json!({"op": "history", "repo": "demo", "page": "Home", "cursor": "h1.xyz"}),
    )
    .await;
    assert_eq!(bad["error"]["kind"], "invalid_input", "{bad}");
}

/// Every commit id of a page's history, following `next_cursor` three at a time.
async fn page_through(
    function: &mut wikibot::lambda::emulator::RunningFunction,
    page: &str,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut event = json!({"op": "history", "repo": "demo", "page": page, "limit": 3});
        if let Some(cursor) = &cursor {
            event["cursor"] = json!(cursor);
        }
        let response = call_ok(function, event).await;
        let result = &response["result"];
        all.extend(
            result["commits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match result["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

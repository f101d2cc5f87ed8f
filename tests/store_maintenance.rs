//! Maintenance against the compiled `git-probe` bootstrap: it packs, indexes and deletes while
//! other processes write and read, and nothing is lost or fails; it cleans up after killed
//! writers; it runs on its own once loose objects pile up; and a person's `git gc` beside it
//! leaves a wiki that wikibot still reads, writes and maintains.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use common::{assert_fsck_clean, call, call_ok, git, git_probe, start, write_event};
use serde_json::json;
use wikibot::lambda::emulator::FunctionSpec;

/// Deletions after one second, and processes that reopen the repository five times as often,
/// as the defaults (20 minutes, 5 minutes) relate.
fn racing(root: &Path) -> FunctionSpec {
    git_probe(root)
        .env("WIKIBOT_MAINTENANCE_GRACE_SECS", "1")
        .env("WIKIBOT_REOPEN_AFTER_MS", "200")
        .env("WIKIBOT_MAINTAIN_AFTER_LOOSE_OBJECTS", "0")
}

fn files_under(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .count()
    })
}

/// Files named as loose objects (38 hex digits in a fan-out directory); temporary files
/// (`tmp_obj_…`, such as a writer's spares) are not objects.
fn loose_objects(repo: &Path) -> usize {
    (0..=255u8)
        .map(|fanout| {
            std::fs::read_dir(repo.join(format!("objects/{fanout:02x}"))).map_or(0, |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.len() == 38 && name.chars().all(|c| c.is_ascii_hexdigit())
                    })
                    .count()
            })
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_racing_writers_and_readers_loses_nothing_and_fails_no_read() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("demo.git");
    let mut setup = start(racing(root.path())).await;
    call_ok(&mut setup, json!({"op": "init", "repo": "demo"})).await;
    call_ok(&mut setup, write_event("demo", "Home", "home 0")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..3 {
        let mut function = start(racing(root.path())).await;
        let stop = Arc::clone(&stop);
        writers.spawn(async move {
            let mut saved = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let page = if writer == 0 {
                    "Home".to_owned()
                } else {
                    format!("Page {writer}")
                };
                let content = format!("writer {writer} write {n}");
                let response = call(&mut function, write_event("demo", &page, &content)).await;
                assert!(
                    response.get("error").is_none(),
                    "a write failed: {response}"
                );
                saved.push(response["result"]["revision"].as_str().unwrap().to_owned());
            }
            saved
        });
    }
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let mut function = start(racing(root.path())).await;
        let stop = Arc::clone(&stop);
        readers.spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                for event in [
                    json!({"op": "read", "repo": "demo", "page": "Home"}),
                    json!({"op": "history", "repo": "demo", "page": "Home", "limit": 20}),
                    json!({"op": "history", "repo": "demo", "limit": 20}),
                ] {
                    let response = call(&mut function, event.clone()).await;
                    assert!(
                        response.get("error").is_none(),
                        "{event} failed: {response}"
                    );
                    reads += 1;
                }
                let content = &call(
                    &mut function,
                    json!({"op": "read", "repo": "demo", "page": "Home"}),
                )
                .await["result"]["content"];
                assert!(
                    content.as_str().unwrap().starts_with("home 0")
                        || content.as_str().unwrap().starts_with("writer 0")
                );
            }
            reads
        });
    }
    let mut maintainer = start(racing(root.path())).await;
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let report = call_ok(&mut maintainer, json!({"op": "maintain", "repo": "demo"})).await;
        let result = &report["result"];
        let count = |field: &str| result[field].as_u64().unwrap_or(0);
        totals.0 += count("objects_packed");
        totals.1 += count("loose_objects_removed");
        totals.2 += count("packs_merged");
        totals.3 += count("packs_removed");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut saved = BTreeSet::new();
    while let Some(done) = writers.join_next().await {
        saved.extend(done.expect("a writer task"));
    }
    let mut reads = 0;
    while let Some(done) = readers.join_next().await {
        reads += done.expect("a reader task");
    }
    // One run packs the last writes; past the grace period another deletes what is redundant.
    call_ok(&mut maintainer, json!({"op": "maintain", "repo": "demo"})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let last = call_ok(&mut maintainer, json!({"op": "maintain", "repo": "demo"})).await;

    let on_branch: BTreeSet<String> = git(&repo, &["log", "--format=%H", "main"])
        .lines()
        .map(str::to_owned)
        .collect();
    let lost: Vec<&String> = saved.difference(&on_branch).collect();
    assert!(lost.is_empty(), "saved commits not on main: {lost:?}");
    assert_fsck_clean(&repo);
    assert!(
        saved.len() > 20 && reads > 20,
        "{} writes, {reads} reads",
        saved.len()
    );
    assert!(
        totals.0 > 0 && totals.1 > 0,
        "packed and deleted while racing: {totals:?}"
    );
    assert!(totals.2 > 0, "packs were merged while racing: {totals:?}");
    assert_eq!(last["result"]["objects_packed"], 0, "{last}");
    assert_eq!(
        loose_objects(&repo),
        0,
        "every loose object was packed and then deleted"
    );
    eprintln!(
        "{} writes and {reads} reads raced maintenance: {} objects packed, {} loose deleted, {} packs merged, {} retired packs deleted; {} packs left",
        saved.len(),
        totals.0,
        totals.1,
        totals.2,
        totals.3,
        last["result"]["packs"]
    );
}

#[tokio::test]
async fn leftovers_of_killed_writers_go_after_the_grace_period_only() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("demo.git");
    let mut function = start(racing(root.path())).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    call_ok(&mut function, write_event("demo", "Home", "v1")).await;
    let old = SystemTime::now() - Duration::from_secs(3600);
    let make = |path: &Path, aged: bool| {
        std::fs::write(path, "").unwrap();
        if aged {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    };
    make(&repo.join("objects/tmp_obj_wikibot_dead"), true);
    make(&repo.join("objects/tmp_obj_wikibot_live"), false);
    std::fs::create_dir_all(repo.join("objects/ab")).unwrap();
    make(&repo.join("objects/ab/tmp_obj_dead"), true);
    let report = call_ok(&mut function, json!({"op": "maintain", "repo": "demo"})).await;
    assert_eq!(report["result"]["temporary_files_removed"], 2, "{report}");
    assert!(!repo.join("objects/tmp_obj_wikibot_dead").exists());
    assert!(!repo.join("objects/ab/tmp_obj_dead").exists());
    assert!(
        repo.join("objects/tmp_obj_wikibot_live").exists(),
        "a live writer's file stays"
    );
    assert_fsck_clean(&repo);
}

#[tokio::test]
async fn writes_maintain_on_their_own_once_loose_objects_pile_up() {
    maintain_on_their_own("true").await;
}

/// Writing one file operation after another, the count is taken after the write, on the
/// calling thread, and triggers maintenance the same way.
#[tokio::test]
async fn writes_in_order_maintain_on_their_own_too() {
    maintain_on_their_own("false").await;
}

async fn maintain_on_their_own(parallel_object_writes: &str) {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("demo.git");
    // A threshold of one object: the check (one write in sixteen) finds it exceeded.
    let spec = git_probe(root.path())
        .env("WIKIBOT_MAINTAIN_AFTER_LOOSE_OBJECTS", "1")
        .env("WIKIBOT_PARALLEL_OBJECT_WRITES", parallel_object_writes);
    let mut function = start(spec).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    for n in 0..200 {
        call_ok(
            &mut function,
            write_event("demo", &format!("Page {}", n % 7), &format!("v{n}")),
        )
        .await;
        if files_under(&repo.join("objects/pack"), ".pack") > 0 {
            break;
        }
    }
    assert!(
        files_under(&repo.join("objects/pack"), ".pack") > 0,
        "no write maintained the wiki"
    );
    assert!(repo.join("wikibot/changed-paths").is_file());
    assert_fsck_clean(&repo);
}

#[tokio::test]
async fn a_persons_git_gc_beside_wikibot_leaves_a_wiki_it_serves_and_maintains() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("demo.git");
    let mut function = start(racing(root.path())).await;
    call_ok(&mut function, json!({"op": "init", "repo": "demo"})).await;
    for n in 0..30 {
        call_ok(
            &mut function,
            write_event("demo", &format!("Page {}", n % 4), &format!("v{n}")),
        )
        .await;
    }
    call_ok(&mut function, json!({"op": "maintain", "repo": "demo"})).await;
    for n in 30..40 {
        call_ok(
            &mut function,
            write_event("demo", &format!("Page {}", n % 4), &format!("v{n}")),
        )
        .await;
    }
    // The person repacks everything and deletes our packs and loose objects at once.
    git(&repo, &["gc", "--prune=now", "--quiet"]);
    assert_eq!(loose_objects(&repo), 0);

    // The same warm process still reads, writes and walks history.
    let read = call_ok(
        &mut function,
        json!({"op": "read", "repo": "demo", "page": "Page 3"}),
    )
    .await;
    assert_eq!(read["result"]["content"], "v39");
    call_ok(&mut function, write_event("demo", "Page 0", "after gc")).await;
    let history = call_ok(
        &mut function,
        json!({"op": "history", "repo": "demo", "page": "Page 0", "limit": 50}),
    )
    .await;
    let ours: Vec<&str> = history["result"]["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let theirs = git(&repo, &["log", "--format=%H", "--", "Page 0.md"]);
    assert_eq!(ours, theirs.lines().collect::<Vec<_>>());
    let report = call_ok(&mut function, json!({"op": "maintain", "repo": "demo"})).await;
    assert_eq!(
        report["result"]["commits_indexed"], 11,
        "the ten commits gc packed and the one since: {report}"
    );
    assert_fsck_clean(&repo);
}

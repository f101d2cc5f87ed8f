use std::fs;
use std::sync::Barrier;

use std::path::Path;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    wiki: Arc<Wiki>,
    author: Author,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(adjust: impl FnOnce(&mut StoreConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    adjust(&mut config);
    let store = Store::new(config);
    let (wiki, created) = store.init(&WikiName::parse("demo").unwrap()).unwrap();
    assert!(created);
    Fixture {
        _dir: dir,
        store,
        wiki,
        author: Author::new("Ada", "ada@example.com").unwrap(),
    }
}

fn page(raw: &str) -> PagePath {
    PagePath::parse(raw).unwrap()
}

impl Fixture {
    fn write(
        &self,
        page: &PagePath,
        content: &str,
        expect: Expect,
    ) -> Result<WriteOutcome, StoreError> {
        self.wiki.write(&WriteRequest {
            page,
            content,
            author: &self.author,
            message: "",
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            expect,
        })
    }
}

#[test]
fn init_is_idempotent_across_store_instances() {
    let f = fixture();
    let name = WikiName::parse("demo").unwrap();
    let (_, created_again) = f.store.init(&name).unwrap();
    assert!(!created_again);
    let other = Store::new(f.store.config().clone());
    let (_, created_elsewhere) = other.init(&name).unwrap();
    assert!(!created_elsewhere);
    assert!(f.store.repository_path(&name).join("HEAD").is_file());
}

#[test]
fn open_of_a_missing_wiki_is_not_found() {
    let f = fixture();
    let err = f
        .store
        .open(&WikiName::parse("nope").unwrap())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        !f.store.config().root.join("nope.git").exists(),
        "open must not create"
    );
}

#[test]
fn write_then_read_returns_content_and_revision() {
    let f = fixture();
    let home = page("Dev/Phase 0 — EFS Benchmarks");
    let written = f.write(&home, "# Numbers\n", Expect::Anything).unwrap();
    assert!(written.changed);
    assert_eq!(written.attempts, 1);
    let read = f.wiki.read(&home).unwrap();
    assert_eq!(read.content, "# Numbers\n");
    assert_eq!(read.revision, written.revision);
}

#[test]
fn reading_a_missing_page_is_not_found() {
    let f = fixture();
    assert_eq!(
        f.wiki.read(&page("Home")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    f.write(&page("Other"), "x", Expect::Anything).unwrap();
    assert_eq!(
        f.wiki.read(&page("Home")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn identical_content_makes_no_commit() {
    let f = fixture();
    let home = page("Home");
    let first = f.write(&home, "same", Expect::Anything).unwrap();
    let second = f.write(&home, "same", Expect::Anything).unwrap();
    assert!(!second.changed);
    assert_eq!(second.revision, first.revision);
    assert_eq!(f.wiki.history(None, 10).unwrap().len(), 1);
}

#[test]
fn create_only_refuses_an_existing_page() {
    let f = fixture();
    let home = page("Home");
    let first = f.write(&home, "v1", Expect::Absent).unwrap();
    let err = f.write(&home, "v2", Expect::Absent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.current_revision(), Some(&first.revision));
    assert_eq!(f.wiki.read(&home).unwrap().content, "v1");
}

#[test]
fn stale_base_conflicts_and_carries_the_current_revision() {
    let f = fixture();
    let home = page("Home");
    let v1 = f.write(&home, "v1", Expect::Anything).unwrap();
    let v2 = f
        .write(&home, "v2", Expect::Unchanged(v1.revision))
        .unwrap();
    let err = f
        .write(
            &home,
            "v3 from a stale read",
            Expect::Unchanged(v1.revision),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.current_revision(), Some(&v2.revision));
    assert!(err.to_string().contains(&v2.revision.to_string()));
    assert_eq!(f.wiki.read(&home).unwrap().content, "v2");
}

#[test]
fn a_base_older_than_changes_to_other_pages_still_lands() {
    let f = fixture();
    let home = page("Home");
    let base = f.write(&home, "v1", Expect::Anything).unwrap();
    f.write(&page("Elsewhere"), "unrelated", Expect::Anything)
        .unwrap();
    let landed = f
        .write(&home, "v2", Expect::Unchanged(base.revision))
        .unwrap();
    assert!(landed.changed);
    assert_eq!(f.wiki.read(&home).unwrap().content, "v2");
    assert_eq!(
        f.wiki.read(&page("Elsewhere")).unwrap().content,
        "unrelated"
    );
}

#[test]
fn an_unknown_base_revision_is_not_found() {
    let f = fixture();
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    let unknown = Revision::parse(&"ab".repeat(20)).unwrap();
    let err = f
        .write(&home, "v2", Expect::Unchanged(unknown))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn revisions_must_be_full_hex_commit_ids() {
    for bad in ["", "abc", &"g".repeat(40), &"a".repeat(41)] {
        assert_eq!(
            Revision::parse(bad).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
}

#[test]
fn oversized_content_and_bad_authors_are_refused_before_writing() {
    let f = fixture_with(|c| c.max_page_bytes = 10);
    let err = f
        .write(&page("Home"), &"x".repeat(11), Expect::Anything)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(f.wiki.history(None, 10).unwrap().is_empty());
    for (name, email) in [("", "a@b"), ("a", ""), ("Evil <x>", "a@b"), ("a\nb", "a@b")] {
        assert!(Author::new(name, email).is_err(), "{name:?} <{email:?}>");
    }
}

#[test]
fn history_is_newest_first_and_filters_by_page() {
    let f = fixture();
    let (a, b) = (page("A"), page("B"));
    f.write(&a, "a1", Expect::Anything).unwrap();
    f.write(&b, "b1", Expect::Anything).unwrap();
    f.write(&a, "a2", Expect::Anything).unwrap();
    let all = f.wiki.history(None, 10).unwrap();
    let messages: Vec<_> = all.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(messages, ["Update A", "Update B", "Update A"]);
    assert_eq!(all[0].author, "Ada");
    assert_eq!(all[0].email, "ada@example.com");
    assert_eq!(all[0].timestamp, 1_700_000_000);
    assert_eq!(all[0].time, "2023-11-14T22:13:20Z");
    assert_eq!(f.wiki.history(Some(&a), 10).unwrap().len(), 2);
    assert_eq!(f.wiki.history(Some(&b), 10).unwrap().len(), 1);
    assert_eq!(f.wiki.history(None, 2).unwrap().len(), 2);
    assert_eq!(
        f.wiki.history(Some(&page("Never")), 10).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn list_filters_by_prefix_and_ignores_non_pages() {
    let f = fixture();
    for p in ["Home", "Dev/Plan", "Dev/Phase 0/Results", "Devices"] {
        f.write(&page(p), p, Expect::Anything).unwrap();
    }
    let names = |prefix: &str| -> Vec<String> {
        f.wiki
            .list(prefix)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(
        names(""),
        ["Dev/Phase 0/Results", "Dev/Plan", "Devices", "Home"]
    );
    assert_eq!(names("Dev/"), ["Dev/Phase 0/Results", "Dev/Plan"]);
    assert_eq!(names("Dev"), ["Dev/Phase 0/Results", "Dev/Plan", "Devices"]);
    assert_eq!(names("Dev/Phase 0/R"), ["Dev/Phase 0/Results"]);
    assert!(names("Nothing").is_empty());
}

#[test]
fn concurrent_writers_on_separate_handles_all_land() {
    // Separate Stores mean separate libgit2 repositories, as separate processes would have.
    let f = fixture();
    let writers = 8;
    let per_writer = 5;
    let barrier = Barrier::new(writers);
    std::thread::scope(|scope| {
        for w in 0..writers {
            let config = f.store.config().clone();
            let barrier = &barrier;
            let author = f.author.clone();
            scope.spawn(move || {
                let store = Store::new(config);
                let wiki = store.open(&WikiName::parse("demo").unwrap()).unwrap();
                barrier.wait();
                for i in 0..per_writer {
                    let target = page(if i % 2 == 0 { "Shared" } else { "Other" });
                    let content = format!("writer {w} write {i}");
                    wiki.write(&WriteRequest {
                        page: &target,
                        content: &content,
                        author: &author,
                        message: &content,
                        time: SystemTime::now(),
                        expect: Expect::Anything,
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(
        f.wiki.history(None, 1000).unwrap().len(),
        writers * per_writer
    );
}

#[test]
fn a_stale_lock_is_removed_and_the_write_proceeds() {
    let f = fixture_with(|c| c.stale_lock_after = Duration::from_secs(5));
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    let lock = f.wiki.path().join("refs/heads/main.lock");
    fs::write(&lock, "").unwrap();
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(6))
        .unwrap();
    let landed = f.write(&home, "v2", Expect::Anything).unwrap();
    assert!(landed.changed);
    assert!(!lock.exists());
    assert_eq!(f.wiki.read(&home).unwrap().content, "v2");
}

#[test]
fn a_fresh_lock_held_past_the_budget_is_busy() {
    let f = fixture_with(|c| c.write_budget = Duration::from_millis(200));
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    let lock = f.wiki.path().join("refs/heads/main.lock");
    fs::write(&lock, "").unwrap();
    let err = f.write(&home, "v2", Expect::Anything).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    assert!(err.to_string().contains("retry"), "{err}");
    assert!(lock.exists(), "a fresh lock must be left alone");
    fs::remove_file(&lock).unwrap();
    assert_eq!(f.wiki.read(&home).unwrap().content, "v1");
}

#[test]
fn rfc3339_handles_times_git_can_hold() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(-5), "@-5");
    assert_eq!(rfc3339(i64::MAX), format!("@{}", i64::MAX));
}

#[test]
fn read_at_returns_the_page_as_of_a_revision() {
    let f = fixture();
    let home = page("Home");
    let v1 = f.write(&home, "v1", Expect::Anything).unwrap();
    f.write(&home, "v2", Expect::Anything).unwrap();
    let old = f.wiki.read_at(&home, Some(v1.revision)).unwrap();
    assert_eq!((old.content.as_str(), old.revision), ("v1", v1.revision));
    let unknown = Revision::parse(&"cd".repeat(20)).unwrap();
    assert_eq!(
        f.wiki.read_at(&home, Some(unknown)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        f.wiki
            .read_at(&page("Later"), Some(v1.revision))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// Runs the git CLI on a bare repository with no user or system configuration.
fn git(repo: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the git CLI is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// Commits a tree given as `mode path content` lines (paths one level deep at most) onto the
/// branch, with the git CLI.
fn git_commit_files(repo: &Path, branch: &str, files: &[(&str, &str, &str)]) -> String {
    let mut top = Vec::new();
    let mut dirs: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (mode, path, content) in files {
        let blob = git(repo, &["hash-object", "-w", "--stdin"], content);
        match path.split_once('/') {
            Some((dir, name)) => dirs
                .entry(dir)
                .or_default()
                .push(format!("{mode} blob {blob}\t{name}\n")),
            None => top.push(format!("{mode} blob {blob}\t{path}\n")),
        }
    }
    for (dir, entries) in dirs {
        let tree = git(repo, &["mktree"], &entries.concat());
        top.push(format!("040000 tree {tree}\t{dir}\n"));
    }
    let tree = git(repo, &["mktree"], &top.concat());
    let parent = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "-q", branch])
        .output()
        .unwrap();
    let parent = String::from_utf8(parent.stdout).unwrap().trim().to_owned();
    let mut args = vec!["commit-tree", tree.as_str(), "-m", "by git"];
    if !parent.is_empty() {
        args.extend(["-p", parent.as_str()]);
    }
    let commit = git(repo, &args, "");
    git(repo, &["update-ref", branch, &commit], "");
    commit
}

fn bare_repo_made_by_git(extra: &[&str]) -> (tempfile::TempDir, Store, WikiName) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("made.git");
    let mut args = vec!["init", "--bare", "-q"];
    args.extend(extra);
    let status = std::process::Command::new("git")
        .args(&args)
        .arg(&repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap();
    assert!(status.success());
    let store = Store::new(StoreConfig::new(dir.path()));
    (dir, store, WikiName::parse("made").unwrap())
}

fn write_as(wiki: &Wiki, page: &PagePath, content: &str) -> Result<WriteOutcome, StoreError> {
    wiki.write(&WriteRequest {
        page,
        content,
        author: &Author::new("Ada", "ada@example.com").unwrap(),
        message: "",
        time: SystemTime::now(),
        expect: Expect::Anything,
    })
}

#[test]
fn a_live_writer_keeps_others_waiting_and_busy_says_it_is_alive() {
    let f = fixture_with(|c| c.write_budget = Duration::from_millis(200));
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    // Another process's writer, holding the mutex (a separate open file, as in another
    // process), however long: it is never broken into.
    let other = FileMutex::new(f.wiki.path(), WRITER_MUTEX);
    let held = other.try_lock().unwrap().expect("free");
    let err = f.write(&home, "v2", Expect::Anything).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    let message = err.to_string();
    assert!(message.contains("still running"), "{message}");
    assert!(message.contains("not orphaned"), "{message}");
    assert_eq!(f.wiki.read(&home).unwrap().content, "v1");
    drop(held);
    assert!(f.write(&home, "v2", Expect::Anything).unwrap().changed);
}

#[test]
fn a_dead_writers_lock_is_cleared_at_once_whatever_its_age() {
    let f = fixture_with(|c| c.stale_lock_after = Duration::from_secs(3600));
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    // What a wikibot writer killed inside the ref update leaves: a read-only lock file.
    let lock = f.wiki.path().join("refs/heads/main.lock");
    fs::write(&lock, format!("{}\n", "ab".repeat(20))).unwrap();
    fs::set_permissions(&lock, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let started = Instant::now();
    assert!(f.write(&home, "v2", Expect::Anything).unwrap().changed);
    assert!(started.elapsed() < Duration::from_secs(60), "no stale age");
    assert!(!lock.exists());
    assert_eq!(f.wiki.read(&home).unwrap().content, "v2");
}

#[test]
fn a_foreign_lock_makes_busy_say_when_it_will_be_broken() {
    let f = fixture_with(|c| {
        c.write_budget = Duration::from_millis(150);
        c.stale_lock_after = Duration::from_secs(90);
    });
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    fs::write(f.wiki.path().join("refs/heads/main.lock"), "").unwrap();
    let message = f
        .write(&home, "v2", Expect::Anything)
        .unwrap_err()
        .to_string();
    assert!(message.contains("another program"), "{message}");
    assert!(message.contains("refs/heads/main.lock"), "{message}");
    assert!(
        message.contains("in 90 s") || message.contains("in 89 s"),
        "{message}"
    );
}

#[test]
fn a_repository_made_by_git_init_is_served_on_the_branch_head_names() {
    let (dir, store, name) = bare_repo_made_by_git(&["--initial-branch=master"]);
    let repo = dir.path().join("made.git");
    let wiki = store.open(&name).unwrap();
    assert_eq!(wiki.branch(), "refs/heads/master");
    let home = page("Home");
    let written = write_as(&wiki, &home, "hello").unwrap();
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD"], ""),
        written.revision.to_string()
    );
    assert!(!repo.join("refs/heads/main").exists());
    assert_eq!(git(&repo, &["show", "HEAD:Home.md"], ""), "hello");
}

#[test]
fn history_made_by_git_on_master_is_read_and_continued() {
    let (dir, store, name) = bare_repo_made_by_git(&["--initial-branch=master"]);
    let repo = dir.path().join("made.git");
    let first = git_commit_files(
        &repo,
        "refs/heads/master",
        &[("100644", "Home.md", "from git")],
    );
    let wiki = store.open(&name).unwrap();
    let home = page("Home");
    assert_eq!(wiki.read(&home).unwrap().content, "from git");
    let written = write_as(&wiki, &home, "from wikibot").unwrap();
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{}^", written.revision)], ""),
        first
    );
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"], ""), "2");
    assert_eq!(
        git(&repo, &["rev-list", "--max-parents=0", "HEAD"], ""),
        first,
        "one root"
    );
}

#[test]
fn a_missing_refs_heads_directory_does_not_stop_writes() {
    let f = fixture();
    let home = page("Home");
    f.write(&home, "v1", Expect::Anything).unwrap();
    let repo = f.wiki.path().to_owned();
    git(&repo, &["pack-refs", "--all", "--prune"], "");
    fs::remove_dir_all(repo.join("refs/heads")).unwrap();
    assert_eq!(f.wiki.read(&home).unwrap().content, "v1");
    assert!(f.write(&home, "v2", Expect::Anything).unwrap().changed);
    assert_eq!(git(&repo, &["show", "main:Home.md"], ""), "v2");
}

#[test]
fn reflogs_follow_gits_rules() {
    // Off by default in a bare repository.
    let f = fixture();
    f.write(&page("Home"), "v1", Expect::Anything).unwrap();
    assert!(!f.wiki.path().join("logs/refs/heads/main").exists());

    // On with core.logAllRefUpdates, for the branch and HEAD, in git's format.
    let (dir, store, name) = bare_repo_made_by_git(&["--initial-branch=main"]);
    let repo = dir.path().join("made.git");
    git(&repo, &["config", "core.logAllRefUpdates", "true"], "");
    let wiki = store.open(&name).unwrap();
    let first = write_as(&wiki, &page("Home"), "v1").unwrap();
    let second = write_as(&wiki, &page("Home"), "v2").unwrap();
    let log = git(&repo, &["reflog", "show", "--format=%H %gs", "main"], "");
    assert_eq!(
        log,
        format!(
            "{} commit: Update Home\n{} commit (initial): Update Home",
            second.revision, first.revision
        )
    );
    assert_eq!(
        git(&repo, &["reflog", "show", "--format=%H", "HEAD"], "")
            .lines()
            .count(),
        2
    );

    // An existing log file is appended to whatever the setting.
    let (dir, store, name) = bare_repo_made_by_git(&["--initial-branch=main"]);
    let repo = dir.path().join("made.git");
    fs::create_dir_all(repo.join("logs/refs/heads")).unwrap();
    fs::write(repo.join("logs/refs/heads/main"), "").unwrap();
    let wiki = store.open(&name).unwrap();
    write_as(&wiki, &page("Home"), "v1").unwrap();
    assert_eq!(
        fs::read_to_string(repo.join("logs/refs/heads/main"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert!(!repo.join("logs/HEAD").exists());
}

#[test]
fn modes_symlinks_and_colliding_paths_are_handled() {
    let (dir, store, name) = bare_repo_made_by_git(&["--initial-branch=main"]);
    let repo = dir.path().join("made.git");
    git_commit_files(
        &repo,
        "refs/heads/main",
        &[
            ("100755", "Run.md", "#!/bin/sh\n"),
            ("100644", "Plain.md", "plain"),
            ("120000", "Link.md", "Plain.md"),
            ("100644", "Notes", "a file without .md"),
            (
                "100644",
                "Dir.md/inside.md",
                "a directory named like a page",
            ),
        ],
    );
    let wiki = store.open(&name).unwrap();

    // An executable page stays executable; other entries keep their modes.
    write_as(&wiki, &page("Run"), "#!/bin/sh\necho hi\n").unwrap();
    let tree = git(&repo, &["ls-tree", "main"], "");
    assert!(tree.contains("100755 blob"), "{tree}");
    assert!(
        tree.lines()
            .any(|l| l.starts_with("100755") && l.ends_with("\tRun.md")),
        "{tree}"
    );
    assert!(
        tree.lines()
            .any(|l| l.starts_with("120000") && l.ends_with("\tLink.md")),
        "{tree}"
    );

    // A symbolic link is not a page: not read, not replaced, not listed.
    let read = wiki.read(&page("Link")).unwrap_err();
    assert_eq!(read.kind(), ErrorKind::InvalidInput);
    assert!(read.to_string().contains("symbolic link"), "{read}");
    let write = write_as(&wiki, &page("Link"), "x").unwrap_err();
    assert_eq!(write.kind(), ErrorKind::InvalidInput);
    let dir_page = write_as(&wiki, &page("Dir"), "x").unwrap_err();
    assert!(dir_page.to_string().contains("a directory"), "{dir_page}");
    let listed: Vec<String> = wiki
        .list("")
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    // `Dir.md/inside.md` is no page either: a directory may not end in `.md`.
    assert_eq!(listed, ["Plain", "Run"]);

    // A file where a directory must go is a conflict that names it.
    let err = write_as(&wiki, &page("Notes/Sub"), "x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("'Notes' is a file"), "{err}");
    assert_eq!(
        wiki.read(&page("Notes/Sub")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    common_fsck(&repo);
}

#[test]
fn unsupported_repository_formats_are_named() {
    for (args, named) in [
        (&["--object-format=sha256"][..], "sha256"),
        (&["--ref-format=reftable"][..], "reftable"),
    ] {
        let (_dir, store, name) = bare_repo_made_by_git(args);
        let err = store.open(&name).err().expect("refused");
        assert_eq!(err.kind(), ErrorKind::Internal);
        let message = err.to_string();
        assert!(message.contains(named), "{message}");
        assert!(message.contains("cannot be served"), "{message}");
    }
}

fn common_fsck(repo: &Path) {
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--full", "--strict", "--no-progress"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds on a tip another process has moved past (this process's guess), twice: once where
/// the guess would let a create-only write through and the real tip refuses it, once where
/// the guess would refuse it and the real tip lets it through. Only the real tip decides, the
/// write lands on it, and nothing built on the guess is left in the repository.
#[test]
fn a_write_built_on_a_stale_guess_is_decided_and_landed_on_the_real_tip() {
    let f = fixture();
    let other_process = Store::new(f.store.config().clone());
    let other = other_process
        .open(&WikiName::parse("demo").unwrap())
        .unwrap();
    let change = |expect| Change {
        author: &f.author,
        message: "",
        time: SystemTime::now(),
        expect,
    };

    // This process knows the tip after its own write; the other moves it on.
    f.write(&page("Gone"), "here", Expect::Anything).unwrap();
    write_as(&other, &page("New"), "made elsewhere").unwrap();
    let err = f.write(&page("New"), "mine", Expect::Absent).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");

    // The guess (after that refusal, the tip it read) has "Gone"; the real tip does not.
    other
        .delete(&page("Gone"), &change(Expect::Anything))
        .unwrap();
    let tip_before = other.history(None, 1).unwrap()[0].id;
    let landed = f.write(&page("Gone"), "again", Expect::Absent).unwrap();
    let log = f.wiki.history(None, 2).unwrap();
    assert_eq!(log[0].id, landed.revision);
    assert_eq!(log[1].id, tip_before, "built on the real tip");
    assert_eq!(f.wiki.read(&page("Gone")).unwrap().content, "again");
    assert_eq!(f.wiki.read(&page("New")).unwrap().content, "made elsewhere");

    let repo = f.wiki.path();
    // Spare files made for the next write are empty, and a used spare's name stays linked
    // to its object until then; an object staged and never placed is neither.
    let staged_and_left: Vec<_> = fs::read_dir(repo.join("objects"))
        .unwrap()
        .flatten()
        .filter(|dir| dir.path().is_dir())
        .flat_map(|dir| fs::read_dir(dir.path()).unwrap().flatten())
        .filter(|file| file.file_name().to_string_lossy().starts_with("tmp_obj_"))
        .filter(|file| {
            use std::os::unix::fs::MetadataExt;
            let meta = file.metadata().unwrap();
            meta.len() > 0 && meta.nlink() == 1
        })
        .collect();
    assert!(
        staged_and_left.is_empty(),
        "temporary files left: {staged_and_left:?}"
    );
    let unreachable = git(repo, &["fsck", "--unreachable", "--no-reflogs"], "");
    assert!(unreachable.trim().is_empty(), "{unreachable}");
}

use std::fs;
use std::sync::Barrier;

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
    assert!(f.wiki.history(Some(&page("Never")), 10).unwrap().is_empty());
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

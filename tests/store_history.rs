//! Page history is exactly git's: `history_page` lists the commits `git log -- '<page>.md'`
//! lists (and `git log` for the whole wiki), newest first, with or without the changed-paths
//! index, with commits newer than the index, across merges pushed with the git CLI, and when
//! paged through with cursors or cut short by the time budget.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use wikibot::store::{
    Author, ErrorKind, Expect, HistoryRequest, PagePath, Store, StoreConfig, Wiki, WikiName,
    WriteRequest,
};

/// A person with a clone of the wiki's repository, committing at fixed times.
struct Person {
    work: std::path::PathBuf,
}

impl Person {
    fn clone_of(repo: &Path, work: &Path) -> Self {
        let output = Command::new("git")
            .args(["clone", "-q"])
            .arg(repo)
            .arg(work)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self {
            work: work.to_owned(),
        }
    }

    /// Runs git in the clone; returns whether it succeeded.
    fn try_git(&self, args: &[&str], at: u64) -> bool {
        let date = format!("@{at} +0000");
        Command::new("git")
            .arg("-C")
            .arg(&self.work)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "P")
            .env("GIT_AUTHOR_EMAIL", "p@example.com")
            .env("GIT_COMMITTER_NAME", "P")
            .env("GIT_COMMITTER_EMAIL", "p@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap()
            .status
            .success()
    }

    fn git(&self, args: &[&str], at: u64) {
        assert!(self.try_git(args, at), "git {args:?} failed");
    }

    fn edit(&self, file: &str, text: &str, at: u64) {
        std::fs::write(self.work.join(file), text).unwrap();
        self.git(&["add", file], at);
        self.git(&["commit", "-q", "-m", &format!("{file} {text}")], at);
    }
}

fn page(raw: &str) -> PagePath {
    PagePath::parse(raw).unwrap()
}

fn write(wiki: &Wiki, raw: &str, content: &str, at: u64) {
    wiki.write(&WriteRequest {
        page: &page(raw),
        content,
        author: &Author::new("Ada", "ada@example.com").unwrap(),
        message: &format!("{raw}: {content}"),
        time: UNIX_EPOCH + Duration::from_secs(at),
        expect: Expect::Anything,
    })
    .unwrap();
}

/// `git log` of the whole wiki, or of one page's file, as commit ids.
fn git_log(repo: &Path, page: Option<&str>) -> Vec<String> {
    let mut args = vec!["log".to_owned(), "--format=%H".to_owned()];
    if let Some(page) = page {
        args.push("--".to_owned());
        args.push(format!(":(literal){page}.md"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::git(repo, &args)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every commit of `history_page`, following cursors with `limit` per call.
fn ours(wiki: &Wiki, raw: Option<&str>, limit: usize) -> Vec<String> {
    let page = raw.map(page);
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let history = wiki
            .history_page(HistoryRequest {
                page: page.as_ref(),
                limit,
                cursor: cursor.as_ref(),
            })
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        all.extend(history.commits.iter().map(|c| c.id.to_string()));
        match history.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

fn assert_same_as_git(wiki: &Wiki, repo: &Path, pages: &[&str]) {
    for raw in pages {
        let expected = git_log(repo, Some(raw));
        assert!(!expected.is_empty(), "{raw} has history");
        for limit in [1, 3, 50] {
            assert_eq!(
                ours(wiki, Some(raw), limit),
                expected,
                "{raw}, limit {limit}"
            );
        }
    }
    assert_eq!(ours(wiki, None, 7), git_log(repo, None), "the whole wiki");
}

#[test]
fn page_history_is_gits_with_and_without_the_index() {
    let root = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(root.path());
    config.maintain_after_loose_objects = 0;
    config.maintenance.grace = Duration::ZERO;
    let store = Store::new(config);
    let (wiki, _) = store.init(&WikiName::parse("w").unwrap()).unwrap();
    let repo = root.path().join("w.git");
    let pages = ["Home", "Dev/Notes", "Dev/Deep/Page", "Other"];
    let mut at = 1_700_000_000;
    for round in 0..30 {
        let raw = pages[round % pages.len()];
        at += 1;
        write(&wiki, raw, &format!("round {round}"), at);
    }
    // A page deleted with git and created again shows every step, as git log does.
    assert_same_as_git(&wiki, &repo, &pages);

    let report = wiki.maintain().unwrap();
    assert_eq!(report.commits_indexed, 30);
    assert_same_as_git(&wiki, &repo, &pages);

    // Commits newer than the index come from git; the index covers the rest.
    for round in 30..45 {
        at += 1;
        write(&wiki, pages[round % 3], &format!("round {round}"), at);
    }
    assert_same_as_git(&wiki, &repo, &pages);
    // Several commits in the same second keep git's order too.
    for round in 45..52 {
        write(&wiki, pages[round % 2], &format!("round {round}"), at);
    }
    assert_same_as_git(&wiki, &repo, &pages);
    wiki.maintain().unwrap();
    assert_same_as_git(&wiki, &repo, &pages);
    common::assert_fsck_clean(&repo);
}

#[test]
fn a_page_that_never_existed_is_not_found_and_a_deleted_one_has_history() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(StoreConfig::new(root.path()));
    let (wiki, _) = store.init(&WikiName::parse("w").unwrap()).unwrap();
    for n in 0..5 {
        write(&wiki, "Home", &format!("v{n}"), 1_700_000_000 + n);
    }
    let never = |wiki: &Wiki| {
        wiki.history_page(HistoryRequest {
            page: Some(&page("Never")),
            limit: 10,
            cursor: None,
        })
        .unwrap_err()
        .kind()
    };
    assert_eq!(never(&wiki), ErrorKind::NotFound);
    wiki.maintain().unwrap();
    assert_eq!(never(&wiki), ErrorKind::NotFound);

    // A person deletes the page with git; its history (deletion included) stays.
    let repo = root.path().join("w.git");
    let person = Person::clone_of(&repo, &root.path().join("work"));
    person.git(&["rm", "-q", "Home.md"], 1_700_000_100);
    person.git(&["commit", "-q", "-m", "delete Home"], 1_700_000_100);
    person.git(&["push", "-q", "origin", "main"], 1_700_000_100);
    assert_eq!(
        wiki.read(&page("Home")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let history = ours(&wiki, Some("Home"), 10);
    assert_eq!(history.len(), 6);
    assert_eq!(history, git_log(&repo, Some("Home")));
    write(&wiki, "Home", "back again", 1_700_000_200);
    assert_eq!(ours(&wiki, Some("Home"), 2), git_log(&repo, Some("Home")));
}

#[test]
fn merges_pushed_with_git_follow_gits_simplification() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(StoreConfig::new(root.path()));
    let (wiki, _) = store.init(&WikiName::parse("w").unwrap()).unwrap();
    let repo = root.path().join("w.git");
    write(&wiki, "Home", "base", 1_700_000_000);
    write(&wiki, "Side", "base", 1_700_000_001);

    // A person branches, commits on both lines, merges and pushes.
    let person = Person::clone_of(&repo, &root.path().join("work"));
    person.git(&["checkout", "-q", "-b", "topic"], 1_700_000_010);
    person.edit("Home.md", "topic edit", 1_700_000_011);
    person.edit("Side.md", "topic side", 1_700_000_013);
    person.git(&["checkout", "-q", "main"], 1_700_000_014);
    person.edit("Side.md", "main side", 1_700_000_012);
    person.edit("Other.md", "main other", 1_700_000_015);
    // Side.md changed on both lines: the merge conflicts, and the person keeps both.
    assert!(!person.try_git(
        &["merge", "-q", "--no-ff", "topic", "-m", "merge topic"],
        1_700_000_016
    ));
    person.edit("Side.md", "both", 1_700_000_016);
    person.git(&["push", "-q", "origin", "main"], 1_700_000_017);
    write(&wiki, "Home", "after the merge", 1_700_000_020);

    let pages = ["Home", "Side", "Other"];
    // The merge is the same as its second parent in Home.md (git follows only that line, and
    // hides the merge) and differs from both in Side.md (shown, both lines followed).
    assert_eq!(git_log(&repo, Some("Home")).len(), 3);
    assert_eq!(git_log(&repo, Some("Side")).len(), 4);
    assert_same_as_git(&wiki, &repo, &pages);
    wiki.maintain().unwrap();
    assert_same_as_git(&wiki, &repo, &pages);
}

#[test]
fn a_walk_out_of_time_returns_what_it_found_and_a_cursor() {
    let root = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(root.path());
    config.history_budget = Duration::ZERO;
    let store = Store::new(config);
    let (wiki, _) = store.init(&WikiName::parse("w").unwrap()).unwrap();
    let repo = root.path().join("w.git");
    for n in 0..40 {
        write(
            &wiki,
            if n % 4 == 0 { "Rare" } else { "Often" },
            &format!("v{n}"),
            1_700_000_000 + n,
        );
    }
    // With no time at all each call still makes progress, and the pages add up to git's.
    let first = wiki
        .history_page(HistoryRequest {
            page: Some(&page("Rare")),
            limit: 50,
            cursor: None,
        })
        .unwrap();
    assert!(first.truncated && first.next_cursor.is_some());
    assert_eq!(ours(&wiki, Some("Rare"), 50), git_log(&repo, Some("Rare")));
}

//! The page index never answers from a stale state: across processes (a fresh `Store` loads
//! the saved index and brings it to the tip), after writes by the git CLI (including history
//! rewritten and pruned), with a corrupt saved file; and multi-page commits leave trees that
//! `git fsck --strict` accepts, without empty directories.

mod common;

use std::path::Path;
use std::time::SystemTime;

use wikibot::store::{
    Author, Change, Expect, PagePath, SearchRequest, Store, StoreConfig, Wiki, WikiName,
    WriteRequest,
};

fn page(raw: &str) -> PagePath {
    PagePath::parse(raw).unwrap()
}

fn author() -> Author {
    Author::new("Ada", "ada@example.com").unwrap()
}

fn store(root: &Path) -> Store {
    let mut config = StoreConfig::new(root);
    config.maintain_after_loose_objects = 0;
    config.maintenance.grace = std::time::Duration::ZERO;
    Store::new(config)
}

fn write(wiki: &Wiki, path: &str, content: &str) {
    wiki.write(&WriteRequest {
        page: &page(path),
        content,
        author: &author(),
        message: "",
        time: SystemTime::now(),
        expect: Expect::Anything,
    })
    .unwrap();
}

fn found(wiki: &Wiki, query: &str) -> Vec<String> {
    wiki.search(SearchRequest {
        query,
        prefix: "",
        limit: 50,
    })
    .unwrap()
    .hits
    .into_iter()
    .map(|hit| hit.page.to_string())
    .collect()
}

fn change() -> Change<'static> {
    static AUTHOR: std::sync::OnceLock<Author> = std::sync::OnceLock::new();
    Change {
        author: AUTHOR.get_or_init(author),
        message: "",
        time: SystemTime::now(),
        expect: Expect::Anything,
    }
}

#[test]
fn a_fresh_process_loads_the_saved_index_and_brings_it_to_the_tip() {
    let root = tempfile::tempdir().unwrap();
    let name = WikiName::parse("wiki").unwrap();
    let first = store(root.path());
    let (wiki, _) = first.init(&name).unwrap();
    write(&wiki, "A", "apple [[B]]");
    write(&wiki, "B", "banana");
    let report = wiki.maintain().unwrap();
    assert!(report.page_index_saved, "{report:?}");
    let saved = root.path().join("wiki.git/wikibot/page-index");
    assert!(saved.is_file());
    // Written after the save, by this process: another process must still see them.
    write(&wiki, "C", "cherry [[B]]");
    wiki.delete(&page("A"), &change()).unwrap();

    let second = store(root.path());
    let fresh = second.open(&name).unwrap();
    assert_eq!(found(&fresh, "cherry"), ["C"]);
    assert!(found(&fresh, "apple").is_empty());
    assert_eq!(fresh.links(&page("B")).unwrap().incoming, [page("C")]);
}

#[test]
fn a_corrupt_saved_index_is_ignored() {
    let root = tempfile::tempdir().unwrap();
    let name = WikiName::parse("wiki").unwrap();
    let (wiki, _) = store(root.path()).init(&name).unwrap();
    write(&wiki, "A", "apple");
    wiki.maintain().unwrap();
    let saved = root.path().join("wiki.git/wikibot/page-index");
    let mut bytes = std::fs::read(&saved).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::remove_file(&saved).unwrap();
    std::fs::write(&saved, &bytes).unwrap();
    let fresh = store(root.path()).open(&name).unwrap();
    assert_eq!(found(&fresh, "apple"), ["A"]);
}

#[test]
fn history_rewritten_by_the_git_cli_and_pruned_is_seen() {
    let root = tempfile::tempdir().unwrap();
    let name = WikiName::parse("wiki").unwrap();
    let store = store(root.path());
    let (wiki, _) = store.init(&name).unwrap();
    write(&wiki, "Old", "obsolete words");
    assert_eq!(found(&wiki, "obsolete"), ["Old"]);
    // A person replaces the whole history with one unrelated commit and prunes the old one,
    // so the tree the index describes is gone.
    let repo = root.path().join("wiki.git");
    let blob = common::git_stdin(&repo, &["hash-object", "-w", "--stdin"], "brand new text");
    let tree = common::git_stdin(
        &repo,
        &["mktree"],
        &format!("100644 blob {}\tNew.md\n", blob.trim()),
    );
    let commit = common::git_stdin(&repo, &["commit-tree", tree.trim(), "-m", "Rewrite"], "");
    common::git(&repo, &["update-ref", "refs/heads/main", commit.trim()]);
    common::git(&repo, &["reflog", "expire", "--expire=now", "--all"]);
    common::git(&repo, &["gc", "--prune=now", "--quiet"]);
    assert!(found(&wiki, "obsolete").is_empty());
    assert_eq!(found(&wiki, "brand"), ["New"]);
    assert_eq!(wiki.list("").unwrap(), [page("New")]);
}

#[test]
fn renames_and_deletes_leave_no_empty_directories() {
    let root = tempfile::tempdir().unwrap();
    let name = WikiName::parse("wiki").unwrap();
    let (wiki, _) = store(root.path()).init(&name).unwrap();
    write(&wiki, "Deep/Down/Page", "text [[Other]]");
    write(&wiki, "Other", "see [[Deep/Down/Page]]");
    let renamed = wiki
        .rename(&page("Deep/Down/Page"), &page("Top"), true, &change())
        .unwrap();
    assert_eq!(renamed.rewritten, [page("Other")]);
    let repo = root.path().join("wiki.git");
    let files = common::git(&repo, &["ls-tree", "-r", "-t", "--name-only", "main"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["Other.md", "Top.md"]);
    wiki.delete(&page("Top"), &change()).unwrap();
    wiki.delete(&page("Other"), &change()).unwrap();
    let files = common::git(&repo, &["ls-tree", "-r", "-t", "--name-only", "main"]);
    assert_eq!(files, "", "the last page gone: an empty tree");
    common::assert_fsck_clean(&repo);
    assert!(wiki.list("").unwrap().is_empty());
    assert!(found(&wiki, "text").is_empty());
}

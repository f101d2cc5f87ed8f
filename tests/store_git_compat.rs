//! Every page name the store accepts makes a tree the real git accepts: `git fsck --strict`
//! (git's own checks against `.git`/`.gitmodules` lookalikes on NTFS and HFS+) stays clean,
//! and `git ls-tree` shows each page where the documented mapping puts it.

mod common;

use std::time::SystemTime;

use wikibot::store::{Author, Expect, PagePath, Store, StoreConfig, WikiName, WriteRequest};

#[test]
fn accepted_page_names_make_trees_that_git_fsck_accepts() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(StoreConfig::new(root.path()));
    let (wiki, _) = store.init(&WikiName::parse("names").unwrap()).unwrap();
    let author = Author::new("Ada", "ada@example.com").unwrap();
    let names = [
        "Home",
        "Dev/Phase 0 — EFS Benchmarks",
        "Meeting 2026-11-23",
        "Notes on Mr. Smith",
        "Console",
        "com10",
        "v1.2/notes",
        "git/config",
        "HEAD",
        "refs/heads/main",
        "objects/pack/x",
        "Agit~1",
        "gitmodules",
        "x.md",
        "日本語/ページ",
        "emoji 🦀",
        "a b/c d",
    ];
    for name in names {
        let page = PagePath::parse(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        wiki.write(&WriteRequest {
            page: &page,
            content: name,
            author: &author,
            message: "",
            time: SystemTime::now(),
            expect: Expect::Absent,
        })
        .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
    let repo = root.path().join("names.git");
    common::assert_fsck_clean(&repo);
    let listed = common::git(
        &repo,
        &[
            "-c",
            "core.quotePath=false",
            "ls-tree",
            "-r",
            "--name-only",
            "main",
        ],
    );
    let mut files: Vec<&str> = listed.lines().collect();
    files.sort_unstable();
    let mut expected: Vec<String> = names.iter().map(|n| format!("{n}.md")).collect();
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(common::commit_count(&repo), names.len());
}

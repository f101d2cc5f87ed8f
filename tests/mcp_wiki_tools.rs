//! The wiki tools through the MCP server, the cases an assistant hits: search with phrases,
//! prefixes and no hits; links to missing pages and backlinks; orphans; frontmatter (valid
//! and not) and the listing filters; targeted edits (a snippet found twice, conflicts);
//! delete and rename (with and without rewriting links); and pages written behind the
//! server's back by the git CLI, which every answer must reflect at once.

mod common;

use std::path::Path;
use std::process::Command;

use common::mcp::{TestServer, call_tool};
use serde_json::{Value, json};
use wikibot::auth::StaticToken;
use wikibot::mcp::AuthConfig;

const TOKEN: &str = "wiki-tools-token-0123456789abcdef0123";

struct Fixture {
    root: tempfile::TempDir,
    server: TestServer,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let auth = AuthConfig::Required {
        authkit: None,
        static_token: Some(StaticToken::new(TOKEN).unwrap()),
    };
    let server = TestServer::start(root.path(), auth, &[]).await;
    Fixture {
        root,
        server,
        http: wikibot::tls::client_builder().build().unwrap(),
    }
}

impl Fixture {
    async fn call(&self, tool: &str, args: Value) -> (bool, String) {
        call_tool(&self.http, &self.server.url, Some(TOKEN), tool, args).await
    }

    /// Calls a tool that must succeed, and returns its text.
    async fn ok(&self, tool: &str, args: Value) -> String {
        let (error, text) = self.call(tool, args.clone()).await;
        assert!(!error, "{tool} {args}: {text}");
        text
    }

    /// Calls a tool that must fail, and returns its message.
    async fn refused(&self, tool: &str, args: Value) -> String {
        let (error, text) = self.call(tool, args.clone()).await;
        assert!(error, "{tool} {args} should fail: {text}");
        text
    }

    async fn write(&self, path: &str, content: &str) -> String {
        let text = self
            .ok("write_note", json!({"path": path, "content": content}))
            .await;
        last_word(&text)
    }

    async fn revision_of(&self, path: &str) -> String {
        let text = self.ok("read_note", json!({"path": path})).await;
        text.lines()
            .find_map(|l| l.strip_prefix("Revision: "))
            .unwrap_or_else(|| panic!("no revision in {text}"))
            .to_owned()
    }

    async fn body(&self, path: &str) -> String {
        let text = self.ok("read_note", json!({"path": path})).await;
        text.split_once("\n\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    fn repo(&self) -> std::path::PathBuf {
        self.root.path().join("wiki.git")
    }
}

fn last_word(text: &str) -> String {
    text.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Page names listed one per line as `- Name` (with anything after it cut off).
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(|l| l.split(" (changed").next().unwrap_or(l).to_owned())
        .collect()
}

/// Result pages of search_notes: lines `N. Name`.
fn hits(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (rank, name) = l.split_once(". ")?;
            rank.parse::<usize>().ok().map(|_| name.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn search_finds_words_phrases_and_prefixes_with_matching_lines() {
    let f = fixture().await;
    f.write(
        "Dev/Cold Starts",
        "# Cold starts\n\nThe Lambda cold start is 40 ms.\nWarm calls are faster.\n",
    )
    .await;
    f.write(
        "Dev/Warm",
        "Warm Lambda calls reuse the repository; a start is cold once.\n",
    )
    .await;
    f.write(
        "Ops/Runbook",
        "Deploying: benchmarks first, then the cold start check.\n",
    )
    .await;

    // A phrase: the words in that order, any case.
    let text = f
        .ok("search_notes", json!({"query": "\"COLD START\""}))
        .await;
    let mut found = hits(&text);
    found.sort();
    assert_eq!(found, ["Dev/Cold Starts", "Ops/Runbook"], "{text}");
    assert!(
        text.contains("   3: The Lambda cold start is 40 ms."),
        "line number and line: {text}"
    );
    assert!(text.contains("at revision "), "{text}");
    // Words: all must occur, in any order (Dev/Warm has "start" and "cold", not the phrase).
    let text = f.ok("search_notes", json!({"query": "start cold"})).await;
    assert_eq!(hits(&text).len(), 3, "{text}");
    // A prefix term and a path prefix.
    let text = f
        .ok("search_notes", json!({"query": "bench*", "prefix": "Ops/"}))
        .await;
    assert_eq!(hits(&text), ["Ops/Runbook"], "{text}");
    let text = f
        .ok("search_notes", json!({"query": "lambda", "prefix": "Ops/"}))
        .await;
    assert!(text.starts_with("No page under \"Ops/\" matches"), "{text}");
    // No hits: say which term is missing.
    let text = f.ok("search_notes", json!({"query": "lambda zebra"})).await;
    assert!(
        text.contains("lambda: 2") && text.contains("zebra: 0"),
        "{text}"
    );
    // Limits.
    let text = f
        .ok("search_notes", json!({"query": "cold", "limit": 1}))
        .await;
    assert_eq!(hits(&text).len(), 1);
    assert!(text.contains("2 more not shown"), "{text}");
    for (args, expected) in [
        (json!({"query": "  ?? "}), "no words"),
        (json!({"query": "a*"}), "too short a prefix"),
        (json!({"query": "x", "limit": 51}), "between 1 and 50"),
    ] {
        let text = f.refused("search_notes", args).await;
        assert!(text.contains(expected), "{text}");
    }
    // A change is found at once, and what it replaced is gone.
    f.write("Fresh", "zebra crossing\n").await;
    let text = f.ok("search_notes", json!({"query": "zebra"})).await;
    assert_eq!(hits(&text), ["Fresh"], "{text}");
}

#[tokio::test]
async fn links_backlinks_missing_targets_and_orphans() {
    let f = fixture().await;
    f.write(
        "Home",
        "Start at [[Dev/Plan|the plan]], see [notes](Dev/Notes.md) and [[Nowhere#intro]].\n\
         `[[Not a link]]` and [site](https://example.com).\n",
    )
    .await;
    f.write("Dev/Plan", "Back to [home](../Home).\n").await;
    f.write("Dev/Notes", "Nothing links out.\n").await;
    f.write("Lonely", "Nobody links here. [[Home]]\n").await;

    let text = f.ok("get_links", json!({"path": "Home"})).await;
    assert!(
        text.contains("Links to (3, 1 missing): Dev/Notes, Dev/Plan, Nowhere (missing)"),
        "{text}"
    );
    assert!(text.contains("Linked from (2): Dev/Plan, Lonely"), "{text}");
    let text = f.ok("get_links", json!({"path": "Nowhere"})).await;
    assert!(text.starts_with("'Nowhere' does not exist"), "{text}");
    assert!(text.contains("Linked from (1): Home"), "{text}");

    let text = f.ok("read_note", json!({"path": "Home"})).await;
    assert!(
        text.contains("Links: Dev/Notes, Dev/Plan, Nowhere (missing)\n"),
        "{text}"
    );

    let text = f.ok("find_orphaned_notes", json!({})).await;
    assert_eq!(listed(&text), ["Lonely"], "{text}");
    f.write("Dev/Index", "[[Lonely]]\n").await;
    let text = f.ok("find_orphaned_notes", json!({"prefix": "Dev/"})).await;
    assert_eq!(listed(&text), ["Dev/Index"], "{text}");
}

#[tokio::test]
async fn frontmatter_is_parsed_filtered_on_and_invalid_yaml_is_a_clear_error() {
    let f = fixture().await;
    f.write(
        "Projects/Alpha",
        "---\ncategory: Project\ntags: [rust, Lambda]\nowner: ada\n---\n# Alpha\n",
    )
    .await;
    f.write(
        "Projects/Beta",
        "---\ncategory: project\ntags: rust, git\n---\n# Beta\n",
    )
    .await;
    f.write("Notes/Gamma", "---\ncategory: Note\ntags: [lambda]\n---\n")
        .await;
    let broken = "---\ncategory: Project\ntags: [unclosed\n---\n# Still readable\n";
    f.write("Projects/Broken", broken).await;

    let text = f.ok("read_note", json!({"path": "Projects/Alpha"})).await;
    let json_line = text
        .lines()
        .find_map(|l| l.strip_prefix("Frontmatter: "))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(
        fields,
        json!({"category": "Project", "tags": ["rust", "Lambda"], "owner": "ada"})
    );
    assert!(
        text.ends_with("---\n# Alpha\n"),
        "the whole page follows: {text}"
    );

    let text = f.ok("read_note", json!({"path": "Projects/Broken"})).await;
    assert!(
        text.contains("Frontmatter error: frontmatter is not valid (line 3)"),
        "{text}"
    );
    assert!(text.ends_with(broken), "still readable as stored: {text}");

    let text = f.ok("list_notes", json!({"category": "PROJECT"})).await;
    assert_eq!(listed(&text), ["Projects/Alpha", "Projects/Beta"], "{text}");
    let text = f.ok("list_notes", json!({"tag": "lambda"})).await;
    assert_eq!(listed(&text), ["Notes/Gamma", "Projects/Alpha"], "{text}");
    let text = f
        .ok("list_notes", json!({"tag": "rust", "prefix": "Projects/B"}))
        .await;
    assert_eq!(listed(&text), ["Projects/Beta"], "{text}");
    let text = f.ok("list_notes", json!({"category": "nothing"})).await;
    assert!(text.starts_with("No pages in category"), "{text}");
    let text = f
        .refused("list_notes", json!({"updated_since": "last week"}))
        .await;
    assert!(text.contains("not a date"), "{text}");
}

#[tokio::test]
async fn updated_since_lists_pages_by_their_last_commit() {
    let f = fixture().await;
    f.write("Old", "old\n").await;
    f.write("Also Old", "old too\n").await;
    // Backdate both commits with the git CLI: rewrite the branch with commit dates in 2020.
    let repo = f.repo();
    let old_tip = common::git(&repo, &["rev-parse", "main"]);
    let tree = common::git(
        &repo,
        &["rev-parse", &format!("{}^{{tree}}", old_tip.trim())],
    );
    let backdated = Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["commit-tree", tree.trim(), "-m", "Backdated import"])
        .env("GIT_AUTHOR_DATE", "2020-01-02T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2020-01-02T00:00:00Z")
        .env("GIT_AUTHOR_NAME", "Importer")
        .env("GIT_AUTHOR_EMAIL", "import@example.com")
        .env("GIT_COMMITTER_NAME", "Importer")
        .env("GIT_COMMITTER_EMAIL", "import@example.com")
        .output()
        .unwrap();
    assert!(backdated.status.success());
    let commit = String::from_utf8_lossy(&backdated.stdout).trim().to_owned();
    common::git(&repo, &["update-ref", "refs/heads/main", &commit]);

    f.write("New", "new\n").await;
    let text = f
        .ok("list_notes", json!({"updated_since": "2021-01-01"}))
        .await;
    assert_eq!(listed(&text), ["New"], "{text}");
    assert!(text.contains("(changed 20"), "{text}");
    let text = f
        .ok("list_notes", json!({"updated_since": "2019-12-31"}))
        .await;
    assert_eq!(listed(&text), ["Also Old", "New", "Old"], "{text}");
    let text = f
        .ok(
            "list_notes",
            json!({"updated_since": "2020-01-02T00:00:01Z", "prefix": "N"}),
        )
        .await;
    assert_eq!(listed(&text), ["New"], "{text}");
}

#[tokio::test]
async fn edit_note_replaces_appends_prepends_and_refuses_ambiguity_and_conflicts() {
    let f = fixture().await;
    let first = f
        .write("Log", "---\ntags: [log]\n---\n- one\n- two\n- one\n")
        .await;

    let text = f
        .refused(
            "edit_note",
            json!({"path": "Log", "old_string": "- one", "new_string": "- 1"}),
        )
        .await;
    assert!(text.contains("occurs 2 times"), "{text}");
    let text = f
        .refused(
            "edit_note",
            json!({"path": "Log", "old_string": "- three", "new_string": "x"}),
        )
        .await;
    assert!(text.contains("does not occur"), "{text}");
    let text = f
        .ok(
            "edit_note",
            json!({"path": "Log", "old_string": "- two\n- one", "new_string": "- 2\n- 1", "revision": first}),
        )
        .await;
    assert!(text.starts_with("Edited 'Log'. New revision: "), "{text}");
    let second = last_word(&text);
    // The first revision is now stale: a conflict naming the current one.
    let text = f
        .refused(
            "edit_note",
            json!({"path": "Log", "append": "- late", "revision": first}),
        )
        .await;
    assert!(
        text.contains("Conflict") && text.contains(&second),
        "{text}"
    );
    f.ok("edit_note", json!({"path": "Log", "append": "- three"}))
        .await;
    f.ok("edit_note", json!({"path": "Log", "prepend": "# Log"}))
        .await;
    assert_eq!(
        f.body("Log").await,
        "---\ntags: [log]\n---\n# Log\n- one\n- 2\n- 1\n- three"
    );
    for (args, expected) in [
        (json!({"path": "Log"}), "exactly one of"),
        (
            json!({"path": "Log", "append": "a", "prepend": "b"}),
            "exactly one of",
        ),
        (
            json!({"path": "Log", "old_string": "x"}),
            "needs new_string",
        ),
        (json!({"path": "Missing", "append": "x"}), "does not exist"),
    ] {
        let text = f.refused("edit_note", args).await;
        assert!(text.contains(expected), "{text}");
    }
}

#[tokio::test]
async fn delete_note_needs_the_current_revision() {
    let f = fixture().await;
    let first = f.write("Doomed", "bye\n").await;
    f.write("Other", "[[Doomed]]\n").await;
    let text = f
        .refused("delete_note", json!({"path": "Doomed", "revision": ""}))
        .await;
    assert!(text.contains("read it with read_note first"), "{text}");
    f.ok(
        "edit_note",
        json!({"path": "Doomed", "append": "changed meanwhile"}),
    )
    .await;
    let text = f
        .refused("delete_note", json!({"path": "Doomed", "revision": first}))
        .await;
    assert!(text.contains("Conflict"), "{text}");
    let current = f.revision_of("Doomed").await;
    let text = f
        .ok(
            "delete_note",
            json!({"path": "Doomed", "revision": current}),
        )
        .await;
    assert!(text.starts_with("Deleted 'Doomed'"), "{text}");
    let text = f.refused("read_note", json!({"path": "Doomed"})).await;
    assert!(text.contains("does not exist"), "{text}");
    let text = f.ok("get_links", json!({"path": "Other"})).await;
    assert!(text.contains("Doomed (missing)"), "{text}");
    let text = f.ok("search_notes", json!({"query": "bye"})).await;
    assert!(text.starts_with("No page"), "{text}");
    let log = common::git(&f.repo(), &["log", "-1", "--format=%s", "main"]);
    assert_eq!(log.trim(), "Delete Doomed");
}

#[tokio::test]
async fn rename_note_rewrites_links_in_one_commit() {
    let f = fixture().await;
    f.write(
        "Dev/Plan",
        "Plan. See [notes](Notes.md) and [home](../Home).\n",
    )
    .await;
    f.write("Dev/Notes", "Notes for [[Dev/Plan#Goals|the plan]].\n")
        .await;
    f.write(
        "Home",
        "[[Dev/Plan]], [plan](Dev/Plan.md), [abs](/Dev/Plan) and `[[Dev/Plan]]` in code.\n",
    )
    .await;
    let before = common::git(&f.repo(), &["rev-list", "--count", "main"]);
    let revision = f.revision_of("Dev/Plan").await;

    let text = f
        .ok(
            "rename_note",
            json!({"path": "Dev/Plan", "new_path": "Archive/2026 Plan", "revision": revision}),
        )
        .await;
    assert!(
        text.contains("Links rewritten in 2 page(s): Dev/Notes, Home"),
        "{text}"
    );
    assert!(text.contains("own relative links were adjusted"), "{text}");
    let after = common::git(&f.repo(), &["rev-list", "--count", "main"]);
    assert_eq!(
        after.trim().parse::<u32>().unwrap(),
        before.trim().parse::<u32>().unwrap() + 1,
        "one commit"
    );
    assert_eq!(
        f.body("Home").await,
        "[[Archive/2026 Plan]], [plan](Archive/2026%20Plan.md), [abs](/Archive/2026%20Plan) and `[[Dev/Plan]]` in code.\n"
    );
    assert_eq!(
        f.body("Dev/Notes").await,
        "Notes for [[Archive/2026 Plan#Goals|the plan]].\n"
    );
    assert_eq!(
        f.body("Archive/2026 Plan").await,
        "Plan. See [notes](../Dev/Notes.md) and [home](../Home).\n"
    );
    let text = f
        .ok("get_links", json!({"path": "Archive/2026 Plan"}))
        .await;
    assert!(text.contains("Linked from (2): Dev/Notes, Home"), "{text}");
    assert!(text.contains("Links to (2): Dev/Notes, Home"), "{text}");
    let text = f.ok("get_links", json!({"path": "Dev/Plan"})).await;
    assert!(text.contains("Linked from: no other page"), "{text}");
}

#[tokio::test]
async fn rename_note_refuses_taken_names_and_stale_revisions_and_can_leave_links() {
    let f = fixture().await;
    let a = f.write("A", "page a\n").await;
    f.write("B", "page b links [[A]]\n").await;
    let text = f
        .refused(
            "rename_note",
            json!({"path": "A", "new_path": "B", "revision": a}),
        )
        .await;
    assert!(text.contains("'B' already exists"), "{text}");
    f.ok("edit_note", json!({"path": "A", "append": "more"}))
        .await;
    let text = f
        .refused(
            "rename_note",
            json!({"path": "A", "new_path": "C", "revision": a}),
        )
        .await;
    assert!(text.contains("Conflict"), "{text}");
    let current = f.revision_of("A").await;
    let text = f
        .ok(
            "rename_note",
            json!({"path": "A", "new_path": "C", "revision": current, "rewrite_links": false}),
        )
        .await;
    assert!(text.contains("left as they are"), "{text}");
    assert_eq!(f.body("B").await, "page b links [[A]]\n");
    let text = f.ok("get_links", json!({"path": "B"})).await;
    assert!(text.contains("A (missing)"), "{text}");
}

/// Commits `files` (path → content; `None` deletes) onto main with the git CLI, through a
/// clone and a push, as a person would.
fn git_cli_commit(repo: &Path, files: &[(&str, Option<&str>)], message: &str) {
    let work = tempfile::tempdir().unwrap();
    let run = |dir: &Path, args: &[&str]| {
        let output = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Person")
            .env("GIT_AUTHOR_EMAIL", "person@example.com")
            .env("GIT_COMMITTER_NAME", "Person")
            .env("GIT_COMMITTER_EMAIL", "person@example.com")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let clone = work.path().join("clone");
    run(
        work.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    for (path, content) in files {
        let file = clone.join(format!("{path}.md"));
        match content {
            Some(content) => {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, content).unwrap();
            }
            None => std::fs::remove_file(&file).unwrap(),
        }
    }
    run(&clone, &["add", "-A"]);
    run(&clone, &["commit", "-q", "-m", message]);
    run(&clone, &["push", "-q", "origin", "HEAD:main"]);
}

#[tokio::test]
async fn pages_written_by_the_git_cli_are_searched_linked_and_listed_at_once() {
    let f = fixture().await;
    f.write("Home", "Welcome.\n").await;
    // Warm every index the server keeps.
    f.ok("search_notes", json!({"query": "welcome"})).await;
    f.ok("find_orphaned_notes", json!({})).await;
    f.ok("list_notes", json!({"tag": "x"})).await;

    git_cli_commit(
        &f.repo(),
        &[
            ("Home", Some("Welcome. See [[Guide/Setup]].\n")),
            (
                "Guide/Setup",
                Some("---\ncategory: Guide\ntags: [setup]\n---\nInstall the flux capacitor.\n"),
            ),
        ],
        "Pushed by a person",
    );

    let text = f
        .ok("search_notes", json!({"query": "flux capacitor"}))
        .await;
    assert_eq!(hits(&text), ["Guide/Setup"], "{text}");
    let text = f.ok("get_links", json!({"path": "Guide/Setup"})).await;
    assert!(text.contains("Linked from (1): Home"), "{text}");
    let text = f.ok("list_notes", json!({"category": "guide"})).await;
    assert_eq!(listed(&text), ["Guide/Setup"], "{text}");
    let text = f.ok("find_orphaned_notes", json!({})).await;
    assert_eq!(listed(&text), ["Home"], "{text}");

    // A push that deletes and rewrites is seen as well; the server then writes on top.
    git_cli_commit(
        &f.repo(),
        &[("Guide/Setup", None), ("Home", Some("Plain again.\n"))],
        "Undo",
    );
    let text = f.ok("search_notes", json!({"query": "flux"})).await;
    assert!(text.starts_with("No page"), "{text}");
    let text = f.ok("get_links", json!({"path": "Guide/Setup"})).await;
    assert!(
        text.contains("does not exist") && text.contains("no other page"),
        "{text}"
    );
    let revision = f.revision_of("Home").await;
    f.ok(
        "edit_note",
        json!({"path": "Home", "append": "[[Back]]", "revision": revision}),
    )
    .await;
    let text = f.ok("get_links", json!({"path": "Back"})).await;
    assert!(text.contains("Linked from (1): Home"), "{text}");
    common::assert_fsck_clean(&f.repo());
}

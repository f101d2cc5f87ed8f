//! The page store: one bare git repository per wiki under a root directory (EFS on Lambda,
//! any local directory elsewhere), read and written through libgit2.
//!
//! Every write is a commit on `refs/heads/main`, made by compare-and-swap of the ref: a
//! writer that loses the race re-applies its change onto the new tip and tries again, so no
//! write is ever lost and writes to different pages never conflict. A write may name the
//! revision it was based on; if the page changed since, it gets a conflict carrying the
//! current revision instead of overwriting.
//!
//! On NFS every file-system metadata operation is a network round trip, so repositories are
//! kept open for the life of the process and libgit2 is told to skip checks that cost file
//! operations and buy nothing here (see [`configure_libgit2`]).
//!
//! This module must not know about Lambda, JSON events or MCP: it takes validated names and
//! returns typed results and [`StoreError`]s.

mod error;
mod lock;
mod path;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ErrorCode, ObjectType, Oid, Repository, RepositoryInitOptions, Signature, Sort};

pub use error::{ErrorKind, StoreError};
pub use path::{
    MAX_COMPONENT_BYTES, MAX_PAGE_PATH_BYTES, MAX_WIKI_NAME_BYTES, PAGE_FILE_SUFFIX, PagePath,
    PagePathError, WikiName, WikiNameError,
};

use lock::LockCheck;

/// The branch every wiki lives on.
pub const MAIN_REF: &str = "refs/heads/main";
/// The id of the tree with no entries (SHA-1 repositories).
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// Removes stale `main.lock` files; kept outside `refs/` so git never mistakes it for a ref.
const LOCK_BREAKER_FILE: &str = "wikibot-lock-breaker.lock";

/// Where the store lives and how patient its writers are.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding one `<wiki>.git` bare repository per wiki.
    pub root: PathBuf,
    /// How long a write may keep retrying against other writers before answering "busy".
    pub write_budget: Duration,
    /// A `*.lock` file older than this belongs to a dead writer and is removed. It must exceed
    /// the longest a live writer can run: the Lambda timeout plus a margin.
    pub stale_lock_after: Duration,
    /// Largest page, in bytes.
    pub max_page_bytes: usize,
}

impl StoreConfig {
    pub const DEFAULT_WRITE_BUDGET: Duration = Duration::from_secs(10);
    /// 30 s (the deployed Lambda timeout) plus a 30 s margin.
    pub const DEFAULT_STALE_LOCK_AFTER: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_PAGE_BYTES: usize = 1024 * 1024;

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            write_budget: Self::DEFAULT_WRITE_BUDGET,
            stale_lock_after: Self::DEFAULT_STALE_LOCK_AFTER,
            max_page_bytes: Self::DEFAULT_MAX_PAGE_BYTES,
        }
    }

    /// Reads `WIKIBOT_ROOT` (else `default_root`), `WIKIBOT_WRITE_BUDGET_MS`,
    /// `WIKIBOT_STALE_LOCK_SECS` and `WIKIBOT_MAX_PAGE_BYTES`.
    pub fn from_env(default_root: &Path) -> Result<Self, crate::config::ConfigError> {
        use crate::config::{env_number, env_path};
        let mut config = Self::new(env_path("WIKIBOT_ROOT", default_root));
        if let Some(ms) = env_number("WIKIBOT_WRITE_BUDGET_MS")? {
            config.write_budget = Duration::from_millis(ms);
        }
        if let Some(secs) = env_number("WIKIBOT_STALE_LOCK_SECS")? {
            config.stale_lock_after = Duration::from_secs(secs);
        }
        if let Some(bytes) = env_number("WIKIBOT_MAX_PAGE_BYTES")? {
            config.max_page_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        Ok(config)
    }
}

/// A commit id, as handed out by reads and writes and accepted back as a write's base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Revision(Oid);

impl Revision {
    /// Parses a full 40-digit hexadecimal commit id.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let valid = raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit());
        let invalid = || {
            let shown: String = raw.chars().take(60).collect();
            StoreError::InvalidInput(format!(
                "revision {shown:?} is not a commit id (40 hexadecimal digits)"
            ))
        };
        if !valid {
            return Err(invalid());
        }
        Oid::from_str(raw).map(Self).map_err(|_| invalid())
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Who a commit is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    name: String,
    email: String,
}

impl Author {
    const MAX_BYTES: usize = 256;

    pub fn new(name: &str, email: &str) -> Result<Self, StoreError> {
        Ok(Self {
            name: Self::field("name", name)?,
            email: Self::field("email", email)?,
        })
    }

    fn field(what: &str, raw: &str) -> Result<String, StoreError> {
        let value = raw.trim();
        let problem = if value.is_empty() {
            Some("is empty")
        } else if value.len() > Self::MAX_BYTES {
            Some("is longer than 256 bytes")
        } else if value.contains(['<', '>']) || value.chars().any(char::is_control) {
            Some("contains '<', '>' or a control character")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(StoreError::InvalidInput(format!("author {what} {problem}"))),
            None => Ok(value.to_owned()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> &str {
        &self.email
    }
}

/// What a write expects of the page before it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Create or overwrite, whatever is there.
    Anything,
    /// Create only: the page must not exist.
    Absent,
    /// The page must be as it was at this revision (absent then means absent now).
    Unchanged(Revision),
}

/// One change to one page.
#[derive(Debug, Clone)]
pub struct WriteRequest<'a> {
    pub page: &'a PagePath,
    pub content: &'a str,
    pub author: &'a Author,
    /// Commit message; empty means "Update <page>".
    pub message: &'a str,
    pub time: SystemTime,
    pub expect: Expect,
}

/// Result of a write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteOutcome {
    /// The commit that now holds the page.
    pub revision: Revision,
    /// False when the page already had this content (no commit was made).
    pub changed: bool,
    /// Attempts made: more than one means the write raced other writers and re-applied.
    pub attempts: u32,
}

/// A page's content at a revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageVersion {
    pub page: PagePath,
    pub content: String,
    pub revision: Revision,
}

/// One commit, as history reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommitInfo {
    pub id: Revision,
    pub author: String,
    pub email: String,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    /// The same instant in RFC 3339, UTC.
    pub time: String,
    pub message: String,
}

/// The root directory of wikis, and the repositories this process has open.
pub struct Store {
    config: Arc<StoreConfig>,
    open: Mutex<HashMap<WikiName, Arc<Wiki>>>,
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        configure_libgit2();
        Self {
            config: Arc::new(config),
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Path of a wiki's bare repository.
    pub fn repository_path(&self, name: &WikiName) -> PathBuf {
        self.config.root.join(name.repository_dir_name())
    }

    /// Creates the wiki's repository unless it exists. Returns the wiki and whether this
    /// call created it. Safe to call concurrently from several processes.
    pub fn init(&self, name: &WikiName) -> Result<(Arc<Wiki>, bool), StoreError> {
        let _span = tracing::info_span!("git.init", wiki = %name).entered();
        if let Some(wiki) = self.cached(name) {
            return Ok((wiki, false));
        }
        let path = self.repository_path(name);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            if let Some(repo) = open_repository(&path)? {
                return Ok((self.remember(name, path, repo), false));
            }
            match init_repository(&path) {
                Ok(repo) => return Ok((self.remember(name, path, repo), true)),
                // Another process is initialising the same wiki: wait for it.
                Err(e) if is_contention(&e) && started.elapsed() < self.config.write_budget => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens an existing wiki (kept open for later calls).
    pub fn open(&self, name: &WikiName) -> Result<Arc<Wiki>, StoreError> {
        if let Some(wiki) = self.cached(name) {
            return Ok(wiki);
        }
        let _span = tracing::info_span!("git.open", wiki = %name).entered();
        let path = self.repository_path(name);
        match open_repository(&path)? {
            Some(repo) => Ok(self.remember(name, path, repo)),
            None => Err(StoreError::WikiNotFound(name.clone())),
        }
    }

    fn cached(&self, name: &WikiName) -> Option<Arc<Wiki>> {
        lock_ignoring_poison(&self.open).get(name).cloned()
    }

    fn remember(&self, name: &WikiName, path: PathBuf, repo: Repository) -> Arc<Wiki> {
        let mut open = lock_ignoring_poison(&self.open);
        let wiki = open.entry(name.clone()).or_insert_with(|| {
            Arc::new(Wiki {
                name: name.clone(),
                path,
                repo: Mutex::new(repo),
                config: Arc::clone(&self.config),
            })
        });
        Arc::clone(wiki)
    }
}

/// One open wiki. Safe to share between threads; operations on one wiki are serialised
/// within a process (git2's `Repository` is not `Sync`), and across processes by git's locks.
pub struct Wiki {
    name: WikiName,
    path: PathBuf,
    repo: Mutex<Repository>,
    config: Arc<StoreConfig>,
}

impl Wiki {
    pub fn name(&self) -> &WikiName {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The page at the current tip of `main`.
    pub fn read(&self, page: &PagePath) -> Result<PageVersion, StoreError> {
        let _span = tracing::info_span!("git.read", wiki = %self.name, page = %page).entered();
        retry_stale_handle(|| {
            let repo = self.repo();
            let not_found = || StoreError::PageNotFound(page.clone());
            let tip = tip(&repo)?.ok_or_else(not_found)?;
            let blob_id = page_blob(&repo, tip, page)?.ok_or_else(not_found)?;
            let blob = repo.find_blob(blob_id)?;
            let content = std::str::from_utf8(blob.content())
                .map_err(|_| StoreError::NotText(page.clone()))?;
            Ok(PageVersion {
                page: page.clone(),
                content: content.to_owned(),
                revision: Revision(tip),
            })
        })
    }

    /// Commits one page change, re-applying it onto newer tips until it lands, conflicts,
    /// or the write budget runs out.
    pub fn write(&self, request: &WriteRequest<'_>) -> Result<WriteOutcome, StoreError> {
        let page = request.page;
        let _span = tracing::info_span!("git.commit", wiki = %self.name, page = %page).entered();
        if request.content.len() > self.config.max_page_bytes {
            return Err(StoreError::InvalidInput(format!(
                "page content is {} bytes; the limit is {}",
                request.content.len(),
                self.config.max_page_bytes
            )));
        }
        let message = commit_message(request)?;
        let seconds = request
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let when = git2::Time::new(seconds, 0);
        let signature = Signature::new(request.author.name(), request.author.email(), &when)?;
        let tree_path = page.tree_path();

        let started = Instant::now();
        let blob = retry_stale_handle(|| Ok(self.repo().blob(request.content.as_bytes())?))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let step = self.try_commit(request, &tree_path, blob, &signature, &message);
            let retry = match step {
                Ok(CommitStep::Done(outcome)) => {
                    return Ok(WriteOutcome {
                        attempts,
                        ..outcome
                    });
                }
                Ok(CommitStep::LostRace) => Retry::Backoff,
                Ok(CommitStep::Locked) => match self.clear_stale_lock()? {
                    LockCheck::Cleared => Retry::Now,
                    LockCheck::Held => Retry::Backoff,
                },
                Err(StoreError::Git(e)) if is_stale_handle(&e) => Retry::Now,
                Err(e) => return Err(e),
            };
            if started.elapsed() >= self.config.write_budget {
                return Err(StoreError::Busy {
                    waited: started.elapsed(),
                });
            }
            if retry == Retry::Backoff {
                let remaining = self.config.write_budget.saturating_sub(started.elapsed());
                std::thread::sleep(backoff(attempts).min(remaining));
            }
        }
    }

    fn try_commit(
        &self,
        request: &WriteRequest<'_>,
        tree_path: &str,
        blob: Oid,
        signature: &Signature<'_>,
        message: &str,
    ) -> Result<CommitStep, StoreError> {
        let repo = self.repo();
        let tip = tip(&repo)?;
        let current = match tip {
            Some(tip) => page_blob(&repo, tip, request.page)?,
            None => None,
        };
        check_expectation(&repo, request, tip, current)?;
        if let (Some(tip), Some(current)) = (tip, current)
            && current == blob
        {
            return Ok(CommitStep::Done(WriteOutcome {
                revision: Revision(tip),
                changed: false,
                attempts: 0,
            }));
        }

        let parent = tip.map(|id| repo.find_commit(id)).transpose()?;
        let base_tree = match &parent {
            Some(commit) => commit.tree()?,
            // libgit2 knows the empty tree without it being stored: nothing to write.
            None => repo.find_tree(Oid::from_str(EMPTY_TREE)?)?,
        };
        let tree_id = git2::build::TreeUpdateBuilder::new()
            .upsert(tree_path, blob, git2::FileMode::Blob)
            .create_updated(&repo, &base_tree)?;
        let tree = repo.find_tree(tree_id)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let commit = repo.commit(None, signature, signature, message, &tree, &parents)?;

        let moved = match tip {
            Some(old) => repo.reference_matching(MAIN_REF, commit, true, old, message),
            None => repo.reference(MAIN_REF, commit, false, message),
        };
        match moved {
            Ok(_) => Ok(CommitStep::Done(WriteOutcome {
                revision: Revision(commit),
                changed: true,
                attempts: 0,
            })),
            Err(e) if e.code() == ErrorCode::Locked => Ok(CommitStep::Locked),
            Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists) => {
                Ok(CommitStep::LostRace)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn clear_stale_lock(&self) -> Result<LockCheck, StoreError> {
        let lock = self.path.join(format!("{MAIN_REF}.lock"));
        lock::clear_if_stale(
            &lock,
            &self.path.join(LOCK_BREAKER_FILE),
            self.config.stale_lock_after,
        )
        .map_err(|e| StoreError::io(format!("checking {}", lock.display()), e))
    }

    /// Newest-first commits of the whole wiki, or only those that changed `page`.
    pub fn history(
        &self,
        page: Option<&PagePath>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, StoreError> {
        let _span = tracing::info_span!("git.history", wiki = %self.name, limit).entered();
        retry_stale_handle(|| {
            let repo = self.repo();
            let Some(tip) = tip(&repo)? else {
                return Ok(Vec::new());
            };
            let mut walk = repo.revwalk()?;
            walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
            walk.push(tip)?;
            let mut commits = Vec::new();
            for id in walk {
                if commits.len() >= limit {
                    break;
                }
                let commit = repo.find_commit(id?)?;
                if let Some(page) = page
                    && !touches(&repo, &commit, page)?
                {
                    continue;
                }
                commits.push(commit_info(&commit));
            }
            Ok(commits)
        })
    }

    /// Pages at the tip whose path starts with `prefix` (plain string prefix), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<PagePath>, StoreError> {
        let _span = tracing::info_span!("git.list", wiki = %self.name).entered();
        retry_stale_handle(|| {
            let repo = self.repo();
            let Some(tip) = tip(&repo)? else {
                return Ok(Vec::new());
            };
            let tree = repo.find_commit(tip)?.tree()?;
            let mut pages = Vec::new();
            tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                let Ok(name) = entry.name() else {
                    return git2::TreeWalkResult::Skip;
                };
                let full = format!("{dir}{name}");
                match entry.kind() {
                    Some(ObjectType::Tree) => {
                        let as_dir = format!("{full}/");
                        if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                            git2::TreeWalkResult::Ok
                        } else {
                            git2::TreeWalkResult::Skip
                        }
                    }
                    Some(ObjectType::Blob) => {
                        if let Some(page) = PagePath::from_tree_path(&full)
                            && page.as_str().starts_with(prefix)
                        {
                            pages.push(page);
                        }
                        git2::TreeWalkResult::Ok
                    }
                    _ => git2::TreeWalkResult::Ok,
                }
            })?;
            pages.sort();
            Ok(pages)
        })
    }

    fn repo(&self) -> MutexGuard<'_, Repository> {
        lock_ignoring_poison(&self.repo)
    }
}

enum CommitStep {
    Done(WriteOutcome),
    LostRace,
    Locked,
}

#[derive(PartialEq, Eq)]
enum Retry {
    Now,
    Backoff,
}

fn check_expectation(
    repo: &Repository,
    request: &WriteRequest<'_>,
    tip: Option<Oid>,
    current: Option<Oid>,
) -> Result<(), StoreError> {
    let page = request.page;
    match request.expect {
        Expect::Anything => Ok(()),
        Expect::Absent => match (tip, current) {
            (Some(tip), Some(_)) => Err(StoreError::AlreadyExists {
                page: page.clone(),
                current: Revision(tip),
            }),
            _ => Ok(()),
        },
        Expect::Unchanged(base) => {
            let Some(tip) = tip else {
                return Err(StoreError::RevisionNotFound(base.to_string()));
            };
            if base.0 == tip {
                return Ok(());
            }
            let then = match page_blob(repo, base.0, page) {
                Err(StoreError::Git(e)) if e.code() == ErrorCode::NotFound => {
                    return Err(StoreError::RevisionNotFound(base.to_string()));
                }
                other => other?,
            };
            if then == current {
                Ok(())
            } else {
                Err(StoreError::Conflict {
                    page: page.clone(),
                    base,
                    current: Revision(tip),
                })
            }
        }
    }
}

fn commit_message(request: &WriteRequest<'_>) -> Result<String, StoreError> {
    const MAX_MESSAGE_BYTES: usize = 8 * 1024;
    let message = request.message.trim();
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "commit message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            message.len()
        )));
    }
    if message.contains('\0') {
        return Err(StoreError::InvalidInput(
            "commit message contains a NUL character".into(),
        ));
    }
    Ok(if message.is_empty() {
        format!("Update {}", request.page)
    } else {
        message.to_owned()
    })
}

/// The commit `main` points at, if the wiki has any.
fn tip(repo: &Repository) -> Result<Option<Oid>, git2::Error> {
    match repo.refname_to_id(MAIN_REF) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The page's blob in a commit's tree, if the page exists there.
fn page_blob(repo: &Repository, commit: Oid, page: &PagePath) -> Result<Option<Oid>, StoreError> {
    let tree = repo.find_commit(commit)?.tree()?;
    blob_at(&tree, page)
}

fn blob_at(tree: &git2::Tree<'_>, page: &PagePath) -> Result<Option<Oid>, StoreError> {
    match tree.get_path(Path::new(&page.tree_path())) {
        Ok(entry) if entry.kind() == Some(ObjectType::Blob) => Ok(Some(entry.id())),
        Ok(_) => Ok(None),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `commit` changed `page` relative to its first parent.
fn touches(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    page: &PagePath,
) -> Result<bool, StoreError> {
    let now = blob_at(&commit.tree()?, page)?;
    let before = match commit.parent_ids().next() {
        Some(parent) => blob_at(&repo.find_commit(parent)?.tree()?, page)?,
        None => None,
    };
    Ok(now != before)
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let author = commit.author();
    let timestamp = author.when().seconds();
    CommitInfo {
        id: Revision(commit.id()),
        author: String::from_utf8_lossy(author.name_bytes()).into_owned(),
        email: String::from_utf8_lossy(author.email_bytes()).into_owned(),
        timestamp,
        time: rfc3339(timestamp),
        message: String::from_utf8_lossy(commit.message_bytes())
            .trim_end()
            .to_owned(),
    }
}

/// RFC 3339 in UTC for times git can hold; `@<seconds>` for the rest (before 1970).
pub fn rfc3339(seconds: i64) -> String {
    match u64::try_from(seconds) {
        Ok(secs) if secs < 253_402_300_800 => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        _ => format!("@{seconds}"),
    }
}

fn open_repository(path: &Path) -> Result<Option<Repository>, StoreError> {
    // One stat at open time (not per operation): a missing HEAD means no repository yet,
    // or a half-initialised one that init repairs.
    match std::fs::symlink_metadata(path.join("HEAD")) {
        Ok(_) => Ok(Some(Repository::open_bare(path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(format!("opening {}", path.display()), e)),
    }
}

fn init_repository(path: &Path) -> Result<Repository, git2::Error> {
    let mut options = RepositoryInitOptions::new();
    options
        .bare(true)
        .mkpath(true)
        .initial_head("main")
        .external_template(false);
    Repository::init_opts(path, &options)
}

fn is_contention(e: &git2::Error) -> bool {
    matches!(e.code(), ErrorCode::Locked | ErrorCode::Exists)
}

/// NFS answers ESTALE when another client replaced a file we had looked up.
fn is_stale_handle(e: &git2::Error) -> bool {
    e.class() == git2::ErrorClass::Os && e.message().contains("Stale file handle")
}

fn retry_stale_handle<T>(mut op: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match op() {
        Err(StoreError::Git(e)) if is_stale_handle(&e) => op(),
        other => other,
    }
}

/// Full-jitter exponential backoff: up to 2 ms, 4 ms, … capped at 128 ms.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 2u64 << attempt.clamp(1, 7).saturating_sub(1);
    Duration::from_millis(fastrand::u64(1..=cap_ms))
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a Repository or the map half-updated in a way that
    // matters: git's own files are the state, and they are updated atomically.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Process-wide libgit2 settings, applied once before the first repository is opened.
///
/// - owner validation off: EFS access points map every client to one POSIX user, which need
///   not be the process's uid, and libgit2 would then refuse the repository;
/// - no system/global/XDG config: a developer's `~/.gitconfig` must not change behaviour;
/// - strict object creation and hash verification off: we write every object ourselves, and
///   each check is extra object lookups (file operations) per write and read;
/// - objects cached across warm invocations, pages included (libgit2 caches no blobs by
///   default), within a bound that suits a 512 MB Lambda.
fn configure_libgit2() {
    static CONFIGURED: OnceLock<()> = OnceLock::new();
    CONFIGURED.get_or_init(|| {
        git2::opts::strict_object_creation(false);
        git2::opts::strict_hash_verification(false);
        git2::opts::enable_caching(true);
        // SAFETY: these set libgit2 globals; `OnceLock` runs this once, before this process
        // opens any repository, so no other thread is using libgit2 concurrently.
        unsafe {
            for level in [
                git2::ConfigLevel::System,
                git2::ConfigLevel::Global,
                git2::ConfigLevel::XDG,
                git2::ConfigLevel::ProgramData,
            ] {
                if let Err(e) = git2::opts::set_search_path(level, "") {
                    tracing::warn!(error = %e, "could not clear a git config search path");
                }
            }
            let settings = [
                git2::opts::set_verify_owner_validation(false),
                git2::opts::set_cache_object_limit(ObjectType::Blob, 1024 * 1024),
                git2::opts::set_cache_object_limit(ObjectType::Tree, 256 * 1024),
                git2::opts::set_cache_object_limit(ObjectType::Commit, 64 * 1024),
                git2::opts::set_cache_max_size(64 * 1024 * 1024),
            ];
            for result in settings {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not apply a libgit2 setting");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests;

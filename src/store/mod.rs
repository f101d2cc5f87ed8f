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
mod fs;
mod lock;
mod objects;
mod path;
mod refs;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ErrorCode, ObjectType, Oid, Repository, RepositoryInitOptions};

pub use error::{ErrorKind, StoreError};
pub use path::{
    MAX_COMPONENT_BYTES, MAX_PAGE_PATH_BYTES, MAX_WIKI_NAME_BYTES, PAGE_FILE_SUFFIX, PagePath,
    PagePathError, WikiName, WikiNameError,
};

use lock::LockCheck;
use objects::{Builder, NewObject, Objects, Scratch};
use refs::Swap;

/// The branch every wiki lives on.
pub const MAIN_REF: &str = "refs/heads/main";
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
                return Ok((self.remember(name, path, repo)?, false));
            }
            match init_repository(&path) {
                Ok(repo) => return Ok((self.remember(name, path, repo)?, true)),
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
            Some(repo) => self.remember(name, path, repo),
            None => Err(StoreError::WikiNotFound(name.clone())),
        }
    }

    fn cached(&self, name: &WikiName) -> Option<Arc<Wiki>> {
        lock_ignoring_poison(&self.open).get(name).cloned()
    }

    fn remember(
        &self,
        name: &WikiName,
        path: PathBuf,
        disk: Repository,
    ) -> Result<Arc<Wiki>, StoreError> {
        let mut open = lock_ignoring_poison(&self.open);
        if let Some(wiki) = open.get(name) {
            return Ok(Arc::clone(wiki));
        }
        let wiki = Arc::new(Wiki {
            name: name.clone(),
            path,
            repos: Mutex::new(Repositories {
                disk,
                scratch: Scratch::new()?,
            }),
            config: Arc::clone(&self.config),
        });
        open.insert(name.clone(), Arc::clone(&wiki));
        Ok(wiki)
    }
}

/// One open wiki. Safe to share between threads; operations on one wiki are serialised
/// within a process (git2's `Repository` is not `Sync`), and across processes by git's locks.
pub struct Wiki {
    name: WikiName,
    path: PathBuf,
    repos: Mutex<Repositories>,
    config: Arc<StoreConfig>,
}

/// The repository on disk, and the scratch database of objects this process wrote.
struct Repositories {
    disk: Repository,
    scratch: Scratch,
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
        self.read_at(page, None)
    }

    /// The page as of `revision` (a commit of this wiki), or at the tip for `None`.
    pub fn read_at(
        &self,
        page: &PagePath,
        revision: Option<Revision>,
    ) -> Result<PageVersion, StoreError> {
        let _span = tracing::info_span!("git.read", wiki = %self.name, page = %page).entered();
        retry_stale_handle(|| {
            let repos = self.repos();
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let not_found = || StoreError::PageNotFound(page.clone());
            let commit = match revision {
                Some(revision) => revision.0,
                None => self.tip()?.ok_or_else(not_found)?,
            };
            let blob_id = match page_blob(&objects, commit, page) {
                Err(StoreError::Git(e)) if e.code() == ErrorCode::NotFound => {
                    return Err(StoreError::RevisionNotFound(commit.to_string()));
                }
                other => other?.ok_or_else(not_found)?,
            };
            let blob = objects.blob(blob_id)?;
            let content = std::str::from_utf8(blob.content())
                .map_err(|_| StoreError::NotText(page.clone()))?;
            Ok(PageVersion {
                page: page.clone(),
                content: content.to_owned(),
                revision: Revision(commit),
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
        let change = Change {
            request,
            message: &message,
            seconds,
            blob_on_disk: false,
        };

        let started = Instant::now();
        let mut change = change;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let retry = match self.try_commit(&mut change) {
                Ok(Attempt::Done(outcome)) => {
                    return Ok(WriteOutcome {
                        attempts,
                        ..outcome
                    });
                }
                Ok(Attempt::LostRace) => Retry::Backoff,
                Ok(Attempt::Locked) => match self.clear_stale_lock()? {
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

    /// One attempt: read the tip, check the expectation, build the new objects in scratch,
    /// persist them, and swap the ref.
    fn try_commit(&self, change: &mut Change<'_, '_>) -> Result<Attempt, StoreError> {
        let request = change.request;
        let mut repos = self.repos();
        let Repositories { disk, scratch } = &mut *repos;
        scratch.bound_memory()?;
        let tip = self.tip()?;
        let (current, root) = {
            let objects = Objects::new(disk, scratch);
            let current = match tip {
                Some(tip) => page_blob(&objects, tip, request.page)?,
                None => None,
            };
            check_expectation(&objects, request, tip, current)?;
            let root = tip
                .map(|tip| objects.commit(tip).map(|c| c.tree_id()))
                .transpose()?;
            (current, root)
        };

        let mut builder = Builder::new(scratch);
        let blob = builder.blob(request.content.as_bytes())?;
        if let (Some(tip), Some(current)) = (tip, current)
            && current == blob.id
        {
            return Ok(Attempt::Done(WriteOutcome {
                revision: Revision(tip),
                changed: false,
                attempts: 0,
            }));
        }
        let tree_path = request.page.tree_path();
        let mut components: Vec<&str> = tree_path.split('/').collect();
        let file = components.pop().unwrap_or_default();
        let trees = builder.trees_with_file(disk, root, &components, file, blob.id)?;
        let root_tree = trees
            .first()
            .map(|t| t.id)
            .ok_or_else(|| StoreError::Git(git2::Error::from_str("no tree was built")))?;
        let commit = builder.commit(
            root_tree,
            tip,
            request.author,
            change.seconds,
            change.message,
        )?;

        let objects_dir = self.path.join("objects");
        let persist = |object: &NewObject| {
            objects::persist(&objects_dir, object)
                .map_err(|e| StoreError::io(format!("writing object {}", object.id), e))
        };
        if !change.blob_on_disk {
            persist(&blob)?;
            change.blob_on_disk = true;
        }
        trees.iter().try_for_each(persist)?;
        persist(&commit)?;

        let swap = refs::compare_and_swap(&self.path, MAIN_REF, tip, commit.id)
            .map_err(|e| StoreError::io(format!("updating {MAIN_REF}"), e))?;
        Ok(match swap {
            Swap::Done => Attempt::Done(WriteOutcome {
                revision: Revision(commit.id),
                changed: true,
                attempts: 0,
            }),
            Swap::Locked => Attempt::Locked,
            Swap::Moved => Attempt::LostRace,
        })
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

    /// Newest-first commits of the whole wiki, or only those that changed `page`. Follows
    /// first parents, like `git log --first-parent` (wiki history is linear).
    pub fn history(
        &self,
        page: Option<&PagePath>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, StoreError> {
        let _span = tracing::info_span!("git.history", wiki = %self.name, limit).entered();
        retry_stale_handle(|| {
            let repos = self.repos();
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let mut next = self.tip()?;
            let mut commits = Vec::new();
            while let Some(id) = next {
                if commits.len() >= limit {
                    break;
                }
                let commit = objects.commit(id)?;
                next = commit.parent_ids().next();
                let include = match page {
                    Some(page) => {
                        page_blob_in(&objects, commit.tree_id(), page)?
                            != match next {
                                Some(parent) => page_blob(&objects, parent, page)?,
                                None => None,
                            }
                    }
                    None => true,
                };
                if include {
                    commits.push(commit_info(&commit));
                }
            }
            Ok(commits)
        })
    }

    /// Pages at the tip whose path starts with `prefix` (plain string prefix), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<PagePath>, StoreError> {
        let _span = tracing::info_span!("git.list", wiki = %self.name).entered();
        retry_stale_handle(|| {
            let repos = self.repos();
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let Some(tip) = self.tip()? else {
                return Ok(Vec::new());
            };
            let mut pages = Vec::new();
            let mut pending = vec![(String::new(), objects.commit(tip)?.tree_id())];
            while let Some((dir, tree_id)) = pending.pop() {
                for entry in objects.tree(tree_id)?.iter() {
                    let Ok(name) = entry.name() else { continue };
                    let full = format!("{dir}{name}");
                    match entry.kind() {
                        Some(ObjectType::Tree) => {
                            let as_dir = format!("{full}/");
                            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                                pending.push((as_dir, entry.id()));
                            }
                        }
                        Some(ObjectType::Blob) => {
                            if let Some(page) = PagePath::from_tree_path(&full)
                                && page.as_str().starts_with(prefix)
                            {
                                pages.push(page);
                            }
                        }
                        _ => {}
                    }
                }
            }
            pages.sort();
            Ok(pages)
        })
    }

    /// The commit `main` points at, if the wiki has any.
    fn tip(&self) -> Result<Option<Oid>, StoreError> {
        refs::read(&self.path, MAIN_REF)
            .map_err(|e| StoreError::io(format!("reading {MAIN_REF}"), e))
    }

    fn repos(&self) -> MutexGuard<'_, Repositories> {
        lock_ignoring_poison(&self.repos)
    }
}

/// A write in progress, carried across attempts.
struct Change<'r, 'a> {
    request: &'r WriteRequest<'a>,
    message: &'r str,
    seconds: i64,
    /// The blob is content-addressed: once persisted, later attempts reuse it.
    blob_on_disk: bool,
}

enum Attempt {
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
    objects: &Objects<'_>,
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
            let then = match page_blob(objects, base.0, page) {
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

/// The page's blob in a commit's tree, if the page exists there.
fn page_blob(
    objects: &Objects<'_>,
    commit: Oid,
    page: &PagePath,
) -> Result<Option<Oid>, StoreError> {
    page_blob_in(objects, objects.commit(commit)?.tree_id(), page)
}

fn page_blob_in(
    objects: &Objects<'_>,
    tree: Oid,
    page: &PagePath,
) -> Result<Option<Oid>, StoreError> {
    let tree_path = page.tree_path();
    let components: Vec<&str> = tree_path.split('/').collect();
    Ok(match objects.entry(tree, &components)? {
        Some((id, Some(ObjectType::Blob))) => Some(id),
        _ => None,
    })
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

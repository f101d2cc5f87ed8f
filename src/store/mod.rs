//! The page store: one bare git repository per wiki under a root directory (EFS on Lambda,
//! any local directory elsewhere), read and written through libgit2.
//!
//! Every write is a commit on the branch `HEAD` names (`main` for wikis the store creates),
//! made by compare-and-swap of the ref under a writer mutex that a dead writer cannot leave
//! behind: a writer that loses the race re-applies its change onto the new tip and tries
//! again, so no write is ever lost, writes to different pages never conflict, and an answer
//! is always the truth about whether the commit landed (`docs/decisions/0003-ref-updates.md`). A write may name the
//! revision it was based on; if the page changed since, it gets a conflict carrying the
//! current revision instead of overwriting.
//!
//! On NFS every file-system metadata operation is a network round trip, so repositories are
//! kept open for the life of the process and libgit2 is told to skip checks that cost file
//! operations and buy nothing here (see [`configure_libgit2`]).
//!
//! This module must not know about Lambda, JSON events or MCP: it takes validated names and
//! returns typed results and [`StoreError`]s.

mod changes;
mod commit;
mod error;
pub mod frontmatter;
mod fs;
mod history;
pub mod links;
mod lock;
mod maintain;
mod objects;
mod open;
mod operations;
mod page_index;
mod path;
mod queries;
mod refs;
pub mod search;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ErrorCode, ObjectType, Oid, Repository};

pub use error::{ErrorKind, Holder, StoreError};
pub use history::HistoryCursor;
pub use maintain::{MaintainOptions, MaintenanceReport};
pub use operations::{Change, PageEdit, RenameOutcome};
pub use path::{
    MAX_COMPONENT_BYTES, MAX_PAGE_PATH_BYTES, MAX_WIKI_NAME_BYTES, PAGE_FILE_SUFFIX, PagePath,
    PagePathError, WikiName, WikiNameError,
};
pub use queries::{
    LINES_PER_HIT, LinkTarget, ListRequest, ListedPage, Listing, Note, Orphans, PageLinks,
    SearchHit, SearchRequest, SearchResults,
};

use changes::ChangeIndex;
use commit::{CommitRequest, FileChange};
use lock::FileMutex;
use objects::{Entry, Lookup, Objects, Scratch};
use page_index::PageIndex;
use refs::{RefMemo, Reflog};

/// The branch a new wiki is created on. Existing repositories are served on the branch their
/// `HEAD` names (`git init --bare` makes that `master`).
pub const DEFAULT_BRANCH: &str = "main";
/// The writer mutex's file under `<git dir>/wikibot/`.
const WRITER_MUTEX: &str = "writer-mutex";
/// The maintenance mutex's file under `<git dir>/wikibot/`.
const MAINTENANCE_MUTEX: &str = "maintenance-mutex";
/// By default a process reopens a repository it has held this long, so that it lets go of
/// packs that maintenance retired (deleted only after a grace period several times longer).
pub const REOPEN_AFTER: Duration = Duration::from_secs(5 * 60);
/// One write in this many checks whether the repository needs maintenance.
const MAINTENANCE_CHECK_ONE_IN: u64 = 16;

/// Where the store lives and how patient its writers are.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding one `<wiki>.git` bare repository per wiki.
    pub root: PathBuf,
    /// How long a write may keep retrying against other writers before answering "busy".
    pub write_budget: Duration,
    /// A ref lock file of another program (a person's git) older than this is taken to be
    /// abandoned and removed. wikibot's own writers never need it: a dead writer's lock is
    /// recognised and removed at once (see `refs.rs`).
    pub stale_lock_after: Duration,
    /// Largest page, in bytes.
    pub max_page_bytes: usize,
    /// How long a history call may walk before it returns what it found and a cursor.
    pub history_budget: Duration,
    /// Maintenance runs after a write once about this many loose objects have piled up
    /// (estimated as git does, from a sample of the fan-out directories); 0: never after a
    /// write (the scheduled run and `wikibot maintain` still do it).
    pub maintain_after_loose_objects: usize,
    /// How maintenance behaves (its grace period).
    pub maintenance: MaintainOptions,
    /// A process reopens a repository it has held this long, letting go of packs that
    /// maintenance retired. Keep it well below the maintenance grace period.
    pub reopen_after: Duration,
    /// Write a commit's new objects at once, from several threads, so that their round trips
    /// overlap on EFS, and list the object directory in the background now and then so that
    /// its fan-out directories are known without a lookup each; off, a write's file
    /// operations are made one after another on the calling thread.
    pub parallel_object_writes: bool,
}

impl StoreConfig {
    pub const DEFAULT_WRITE_BUDGET: Duration = Duration::from_secs(10);
    /// git holds a ref lock for milliseconds; a minute means it died.
    pub const DEFAULT_STALE_LOCK_AFTER: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_PAGE_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_HISTORY_BUDGET: Duration = Duration::from_secs(3);
    /// About 120 commits: few enough that a fresh process's page history stays within a few
    /// hundred file operations (docs/decisions/0003-ref-updates.md, "History").
    pub const DEFAULT_MAINTAIN_AFTER_LOOSE_OBJECTS: usize = 512;

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            write_budget: Self::DEFAULT_WRITE_BUDGET,
            stale_lock_after: Self::DEFAULT_STALE_LOCK_AFTER,
            max_page_bytes: Self::DEFAULT_MAX_PAGE_BYTES,
            history_budget: Self::DEFAULT_HISTORY_BUDGET,
            maintain_after_loose_objects: Self::DEFAULT_MAINTAIN_AFTER_LOOSE_OBJECTS,
            maintenance: MaintainOptions::default(),
            reopen_after: REOPEN_AFTER,
            parallel_object_writes: true,
        }
    }

    /// Reads `WIKIBOT_ROOT` (else `default_root`), `WIKIBOT_WRITE_BUDGET_MS`,
    /// `WIKIBOT_STALE_LOCK_SECS`, `WIKIBOT_MAX_PAGE_BYTES`, `WIKIBOT_HISTORY_BUDGET_MS`,
    /// `WIKIBOT_MAINTAIN_AFTER_LOOSE_OBJECTS`, `WIKIBOT_MAINTENANCE_GRACE_SECS` and
    /// `WIKIBOT_REOPEN_AFTER_MS` and `WIKIBOT_PARALLEL_OBJECT_WRITES`.
    pub fn from_env(default_root: &Path) -> Result<Self, crate::config::ConfigError> {
        use crate::config::{env_bool, env_number, env_path};
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
        if let Some(ms) = env_number("WIKIBOT_HISTORY_BUDGET_MS")? {
            config.history_budget = Duration::from_millis(ms);
        }
        if let Some(objects) = env_number("WIKIBOT_MAINTAIN_AFTER_LOOSE_OBJECTS")? {
            config.maintain_after_loose_objects = usize::try_from(objects).unwrap_or(usize::MAX);
        }
        if let Some(secs) = env_number("WIKIBOT_MAINTENANCE_GRACE_SECS")? {
            config.maintenance.grace = Duration::from_secs(secs);
        }
        if let Some(ms) = env_number("WIKIBOT_REOPEN_AFTER_MS")? {
            config.reopen_after = Duration::from_millis(ms);
        }
        if let Some(parallel) = env_bool("WIKIBOT_PARALLEL_OBJECT_WRITES")? {
            config.parallel_object_writes = parallel;
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

/// A request for history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRequest<'a> {
    /// `None`: the whole wiki.
    pub page: Option<&'a PagePath>,
    pub limit: usize,
    /// Continue where an earlier call stopped.
    pub cursor: Option<&'a HistoryCursor>,
}

/// Newest-first commits, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub commits: Vec<CommitInfo>,
    /// Pass back to continue; `None` when the history is complete.
    pub next_cursor: Option<HistoryCursor>,
    /// The walk stopped at its time budget (`next_cursor` continues it).
    pub truncated: bool,
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
            if let Some(opened) = open::open(&path)? {
                return Ok((self.remember(name, path, opened)?, false));
            }
            match open::init(&path) {
                Ok(_) => {
                    let opened = open::open(&path)?.ok_or_else(|| {
                        StoreError::io(
                            format!("opening {} just after creating it", path.display()),
                            std::io::ErrorKind::NotFound.into(),
                        )
                    })?;
                    return Ok((self.remember(name, path, opened)?, true));
                }
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
        match open::open(&path)? {
            Some(opened) => self.remember(name, path, opened),
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
        opened: open::Opened,
    ) -> Result<Arc<Wiki>, StoreError> {
        let mut open = lock_ignoring_poison(&self.open);
        if let Some(wiki) = open.get(name) {
            return Ok(Arc::clone(wiki));
        }
        let wiki = Arc::new(Wiki {
            name: name.clone(),
            spares: objects::SpareFiles::default(),
            writer: FileMutex::new(&path, WRITER_MUTEX),
            maintenance: FileMutex::new(&path, MAINTENANCE_MUTEX),
            path,
            repos: Mutex::new(Repositories::new(opened)?),
            index: Mutex::new(None),
            pages: Mutex::new(None),
            objects_listed: Mutex::new(None),
            branch_memo: RefMemo::default(),
            config: Arc::clone(&self.config),
        });
        open.insert(name.clone(), Arc::clone(&wiki));
        Ok(wiki)
    }
}

/// One open wiki. Safe to share between threads; operations on one wiki are serialised
/// within a process (git2's `Repository` is not `Sync`), and writers across processes by the
/// writer mutex and git's ref lock.
pub struct Wiki {
    name: WikiName,
    path: PathBuf,
    repos: Mutex<Repositories>,
    /// Admits one wikibot writer at a time to the ref update, across processes.
    writer: FileMutex,
    /// Keeps maintenance runs apart, across processes.
    maintenance: FileMutex,
    /// The changed-paths index as last read, and the file it was read from.
    index: Mutex<Option<(Arc<ChangeIndex>, FileStamp)>>,
    /// The page index (search, links, frontmatter), kept across calls and brought to the tip
    /// before each answer. Lock order: `repos`, then `pages`.
    pages: Mutex<Option<PageIndex>>,
    /// When this process last listed `objects/` (see `commit.rs`, `list_object_directories`).
    objects_listed: Mutex<Option<Instant>>,
    /// The branch's ref file as this process last read or wrote it (`refs.rs`).
    branch_memo: RefMemo,
    /// Temporary files made ahead of the next write's objects (`objects.rs`).
    spares: objects::SpareFiles,
    config: Arc<StoreConfig>,
}

/// An estimate of the loose objects, under way or left for after the write.
enum LooseSample {
    Running(std::thread::JoinHandle<bool>),
    AfterTheWrite,
}

/// Whether `objects` holds `threshold` loose objects or more, estimated from four fan-out
/// directories (listed at once when `parallel`).
fn too_many_loose_objects(objects: &Path, threshold: usize, parallel: bool) -> bool {
    const SAMPLED: [&str; 4] = ["17", "2a", "9c", "e5"];
    let count = |dir: &str| std::fs::read_dir(objects.join(dir)).map_or(0, Iterator::count);
    let sampled: usize = fs::each_at_once(SAMPLED.to_vec(), parallel, count)
        .map_or(0, |counts| counts.into_iter().sum());
    sampled * 256 / SAMPLED.len() >= threshold
}

/// Identifies one version of a file: a replaced file has another inode or mtime.
type FileStamp = (u64, i64, i64, u64);

fn file_stamp(path: &Path) -> std::io::Result<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.mtime(), m.mtime_nsec(), m.size()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The repository on disk, what the store knows about it, and the scratch database of objects
/// this process wrote.
struct Repositories {
    disk: Repository,
    /// The branch `HEAD` named when the repository was opened (`refs/heads/main`).
    branch: String,
    reflog: Reflog,
    scratch: Scratch,
    opened: Instant,
}

impl Repositories {
    fn new(opened: open::Opened) -> Result<Self, StoreError> {
        Ok(Self {
            disk: opened.repo,
            branch: opened.branch,
            reflog: opened.reflog,
            scratch: Scratch::new()?,
            opened: Instant::now(),
        })
    }
}

impl Wiki {
    pub fn name(&self) -> &WikiName {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full name of the wiki's branch (the one `HEAD` names), such as `refs/heads/main`.
    pub fn branch(&self) -> String {
        self.repos().branch.clone()
    }

    /// The page at the current tip of the branch.
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
        self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let not_found = || StoreError::PageNotFound(page.clone());
            let commit = match revision {
                Some(revision) => revision.0,
                None => self.tip(repos)?.ok_or_else(not_found)?,
            };
            let entry = match page_entry(&objects, commit, page) {
                // The caller's revision: not an object that went missing under us.
                Err(StoreError::Git(e))
                    if e.code() == ErrorCode::NotFound && revision.is_some() =>
                {
                    return Err(StoreError::RevisionNotFound(commit.to_string()));
                }
                other => other?.ok_or_else(not_found)?,
            };
            let blob = objects.blob(entry.id)?;
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
    /// or the write budget runs out. A success is on the branch; a failure did not land.
    pub fn write(&self, request: &WriteRequest<'_>) -> Result<WriteOutcome, StoreError> {
        let page = request.page;
        let _span = tracing::info_span!("git.commit", wiki = %self.name, page = %page).entered();
        self.check_size(request.content)?;
        let message = commit_message(request.message, || format!("Update {page}"))?;
        let commit = CommitRequest {
            author: request.author,
            message: &message,
            time: request.time,
        };
        self.commit(&commit, |planner| {
            planner.check(page, request.expect, planner.slot(page)?)?;
            let change = FileChange::Put {
                page: page.clone(),
                content: request.content.to_owned(),
            };
            Ok((vec![change], ()))
        })
        .map(|(outcome, ())| outcome)
    }

    /// Newest-first commits of the whole wiki, or of one page, exactly as `git log` and
    /// `git log -- <page>.md` list them, found within the history budget. A page that never
    /// existed is `not_found`.
    pub fn history_page(&self, request: HistoryRequest<'_>) -> Result<History, StoreError> {
        let _span =
            tracing::info_span!("git.history", wiki = %self.name, limit = request.limit).entered();
        let deadline = Instant::now() + self.config.history_budget;
        let index = self.change_index()?;
        self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let start = match request.cursor {
                Some(cursor) => cursor.commits().to_vec(),
                None => self.tip(repos)?.into_iter().collect(),
            };
            let walked = history::Walk {
                objects: &objects,
                index: index.as_deref(),
                page: request.page,
                limit: request.limit,
                deadline,
            }
            .run(&start)
            .map_err(|e| match e {
                StoreError::Git(e)
                    if e.code() == ErrorCode::NotFound && request.cursor.is_some() =>
                {
                    StoreError::InvalidInput(format!(
                        "the history cursor names a commit this wiki does not have ({})",
                        e.message()
                    ))
                }
                other => other,
            })?;
            if let Some(page) = request.page
                && request.cursor.is_none()
                && walked.commits.is_empty()
                && walked.next.is_none()
            {
                return Err(StoreError::PageNotFound(page.clone()));
            }
            let commits = walked
                .commits
                .iter()
                .map(|id| objects.commit(*id).map(|c| commit_info(&c)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(History {
                commits,
                next_cursor: walked.next,
                truncated: walked.out_of_time,
            })
        })
    }

    /// The first `limit` commits of [`Wiki::history_page`], for callers that do not page.
    pub fn history(
        &self,
        page: Option<&PagePath>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, StoreError> {
        self.history_page(HistoryRequest {
            page,
            limit,
            cursor: None,
        })
        .map(|history| history.commits)
    }

    /// The changed-paths index, re-read when maintenance has replaced it (one stat).
    fn change_index(&self) -> Result<Option<Arc<ChangeIndex>>, StoreError> {
        let path = ChangeIndex::path(&self.path);
        let stamp = file_stamp(&path).map_err(|e| StoreError::io("checking the index", e))?;
        let mut cached = lock_ignoring_poison(&self.index);
        match (stamp, cached.as_ref()) {
            (None, _) => {
                *cached = None;
                Ok(None)
            }
            (Some(stamp), Some((index, seen))) if *seen == stamp => Ok(Some(Arc::clone(index))),
            (Some(stamp), _) => {
                let loaded = ChangeIndex::load(&self.path)
                    .map_err(|e| StoreError::io("reading the changed-paths index", e))?;
                *cached = loaded.map(|index| (Arc::new(index), stamp));
                Ok(cached.as_ref().map(|(index, _)| Arc::clone(index)))
            }
        }
    }

    /// Packs new objects, extends the changed-paths index and removes what is safely
    /// redundant (see `maintain.rs`). Skipped, not waited for, while another run is going.
    pub fn maintain(&self) -> Result<MaintenanceReport, StoreError> {
        let _span = tracing::info_span!("git.maintain", wiki = %self.name).entered();
        let Some(_running) = self
            .maintenance
            .try_lock()
            .map_err(|e| StoreError::io("taking the maintenance mutex", e))?
        else {
            return Ok(MaintenanceReport {
                skipped: true,
                ..MaintenanceReport::default()
            });
        };
        let mut report = {
            let repos = self.fresh_repos()?;
            let tip = self.tip(&repos)?;
            maintain::run(&self.path, &repos.disk, tip, &self.config.maintenance)?
        };
        report.page_index_saved = self.save_page_index()?;
        Ok(report)
    }

    /// For a write, now and then: starts estimating the loose objects as git's `gc --auto`
    /// does (the entries of a few fan-out directories, scaled), on a thread of its own, so the
    /// listings (round trips on EFS) overlap the write instead of following it; without
    /// parallel object writes, the estimate is left for after the write, on the calling
    /// thread. The answer, whether to maintain, is for [`Wiki::maintain_if`] once the write
    /// has landed.
    fn sample_loose_objects(&self) -> Option<LooseSample> {
        let threshold = self.config.maintain_after_loose_objects;
        if threshold == 0 || fastrand::u64(..MAINTENANCE_CHECK_ONE_IN) != 0 {
            return None;
        }
        if !self.config.parallel_object_writes {
            return Some(LooseSample::AfterTheWrite);
        }
        let objects = self.path.join("objects");
        let sampling = std::thread::Builder::new()
            .name("sample-objects".into())
            .spawn(move || too_many_loose_objects(&objects, threshold, true));
        sampling
            .inspect_err(|e| tracing::debug!(error = %e, "could not start sampling objects"))
            .ok()
            .map(LooseSample::Running)
    }

    /// Maintains if `sample` (from [`Wiki::sample_loose_objects`]) finds too many loose objects.
    fn maintain_if(&self, sample: Option<LooseSample>) {
        let too_many = match sample {
            None => false,
            Some(LooseSample::Running(sampling)) => sampling.join().unwrap_or(false),
            Some(LooseSample::AfterTheWrite) => too_many_loose_objects(
                &self.path.join("objects"),
                self.config.maintain_after_loose_objects,
                false,
            ),
        };
        if !too_many {
            return;
        }
        match self.maintain() {
            Ok(report) => tracing::info!(?report, "maintenance after a write"),
            Err(e) => tracing::warn!(error = %e, "maintenance after a write failed"),
        }
    }

    /// Pages at the tip whose path starts with `prefix` (plain string prefix), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<PagePath>, StoreError> {
        let _span = tracing::info_span!("git.list", wiki = %self.name).entered();
        self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let Some(tip) = self.tip(repos)? else {
                return Ok(Vec::new());
            };
            let mut pages = Vec::new();
            let mut pending = vec![(String::new(), objects.commit(tip)?.tree_id())];
            while let Some((dir, tree_id)) = pending.pop() {
                for entry in objects.tree(tree_id)?.iter() {
                    let Ok(name) = entry.name() else { continue };
                    let full = format!("{dir}{name}");
                    let entry = Entry {
                        id: entry.id(),
                        mode: entry.filemode(),
                    };
                    if entry.mode == i32::from(git2::FileMode::Tree) {
                        let as_dir = format!("{full}/");
                        if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                            pending.push((as_dir, entry.id));
                        }
                    } else if entry.is_file()
                        && let Some(page) = PagePath::from_tree_path(&full)
                        && page.as_str().starts_with(prefix)
                    {
                        pages.push(page);
                    }
                }
            }
            pages.sort();
            Ok(pages)
        })
    }

    /// The commit the branch points at, if the wiki has any.
    fn tip(&self, repos: &Repositories) -> Result<Option<Oid>, StoreError> {
        self.read_branch(&repos.branch)
    }

    fn read_branch(&self, branch: &str) -> Result<Option<Oid>, StoreError> {
        refs::read(&self.path, branch, &self.branch_memo)
            .map_err(|e| StoreError::io(format!("reading {branch}"), e))
    }

    fn repos(&self) -> MutexGuard<'_, Repositories> {
        lock_ignoring_poison(&self.repos)
    }

    /// The repositories, reopened first if this process has held them for
    /// [`REOPEN_AFTER`]: libgit2 never lets go of a pack it once saw, and maintenance deletes
    /// retired packs after its grace period.
    fn fresh_repos(&self) -> Result<MutexGuard<'_, Repositories>, StoreError> {
        let mut repos = self.repos();
        if repos.opened.elapsed() >= self.config.reopen_after {
            self.reopen(&mut repos)?;
        }
        Ok(repos)
    }

    fn reopen(&self, repos: &mut Repositories) -> Result<(), StoreError> {
        match open::open(&self.path)? {
            Some(opened) => *repos = Repositories::new(opened)?,
            None => return Err(StoreError::WikiNotFound(self.name.clone())),
        }
        Ok(())
    }

    /// Runs a read on the repositories; if it fails the way a vanished pack or a replaced
    /// file does (another client's maintenance or `git gc`, NFS's ESTALE), reopens the
    /// repository and tries once more.
    fn with_repos<T>(
        &self,
        mut read: impl FnMut(&Repositories) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut repos = self.fresh_repos()?;
        match read(&repos) {
            Err(StoreError::Git(e)) if may_have_vanished(&e) => {
                tracing::info!(error = %e, "reopening the repository and trying again");
                // Reopening costs file operations: at most once a second.
                if repos.opened.elapsed() >= Duration::from_secs(1) {
                    self.reopen(&mut repos)?;
                }
                read(&repos)
            }
            other => other,
        }
    }
}

/// Whether `page` (whose entry at `tip` is `current`) is as `expect` requires.
fn check_expectation(
    objects: &Objects<'_>,
    page: &PagePath,
    expect: Expect,
    tip: Option<Oid>,
    current: Option<Entry>,
) -> Result<(), StoreError> {
    let current = current.map(|e| e.id);
    match expect {
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
            let then = match page_entry(objects, base.0, page) {
                Err(StoreError::Git(e)) if e.code() == ErrorCode::NotFound => {
                    return Err(StoreError::RevisionNotFound(base.to_string()));
                }
                Err(StoreError::NotAPage { .. } | StoreError::PathTaken { .. }) => None,
                other => other?.map(|e| e.id),
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

/// A commit message: trimmed, bounded, without NUL; `default()` when empty.
fn commit_message(raw: &str, default: impl FnOnce() -> String) -> Result<String, StoreError> {
    const MAX_MESSAGE_BYTES: usize = 8 * 1024;
    let message = raw.trim();
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
        default()
    } else {
        message.to_owned()
    })
}

/// The page's file in a commit's tree, if the page exists there. A symbolic link, directory
/// or submodule where the page's file would be is an error, not a page.
fn page_entry(
    objects: &Objects<'_>,
    commit: Oid,
    page: &PagePath,
) -> Result<Option<Entry>, StoreError> {
    page_entry_in(objects, objects.commit(commit)?.tree_id(), page)
}

fn page_entry_in(
    objects: &Objects<'_>,
    tree: Oid,
    page: &PagePath,
) -> Result<Option<Entry>, StoreError> {
    match page_slot_in(objects, tree, page) {
        Err(StoreError::PathTaken { .. }) => Ok(None),
        other => other,
    }
}

/// Like [`page_entry`], but a file standing where one of the page's directories should be is
/// an error (the page cannot be written there), not an absent page.
fn page_slot(
    objects: &Objects<'_>,
    commit: Oid,
    page: &PagePath,
) -> Result<Option<Entry>, StoreError> {
    page_slot_in(objects, objects.commit(commit)?.tree_id(), page)
}

fn page_slot_in(
    objects: &Objects<'_>,
    tree: Oid,
    page: &PagePath,
) -> Result<Option<Entry>, StoreError> {
    let tree_path = page.tree_path();
    let components: Vec<&str> = tree_path.split('/').collect();
    match objects.entry(tree, &components)? {
        Lookup::Absent => Ok(None),
        Lookup::Found(entry) if entry.is_file() => Ok(Some(entry)),
        Lookup::Found(entry) => Err(StoreError::NotAPage {
            page: page.clone(),
            what: entry.describe(),
        }),
        Lookup::BlockedBy(blocker) => Err(StoreError::PathTaken {
            page: page.clone(),
            blocker,
        }),
    }
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

fn is_contention(e: &git2::Error) -> bool {
    matches!(e.code(), ErrorCode::Locked | ErrorCode::Exists)
}

/// NFS answers ESTALE when another client replaced a file we had looked up.
fn is_stale_handle(e: &git2::Error) -> bool {
    e.class() == git2::ErrorClass::Os && e.message().contains("Stale file handle")
}

/// An error a fresh look at the repository may cure: an object or pack that moved.
fn may_have_vanished(e: &git2::Error) -> bool {
    is_stale_handle(e)
        || matches!(e.class(), git2::ErrorClass::Odb | git2::ErrorClass::Os)
        || e.code() == ErrorCode::NotFound
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

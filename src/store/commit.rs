//! Commits: any set of page changes (writes and removals, one page or many) as one commit on
//! the branch, by the protocol `docs/decisions/0003-ref-updates.md` describes. An operation
//! (write, edit, delete, rename) is a *plan*: a function from the tip it will land on to the
//! file changes it makes there. Each attempt takes the writer mutex, reads the tip, runs the
//! plan against it, builds the objects in scratch, persists them and moves the branch by
//! compare-and-swap; a lost race (only a person's git can cause one) re-plans on the new tip,
//! so a change computed from a page's content (an edit, a link rewrite) is always computed
//! from the content it replaces.
//!
//! After a commit lands, the in-memory page index (`page_index.rs`) is moved to it from the
//! changes in hand, without reading anything. This module must not decide what an operation
//! changes (the plans in `mod.rs` and `operations.rs` do) and must not answer reads.

use std::collections::HashSet;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use git2::Oid;

use super::objects::{self, Builder, Entry, NewObject, Objects};
use super::page_index::PageIndex;
use super::refs::{self, Confirmed, ConfirmedLock, ReflogEntry, Swap};
use super::{
    Author, Expect, Holder, PagePath, Repositories, Revision, StoreError, Wiki, WriteOutcome,
    backoff, check_expectation, is_stale_handle, lock_ignoring_poison, page_entry, page_slot,
};

/// How long the kernel's name cache is trusted to remember the object directory's listing:
/// below the NFS client's 30 s minimum attribute-cache time for directories (`acdirmin`).
const RELIST_OBJECTS_AFTER: std::time::Duration = std::time::Duration::from_secs(25);

/// Who commits, when, and why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitRequest<'a> {
    pub author: &'a Author,
    /// Validated, non-empty.
    pub message: &'a str,
    pub time: SystemTime,
}

/// One page's change within a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileChange {
    /// The page gets this content (created or replaced; an executable file stays one).
    Put { page: PagePath, content: String },
    /// The page goes away.
    Remove { page: PagePath },
}

impl FileChange {
    pub(crate) fn page(&self) -> &PagePath {
        match self {
            Self::Put { page, .. } | Self::Remove { page } => page,
        }
    }
}

/// What a plan sees: the tip its changes will land on, and the pages there.
pub(crate) struct Planner<'a> {
    wiki: &'a Wiki,
    objects: Objects<'a>,
    tip: Option<Oid>,
}

impl Planner<'_> {
    pub(crate) fn tip(&self) -> Option<Oid> {
        self.tip
    }

    /// The page's file at the tip; a file or directory in the way of writing it is an error.
    pub(crate) fn slot(&self, page: &PagePath) -> Result<Option<Entry>, StoreError> {
        match self.tip {
            Some(tip) => page_slot(&self.objects, tip, page),
            None => Ok(None),
        }
    }

    /// `current` (the page's file at the tip), once checked to be as `expect` requires.
    pub(crate) fn check(
        &self,
        page: &PagePath,
        expect: Expect,
        current: Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        check_expectation(&self.objects, page, expect, self.tip, current)?;
        Ok(current)
    }

    /// The page's file at the tip, if the page exists there.
    pub(crate) fn entry(&self, page: &PagePath) -> Result<Option<Entry>, StoreError> {
        match self.tip {
            Some(tip) => page_entry(&self.objects, tip, page),
            None => Ok(None),
        }
    }

    /// The page's text at the tip, if the page exists there.
    pub(crate) fn content(&self, page: &PagePath) -> Result<Option<String>, StoreError> {
        let Some(entry) = self.entry(page)? else {
            return Ok(None);
        };
        let blob = self.objects.blob(entry.id)?;
        std::str::from_utf8(blob.content())
            .map(|text| Some(text.to_owned()))
            .map_err(|_| StoreError::NotText(page.clone()))
    }

    /// Runs `query` on the page index brought to the tip.
    pub(crate) fn with_index<R>(
        &self,
        query: impl FnOnce(&PageIndex) -> R,
    ) -> Result<R, StoreError> {
        self.wiki
            .with_page_index(&self.objects, self.tip, |index| query(index))
    }
}

/// How one attempt ended.
enum Attempt<T> {
    Done(WriteOutcome, T),
    LostRace,
    Blocked(Holder),
}

impl Wiki {
    /// Commits what `plan` decides against the tip, re-planning onto newer tips until it
    /// lands, fails (a conflict, a page that is not there) or the write budget runs out. A
    /// success is on the branch; a failure did not land. A plan whose changes leave every
    /// page as it was makes no commit (`changed: false`).
    pub(crate) fn commit<T>(
        &self,
        request: &CommitRequest<'_>,
        mut plan: impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError>,
    ) -> Result<(WriteOutcome, T), StoreError> {
        let seconds = request
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if self.config.parallel_object_writes {
            self.list_object_directories();
        }
        // Objects are content-addressed: once persisted, later attempts reuse them.
        let mut persisted = HashSet::new();
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let holder = match self.try_commit(request, seconds, &mut plan, &mut persisted) {
                Ok(Attempt::Done(outcome, report)) => {
                    if outcome.changed {
                        self.maintain_if_due();
                    }
                    return Ok((
                        WriteOutcome {
                            attempts,
                            ..outcome
                        },
                        report,
                    ));
                }
                Ok(Attempt::LostRace) => None,
                Ok(Attempt::Blocked(holder)) => Some(holder),
                Err(StoreError::Git(e)) if is_stale_handle(&e) => None,
                Err(e) => return Err(e),
            };
            if started.elapsed() >= self.config.write_budget {
                return Err(StoreError::Busy {
                    waited: started.elapsed(),
                    holder: holder.unwrap_or(Holder::LiveWriter),
                });
            }
            let remaining = self.config.write_budget.saturating_sub(started.elapsed());
            std::thread::sleep(backoff(attempts).min(remaining));
        }
    }

    /// One attempt, under the writer mutex: read the tip, plan against it, build the new
    /// objects in scratch, persist them, and move the branch. Holding the mutex from the
    /// tip's read on, no other wikibot writer can move the branch meanwhile: objects are built
    /// once, on the tip they land on, and only a person's git can make an attempt lose a race.
    fn try_commit<T>(
        &self,
        request: &CommitRequest<'_>,
        seconds: i64,
        plan: &mut impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError>,
        persisted: &mut HashSet<Oid>,
    ) -> Result<Attempt<T>, StoreError> {
        let Some(_writer) = self
            .writer
            .try_lock()
            .map_err(|e| StoreError::io(format!("locking {}", self.writer.path().display()), e))?
        else {
            return Ok(Attempt::Blocked(Holder::LiveWriter));
        };
        let mut repos = self.fresh_repos()?;
        let Repositories {
            disk,
            branch,
            reflog,
            scratch,
            ..
        } = &mut *repos;
        scratch.bound_memory()?;
        let tip = self.read_branch(branch)?;
        let (changes, report, current, root) = {
            let planner = Planner {
                wiki: self,
                objects: Objects::new(disk, scratch),
                tip,
            };
            let (changes, report) = plan(&planner)?;
            check_distinct(&changes)?;
            let mut current = Vec::with_capacity(changes.len());
            for change in &changes {
                current.push(match change {
                    FileChange::Put { page, content } => {
                        self.check_size(content)?;
                        planner.slot(page)?
                    }
                    FileChange::Remove { page } => planner.entry(page)?,
                });
            }
            let root = tip
                .map(|tip| planner.objects.commit(tip).map(|c| c.tree_id()))
                .transpose()?;
            (changes, report, current, root)
        };

        let mut builder = Builder::new(scratch);
        let mut blobs = Vec::new();
        let mut edits: Vec<(String, Option<Entry>)> = Vec::new();
        let mut landed: Vec<(FileChange, Option<Oid>)> = Vec::new();
        for (change, current) in changes.into_iter().zip(current) {
            match &change {
                FileChange::Put { page, content } => {
                    let blob = builder.blob(content.as_bytes())?;
                    if current.is_some_and(|c| c.id == blob.id) {
                        continue;
                    }
                    // An executable page stays executable: only the content changes.
                    let mode = current.map_or(i32::from(git2::FileMode::Blob), |e| e.mode);
                    edits.push((page.tree_path(), Some(Entry { id: blob.id, mode })));
                    landed.push((change.clone(), Some(blob.id)));
                    blobs.push(blob);
                }
                FileChange::Remove { page } => {
                    if current.is_none() {
                        continue;
                    }
                    edits.push((page.tree_path(), None));
                    landed.push((change.clone(), None));
                }
            }
        }
        if let Some(tip) = tip
            && edits.is_empty()
        {
            return Ok(Attempt::Done(
                WriteOutcome {
                    revision: Revision(tip),
                    changed: false,
                    attempts: 0,
                },
                report,
            ));
        }
        self.build_and_swap(
            request, seconds, disk, branch, reflog, builder, tip, root, &edits, blobs, landed,
            persisted, report,
        )
    }

    /// Builds the trees and the commit, persists what is new, and moves the branch.
    #[allow(clippy::too_many_arguments)]
    fn build_and_swap<T>(
        &self,
        request: &CommitRequest<'_>,
        seconds: i64,
        disk: &git2::Repository,
        branch: &str,
        reflog: &refs::Reflog,
        mut builder: Builder<'_>,
        tip: Option<Oid>,
        root: Option<Oid>,
        edits: &[(String, Option<Entry>)],
        blobs: Vec<NewObject>,
        landed: Vec<(FileChange, Option<Oid>)>,
        persisted: &mut HashSet<Oid>,
        report: T,
    ) -> Result<Attempt<T>, StoreError> {
        let paths: Vec<(Vec<&str>, Option<Entry>)> = edits
            .iter()
            .map(|(path, entry)| (path.split('/').collect(), *entry))
            .collect();
        let trees = builder.trees_with_changes(disk, root, &paths)?;
        let root_tree = trees
            .first()
            .map(|t| t.id)
            .ok_or_else(|| StoreError::Git(git2::Error::from_str("no tree was built")))?;
        let commit = builder.commit(root_tree, tip, request.author, seconds, request.message)?;

        let new_objects: Vec<&NewObject> = trees
            .iter()
            .chain([&commit])
            .chain(blobs.iter().filter(|b| !persisted.contains(&b.id)))
            .collect();
        let locked = self.persist_and_lock(branch, tip, commit.id, &new_objects)?;
        persisted.extend(blobs.iter().map(|b| b.id));
        let swap = match locked {
            Locked::Held(held) => {
                let who = format!("{} <{}>", request.author.name(), request.author.email());
                let subject = request.message.lines().next().unwrap_or_default();
                let log_message = match tip {
                    Some(_) => format!("commit: {subject}"),
                    None => format!("commit (initial): {subject}"),
                };
                let entry = ReflogEntry {
                    who: &who,
                    seconds,
                    message: &log_message,
                };
                held.commit(
                    &self.path,
                    branch,
                    tip,
                    commit.id,
                    (reflog, &entry),
                    &self.branch_memo,
                )
                .map_err(|e| StoreError::io(format!("updating {branch}"), e))?
            }
            Locked::Moved(now) => Swap::Moved(now),
            Locked::Foreign { age } => {
                return Ok(Attempt::Blocked(Holder::ForeignLock {
                    lock: format!("{branch}.lock"),
                    age,
                    stale_after: self.config.stale_lock_after,
                }));
            }
        };
        let on_branch = match swap {
            Swap::Done => true,
            // Someone renamed our lock file into place early, or removed it: the branch says
            // whether our commit is on it.
            Swap::Moved(Some(now)) | Swap::Vanished(Some(now)) => {
                now == commit.id || disk.graph_descendant_of(now, commit.id)?
            }
            Swap::Moved(None) | Swap::Vanished(None) => false,
        };
        if !on_branch {
            return Ok(Attempt::LostRace);
        }
        self.index_landed(tip, commit.id, root_tree, &landed);
        Ok(Attempt::Done(
            WriteOutcome {
                revision: Revision(commit.id),
                changed: true,
                attempts: 0,
            },
            report,
        ))
    }

    /// Moves the in-memory page index from `parent` to the commit that just landed on it,
    /// from the changes in hand. An index at another commit is left alone: the next query
    /// brings it to the tip from git.
    fn index_landed(
        &self,
        parent: Option<Oid>,
        commit: Oid,
        tree: Oid,
        landed: &[(FileChange, Option<Oid>)],
    ) {
        let mut slot = lock_ignoring_poison(&self.pages);
        if let Some(index) = slot.as_mut()
            && index.describes(parent)
        {
            for (change, blob) in landed {
                match (change, blob) {
                    (FileChange::Put { page, content }, Some(blob)) => {
                        index.set_page(page.clone(), *blob, Some(content));
                    }
                    (change, _) => index.remove_page(change.page()),
                }
            }
            index.moved_to(commit, tree);
        }
    }

    /// Lists `objects/` in a background thread if this process has not done so in the last
    /// [`RELIST_OBJECTS_AFTER`]. Each new object goes into a fan-out directory (`objects/3f/`)
    /// that the kernel must look up, one round trip on EFS, unless its name cache knows it; a
    /// listing fills that cache for all of them at once (the NFS client's READDIR returns
    /// each entry's attributes, and the kernel keeps them as looked-up names), while this
    /// write waits for the writer mutex and reads the tip. It only reads, and nothing waits
    /// for it: a listing cut short by a freeze or an error costs nothing but the lookups.
    fn list_object_directories(&self) {
        {
            let mut listed = lock_ignoring_poison(&self.objects_listed);
            if listed.is_some_and(|at| at.elapsed() < RELIST_OBJECTS_AFTER) {
                return;
            }
            *listed = Some(Instant::now());
        }
        let objects = self.path.join("objects");
        let listing = std::thread::Builder::new()
            .name("list-objects".into())
            .spawn(move || {
                if let Ok(entries) = std::fs::read_dir(objects) {
                    entries.for_each(drop);
                }
            });
        if let Err(e) = listing {
            tracing::debug!(error = %e, "could not start listing the object directory");
        }
    }

    pub(crate) fn check_size(&self, content: &str) -> Result<(), StoreError> {
        if content.len() > self.config.max_page_bytes {
            return Err(StoreError::InvalidInput(format!(
                "page content is {} bytes; the limit is {}",
                content.len(),
                self.config.max_page_bytes
            )));
        }
        Ok(())
    }

    /// Writes the new objects, and takes git's lock on the branch (holding the new commit) and
    /// confirms the branch is still at `tip`, at once when the store writes in parallel: all
    /// are round trips, and nothing reads the lock's content before the objects are written
    /// (docs/decisions/0003-ref-updates.md).
    fn persist_and_lock(
        &self,
        branch: &str,
        tip: Option<Oid>,
        commit: Oid,
        new_objects: &[&NewObject],
    ) -> Result<Locked, StoreError> {
        let objects_dir = self.path.join("objects");
        let lock = || -> Result<Locked, StoreError> {
            let locking = |e| StoreError::io(format!("locking {branch}"), e);
            let taken = refs::lock(&self.path, branch, commit, self.config.stale_lock_after)
                .map_err(locking)?;
            Ok(match taken {
                refs::Taken::Held(held) => {
                    match held.confirm(&self.path, branch, tip, &self.branch_memo) {
                        Ok(Confirmed::Held(held)) => Locked::Held(held),
                        Ok(Confirmed::Moved(now)) => Locked::Moved(now),
                        Err(e) => return Err(StoreError::io(format!("reading {branch}"), e)),
                    }
                }
                refs::Taken::Foreign { age } => Locked::Foreign { age },
            })
        };
        let (persisted, locked) = if self.config.parallel_object_writes {
            std::thread::scope(|scope| {
                let locking = scope.spawn(lock);
                let persisted = objects::persist_all(&objects_dir, new_objects, true);
                let locked = locking.join().unwrap_or_else(|_| {
                    Err(StoreError::io(
                        format!("locking {branch}"),
                        std::io::Error::other("the locking thread panicked"),
                    ))
                });
                (persisted, locked)
            })
        } else {
            let persisted = objects::persist_all(&objects_dir, new_objects, false);
            (persisted, lock())
        };
        match (persisted, locked) {
            (Ok(()), locked) => locked,
            (Err(e), Ok(Locked::Held(held))) => {
                held.release()
                    .map_err(|e| StoreError::io(format!("unlocking {branch}"), e))?;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }
}

/// How taking git's lock on the branch, and confirming the branch under it, ended.
enum Locked {
    /// Ours, with the branch still at the tip the commit was built on.
    Held(ConfirmedLock),
    /// The branch had moved (to this); the lock was given up.
    Moved(Option<Oid>),
    /// Another program holds the lock.
    Foreign { age: std::time::Duration },
}

/// A plan may change each page once.
fn check_distinct(changes: &[FileChange]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for change in changes {
        if !seen.insert(change.page()) {
            return Err(StoreError::InvalidInput(format!(
                "page '{}' is changed twice in one commit",
                change.page()
            )));
        }
    }
    Ok(())
}

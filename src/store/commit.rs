//! Commits: any set of page changes (writes and removals, one page or many) as one commit on
//! the branch, by the protocol `docs/decisions/0003-ref-updates.md` describes. An operation
//! (write, edit, delete, rename) is a *plan*: a function from the tip it will land on to the
//! file changes it makes there. Each attempt takes the writer mutex, reads the tip, runs the
//! plan against it, builds the objects in scratch, persists them and moves the branch by
//! compare-and-swap; a lost race (only a person's git can cause one) re-plans on the new tip,
//! so a change computed from a page's content (an edit, a link rewrite) is always computed
//! from the content it replaces. A first attempt may plan and build on the tip this process
//! last saw while the mutex is being taken, writing the objects where no reader looks; only
//! a plan run on the tip read under the mutex decides what lands, or fails the write.
//!
//! After a commit lands, the in-memory page index (`page_index.rs`) is moved to it from the
//! changes in hand, without reading anything. This module must not decide what an operation
//! changes (the plans in `mod.rs` and `operations.rs` do) and must not answer reads.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::Oid;

use super::fs;
use super::objects::{self, Builder, Entry, NewObject, Objects, SpareFiles, Staged};
use super::page_index::PageIndex;
use super::refs::{self, Confirmed, ReflogEntry, Swap};
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

/// What a plan makes of a tip.
enum Prepared<T> {
    /// Every page is already as the plan wants it: no commit.
    Unchanged(Oid, T),
    Commit(Built<T>),
}

/// A commit built in scratch on `tip`, with the objects it brings.
struct Built<T> {
    tip: Option<Oid>,
    commit: Oid,
    root_tree: Oid,
    /// Trees, the commit, and the blobs not yet on disk.
    objects: Vec<NewObject>,
    blobs: Vec<Oid>,
    landed: Vec<(FileChange, Option<Oid>)>,
    report: T,
}

/// A commit built on a guessed tip before the writer mutex was held, its objects written to
/// temporary files.
struct Early<T> {
    built: Built<T>,
    staged: Vec<Staged>,
}

impl Wiki {
    /// Commits what `plan` decides against the tip, re-planning onto newer tips until it
    /// lands, fails (a conflict, a page that is not there) or the write budget runs out. A
    /// success is on the branch; a failure did not land. A plan whose changes leave every
    /// page as it was makes no commit (`changed: false`).
    pub(crate) fn commit<T: Send>(
        &self,
        request: &CommitRequest<'_>,
        mut plan: impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError> + Send,
    ) -> Result<(WriteOutcome, T), StoreError> {
        let seconds = request
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if !self.config.parallel_object_writes {
            let committed = self.commit_attempts(request, seconds, &mut plan, &self.spares);
            self.spares.refill(false);
            return committed;
        }
        self.list_object_directories();
        // The spares for the next write are made beside this one's round trips.
        std::thread::scope(|scope| {
            let _refilling = scope.spawn(|| self.spares.refill(true));
            self.commit_attempts(request, seconds, &mut plan, &self.spares)
        })
    }

    /// [`Wiki::commit`]'s attempts, until one lands or fails for good.
    fn commit_attempts<T: Send>(
        &self,
        request: &CommitRequest<'_>,
        seconds: i64,
        plan: &mut (impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError> + Send),
        spares: &SpareFiles,
    ) -> Result<(WriteOutcome, T), StoreError> {
        let sample = self.sample_loose_objects();
        // Objects are content-addressed: once persisted, later attempts reuse them.
        let mut persisted = HashSet::new();
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Only a first attempt builds ahead of the mutex: after a wait or a lost race the
            // tip this process knew is likely gone.
            let guess = (attempts == 1).then(|| self.branch_memo.value()).flatten();
            let step = Step {
                request,
                seconds,
                guess,
            };
            let holder = match self.try_commit(&step, plan, &mut persisted, spares) {
                Ok(Attempt::Done(outcome, report)) => {
                    if outcome.changed {
                        self.maintain_if(sample);
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

    /// One attempt (docs/decisions/0003-ref-updates.md). Each numbered step is a round trip
    /// on EFS, and what is written in one line happens at once:
    /// 1. the writer mutex; and, with a `guess` at the tip, the commit built on it and its
    ///    objects written to temporary files (spares made ahead, or new files);
    /// 2. git's lock file on the branch, created empty; and the tip, read under the mutex;
    /// 3. (re-planned on the tip if the guess was wrong) the objects put in place; the
    ///    new commit written into the lock; and the branch read again under the lock, the
    ///    compare-and-swap against a person's git;
    /// 4. the lock renamed over the branch;
    /// 5. the mutex released.
    ///
    /// Holding the mutex from the tip's read on, no other wikibot writer can move the
    /// branch: only a person's git can make an attempt lose a race, and a commit is only ever
    /// written into a lock when it is built on the tip read under the mutex.
    fn try_commit<T: Send>(
        &self,
        step: &Step<'_>,
        plan: &mut (impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError> + Send),
        persisted: &mut HashSet<Oid>,
        spares: &SpareFiles,
    ) -> Result<Attempt<T>, StoreError> {
        let mut repos = self.fresh_repos()?;
        repos.scratch.bound_memory()?;
        let at = Attempting {
            step,
            branch: repos.branch.clone(),
            objects_dir: self.path.join("objects"),
            parallel: self.config.parallel_object_writes,
            persisted,
            spares,
        };
        let repos: &mut Repositories = &mut repos;
        let (attempt, placed) = std::thread::scope(|scope| {
            let at = &at;
            // 1. The building goes on beside steps 1 and 2, until its objects are needed.
            let building = match step.guess {
                Some(guess) if at.parallel => Building::Running(
                    scope.spawn(move || (self.build_early(at, repos, guess, plan), (repos, plan))),
                ),
                Some(guess) => {
                    let early = self.build_early(at, repos, guess, plan);
                    Building::Finished((early, (repos, plan)))
                }
                None => Building::Finished((None, (repos, plan))),
            };
            let writer = match self.writer.try_lock() {
                Ok(Some(writer)) => writer,
                Ok(None) => {
                    at.discard(building);
                    return Ok((Attempt::Blocked(Holder::LiveWriter), Vec::new()));
                }
                Err(e) => {
                    at.discard(building);
                    let locking = format!("locking {}", self.writer.path().display());
                    return Err(StoreError::io(locking, e));
                }
            };

            // 2.
            let branch = &at.branch;
            let (lock, tip) = match self.lock_and_read_tip(branch, at.parallel) {
                Ok(Ok(locked)) => locked,
                Ok(Err(age)) => {
                    at.discard(building);
                    let holder = Holder::ForeignLock {
                        lock: format!("{branch}.lock"),
                        age,
                        stale_after: self.config.stale_lock_after,
                    };
                    return Ok((Attempt::Blocked(holder), Vec::new()));
                }
                Err(e) => {
                    at.discard(building);
                    return Err(e);
                }
            };
            let (early, (repos, plan)) = match building.finish() {
                Ok(finished) => finished,
                Err(e) => {
                    release(lock.release(), branch)?;
                    return Err(e);
                }
            };
            let landed = self.land(at, repos, plan, lock, tip, early);
            // 5.
            drop(writer);
            landed
        })?;
        persisted.extend(placed);
        Ok(attempt)
    }

    /// Steps 3 and 4 of an attempt, holding the writer mutex and git's lock (empty) on the
    /// branch, whose tip is `tip`: the objects of the commit built on it (early, or now) put
    /// in place, the lock confirmed and filled, and renamed over the branch. Also returns the
    /// blobs now on disk.
    fn land<T: Send>(
        &self,
        at: &Attempting<'_>,
        repos: &mut Repositories,
        plan: &mut impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError>,
        lock: refs::RefLock,
        tip: Option<Oid>,
        early: Option<Early<T>>,
    ) -> Result<(Attempt<T>, Vec<Oid>), StoreError> {
        let (parallel, branch) = (at.parallel, &at.branch);
        // 3.
        let (built, staged) = match early {
            Some(early) if early.built.tip == tip => (early.built, Some(early.staged)),
            early => {
                if let Some(early) = early {
                    objects::discard_all(early.staged, parallel);
                }
                match self.prepare(repos, tip, at, plan) {
                    Ok(Prepared::Commit(built)) => (built, None),
                    Ok(Prepared::Unchanged(tip, report)) => {
                        release(lock.release(), branch)?;
                        let outcome = WriteOutcome {
                            revision: Revision(tip),
                            changed: false,
                            attempts: 0,
                        };
                        return Ok((Attempt::Done(outcome, report), Vec::new()));
                    }
                    Err(e) => {
                        release(lock.release(), branch)?;
                        return Err(e);
                    }
                }
            }
        };
        let on_branch =
            self.place_and_swap(at, repos, lock, tip, staged, &built.objects, built.commit)?;
        if !on_branch {
            return Ok((Attempt::LostRace, built.blobs));
        }
        self.index_landed(built.tip, built.commit, built.root_tree, &built.landed);
        let outcome = WriteOutcome {
            revision: Revision(built.commit),
            changed: true,
            attempts: 0,
        };
        Ok((Attempt::Done(outcome, built.report), built.blobs))
    }

    /// Step 2: git's lock on the branch, and the tip read under the writer mutex, at once.
    /// `Err(age)` inside: another program holds git's lock, since `age` ago.
    fn lock_and_read_tip(
        &self,
        branch: &str,
        parallel: bool,
    ) -> Result<Result<(refs::RefLock, Option<Oid>), Duration>, StoreError> {
        let (taken, tip) = at_once(
            parallel,
            || {
                refs::lock(&self.path, branch, self.config.stale_lock_after)
                    .map_err(|e| StoreError::io(format!("locking {branch}"), e))
            },
            || self.read_branch(branch),
        )?;
        match (taken?, tip) {
            (refs::Taken::Held(lock), Ok(tip)) => Ok(Ok((lock, tip))),
            (refs::Taken::Foreign { age }, _) => Ok(Err(age)),
            (refs::Taken::Held(lock), Err(e)) => {
                release(lock.release(), branch)?;
                Err(e)
            }
        }
    }

    /// Steps 3 and 4 once the commit is built on `tip`: its objects (`staged` early, or
    /// written now) put in place, the lock filled and the branch checked under it, then the
    /// lock renamed over the branch. Whether the commit is on the branch.
    #[allow(clippy::too_many_arguments)]
    fn place_and_swap(
        &self,
        at: &Attempting<'_>,
        repos: &Repositories,
        lock: refs::RefLock,
        tip: Option<Oid>,
        staged: Option<Vec<Staged>>,
        objects: &[NewObject],
        commit: Oid,
    ) -> Result<bool, StoreError> {
        let (parallel, branch) = (at.parallel, &at.branch);
        // In order, the objects go into place before the commit goes into the lock; at once,
        // they overlap (a window decision 0003 names).
        let (placed, written) = at_once(
            parallel,
            || {
                let staged = match staged {
                    Some(staged) => staged,
                    None => {
                        let new: Vec<&NewObject> = objects.iter().collect();
                        objects::stage_all(&at.objects_dir, &new, parallel, at.spares)?
                    }
                };
                objects::publish_all(staged, parallel, at.spares)
            },
            || {
                let memo = &self.branch_memo;
                lock.fill_and_confirm(&self.path, branch, commit, tip, memo, parallel)
                    .map_err(|e| StoreError::io(format!("locking {branch}"), e))
            },
        )?;
        let locked = match (placed, written) {
            (Ok(()), Ok(locked)) => locked,
            (Err(e), Ok(Confirmed::Held(written))) => {
                release(written.release(), branch)?;
                return Err(e);
            }
            (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
        };

        // 4.
        let swap = match locked {
            Confirmed::Held(written) => {
                let request = at.step.request;
                let who = format!("{} <{}>", request.author.name(), request.author.email());
                let subject = request.message.lines().next().unwrap_or_default();
                let log_message = match tip {
                    Some(_) => format!("commit: {subject}"),
                    None => format!("commit (initial): {subject}"),
                };
                let entry = ReflogEntry {
                    who: &who,
                    seconds: at.step.seconds,
                    message: &log_message,
                };
                written
                    .commit(
                        &self.path,
                        branch,
                        tip,
                        (&repos.reflog, &entry),
                        &self.branch_memo,
                    )
                    .map_err(|e| StoreError::io(format!("updating {branch}"), e))?
            }
            Confirmed::Moved(now) => Swap::Moved(now),
        };
        Ok(match swap {
            Swap::Done => true,
            // Someone renamed our lock file into place early, or removed it: the branch says
            // whether our commit is on it.
            Swap::Moved(Some(now)) | Swap::Vanished(Some(now)) => {
                now == commit || repos.disk.graph_descendant_of(now, commit)?
            }
            Swap::Moved(None) | Swap::Vanished(None) => false,
        })
    }

    /// Step 1's building: the plan run against `guess` and its objects staged, or `None` if
    /// the plan does not make a commit there (its answer may differ on the real tip, so only
    /// a plan run on that tip may fail the write).
    fn build_early<T>(
        &self,
        at: &Attempting<'_>,
        repos: &mut Repositories,
        guess: Oid,
        plan: &mut impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError>,
    ) -> Option<Early<T>> {
        let built = match self.prepare(repos, Some(guess), at, plan) {
            Ok(Prepared::Commit(built)) => built,
            Ok(Prepared::Unchanged(..)) | Err(_) => return None,
        };
        let new: Vec<&NewObject> = built.objects.iter().collect();
        let staged = objects::stage_all(&at.objects_dir, &new, at.parallel, at.spares).ok()?;
        Some(Early { built, staged })
    }

    /// Runs `plan` against `tip` and builds the commit it makes, in scratch.
    fn prepare<T>(
        &self,
        repos: &mut Repositories,
        tip: Option<Oid>,
        at: &Attempting<'_>,
        plan: &mut impl FnMut(&Planner<'_>) -> Result<(Vec<FileChange>, T), StoreError>,
    ) -> Result<Prepared<T>, StoreError> {
        let (step, persisted) = (at.step, at.persisted);
        let Repositories { disk, scratch, .. } = repos;
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
            return Ok(Prepared::Unchanged(tip, report));
        }
        let paths: Vec<(Vec<&str>, Option<Entry>)> = edits
            .iter()
            .map(|(path, entry)| (path.split('/').collect(), *entry))
            .collect();
        let trees = builder.trees_with_changes(disk, root, &paths)?;
        let root_tree = trees
            .first()
            .map(|t| t.id)
            .ok_or_else(|| StoreError::Git(git2::Error::from_str("no tree was built")))?;
        let request = step.request;
        let commit = builder.commit(
            root_tree,
            tip,
            request.author,
            step.seconds,
            request.message,
        )?;
        let commit_id = commit.id;
        let blob_ids = blobs.iter().map(|b| b.id).collect();
        let objects = trees
            .into_iter()
            .chain([commit])
            .chain(blobs.into_iter().filter(|b| !persisted.contains(&b.id)))
            .collect();
        Ok(Prepared::Commit(Built {
            tip,
            commit: commit_id,
            root_tree,
            objects,
            blobs: blob_ids,
            landed,
            report,
        }))
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
}

/// Who commits, when, and the tip this process guesses the branch is at.
struct Step<'a> {
    request: &'a CommitRequest<'a>,
    seconds: i64,
    guess: Option<Oid>,
}

/// What an attempt works with.
struct Attempting<'a> {
    step: &'a Step<'a>,
    branch: String,
    objects_dir: std::path::PathBuf,
    /// Independent round trips at once, on threads of their own.
    parallel: bool,
    /// Blobs earlier attempts put on disk.
    persisted: &'a HashSet<Oid>,
    /// Temporary files made ahead for the objects.
    spares: &'a SpareFiles,
}

impl Attempting<'_> {
    /// Waits for step 1's building and removes what it staged: the attempt ends early.
    fn discard<R, T>(&self, building: Building<'_, (Option<Early<T>>, R)>) {
        if let Ok((Some(early), _)) = building.finish() {
            objects::discard_all(early.staged, self.parallel);
        }
    }
}

/// Step 1's building: on a thread of its own when writing in parallel, else done already.
enum Building<'scope, R> {
    Running(std::thread::ScopedJoinHandle<'scope, R>),
    Finished(R),
}

impl<R> Building<'_, R> {
    fn finish(self) -> Result<R, StoreError> {
        match self {
            Self::Running(handle) => handle.join().map_err(|_| {
                StoreError::io(
                    "committing",
                    std::io::Error::other("the building thread panicked"),
                )
            }),
            Self::Finished(finished) => Ok(finished),
        }
    }
}

/// [`fs::at_once`], a panicked thread reported as the store's error.
fn at_once<A: Send, B>(
    parallel: bool,
    first: impl FnOnce() -> A + Send,
    second: impl FnOnce() -> B,
) -> Result<(A, B), StoreError> {
    fs::at_once(parallel, first, second).map_err(|e| StoreError::io("committing", e))
}

/// The outcome of giving up git's lock on `branch`.
fn release(released: std::io::Result<()>, branch: &str) -> Result<(), StoreError> {
    released.map_err(|e| StoreError::io(format!("unlocking {branch}"), e))
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

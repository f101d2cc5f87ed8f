//! Git objects, read and written with as few file operations as possible.
//!
//! Reads are libgit2's, through its parsed-object cache (kept warm across invocations). New
//! objects are built in a scratch object database in memory (a libgit2 mempack), which also
//! remembers them: the next read or write in this process finds the commit and trees it just
//! wrote without touching the disk. They are then persisted as loose objects: each written
//! into a spare temporary file that an earlier write made ahead of need and hard-linked into
//! place (two file operations on the write's path), or else created beside its place and
//! renamed there (three). libgit2's own write path spends 8 file operations per object
//! (existence checks, a pack-directory rescan, link + unlink); on EFS each is a round trip.
//!
//! This module must not move refs (see `refs`) or decide what to write (the store does).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use git2::{Blob, Commit, ErrorCode, FileMode, ObjectType, Odb, Oid, Repository, Tree};

use super::StoreError;
use super::fs::{close, create_new, each_at_once, remove_if_present, write_new};

/// Past this many bytes of new objects the scratch database starts afresh, bounding memory.
const SCRATCH_LIMIT_BYTES: usize = 32 * 1024 * 1024;

/// An in-memory object database holding the objects this process wrote recently.
pub(crate) struct Scratch {
    repo: Repository,
    bytes: usize,
}

impl Scratch {
    pub(crate) fn new() -> Result<Self, git2::Error> {
        let odb = Odb::new()?;
        odb.add_new_mempack_backend(1)?;
        Ok(Self {
            repo: Repository::from_odb(odb)?,
            bytes: 0,
        })
    }

    /// Starts afresh once the remembered objects outgrow their budget.
    pub(crate) fn bound_memory(&mut self) -> Result<(), git2::Error> {
        if self.bytes > SCRATCH_LIMIT_BYTES {
            *self = Self::new()?;
        }
        Ok(())
    }
}

/// Object lookups that try the scratch database first, then the repository on disk.
pub(crate) struct Objects<'r> {
    disk: &'r Repository,
    scratch: &'r Repository,
}

/// A new object, built in scratch and not yet on disk.
pub(crate) struct NewObject {
    pub id: Oid,
    pub kind: ObjectType,
    pub data: Vec<u8>,
}

fn either<T>(
    scratch: Result<T, git2::Error>,
    disk: impl FnOnce() -> Result<T, git2::Error>,
) -> Result<T, git2::Error> {
    match scratch {
        Err(e) if e.code() == ErrorCode::NotFound => disk(),
        other => other,
    }
}

impl<'r> Objects<'r> {
    pub(crate) fn new(disk: &'r Repository, scratch: &'r Scratch) -> Self {
        Self {
            disk,
            scratch: &scratch.repo,
        }
    }

    pub(crate) fn commit(&self, id: Oid) -> Result<Commit<'r>, git2::Error> {
        either(self.scratch.find_commit(id), || self.disk.find_commit(id))
    }

    pub(crate) fn tree(&self, id: Oid) -> Result<Tree<'r>, git2::Error> {
        either(self.scratch.find_tree(id), || self.disk.find_tree(id))
    }

    pub(crate) fn blob(&self, id: Oid) -> Result<Blob<'r>, git2::Error> {
        either(self.scratch.find_blob(id), || self.disk.find_blob(id))
    }

    /// What is at `path` (components) below tree `root`.
    pub(crate) fn entry(&self, root: Oid, path: &[&str]) -> Result<Lookup, git2::Error> {
        let mut tree = self.tree(root)?;
        for (depth, component) in path.iter().enumerate() {
            let Some(entry) = tree.get_name(component) else {
                return Ok(Lookup::Absent);
            };
            if depth + 1 == path.len() {
                return Ok(Lookup::Found(Entry {
                    id: entry.id(),
                    mode: entry.filemode(),
                }));
            }
            if entry.kind() != Some(ObjectType::Tree) {
                return Ok(Lookup::BlockedBy(path[..=depth].join("/")));
            }
            let subtree = entry.id();
            drop(entry);
            tree = self.tree(subtree)?;
        }
        Ok(Lookup::Found(Entry {
            id: root,
            mode: i32::from(FileMode::Tree),
        }))
    }
}

/// A tree entry: its object and git's file mode for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: Oid,
    pub mode: i32,
}

impl Entry {
    /// A regular file, executable or not: the only kind of entry that can be a page.
    pub(crate) fn is_file(&self) -> bool {
        self.mode == i32::from(FileMode::Blob) || self.mode == i32::from(FileMode::BlobExecutable)
    }

    /// What the entry is, for messages about entries that are not files.
    pub(crate) fn describe(&self) -> &'static str {
        match self.mode {
            m if m == i32::from(FileMode::Link) => "a symbolic link",
            m if m == i32::from(FileMode::Tree) => "a directory",
            m if m == i32::from(FileMode::Commit) => "a submodule",
            m if m == i32::from(FileMode::BlobExecutable) => "an executable file",
            _ => "a file",
        }
    }
}

/// The result of looking a path up in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Found(Entry),
    Absent,
    /// A leading component of the path is not a directory (the tree path given).
    BlockedBy(String),
}

/// A path (components) below a tree, and the entry to put there (`None`: remove it).
type TreeEdit<'a> = (&'a [&'a str], Option<Entry>);

/// Builds new objects in the scratch database.
pub(crate) struct Builder<'s> {
    scratch: &'s mut Scratch,
}

impl<'s> Builder<'s> {
    pub(crate) fn new(scratch: &'s mut Scratch) -> Self {
        Self { scratch }
    }

    pub(crate) fn blob(&mut self, content: &[u8]) -> Result<NewObject, git2::Error> {
        self.insert(ObjectType::Blob, content.to_vec())
    }

    /// Writes the trees of `root` with the blob at `dirs/file`, and returns them, the new root
    /// first. Objects under `root` are looked up with `disk` as the fallback. The caller has
    /// checked (with [`Objects::entry`]) that no leading component is a file.
    #[cfg(test)]
    pub(crate) fn trees_with_file(
        &mut self,
        disk: &Repository,
        root: Option<Oid>,
        dirs: &[&str],
        file: &str,
        blob: Entry,
    ) -> Result<Vec<NewObject>, git2::Error> {
        let mut path = dirs.to_vec();
        path.push(file);
        self.trees_with_changes(disk, root, &[(path, Some(blob))])
    }

    /// Writes the trees of `root` with each change applied (a path's components, and the
    /// entry to put there or `None` to remove what is there), and returns them, the new root
    /// first (always written, empty if nothing is left). Directories left empty disappear, as
    /// git has no empty directories. The caller has checked that no leading component of a
    /// path it puts is a file, and that paths are distinct.
    pub(crate) fn trees_with_changes(
        &mut self,
        disk: &Repository,
        root: Option<Oid>,
        changes: &[(Vec<&str>, Option<Entry>)],
    ) -> Result<Vec<NewObject>, git2::Error> {
        let edits: Vec<TreeEdit<'_>> = changes
            .iter()
            .map(|(path, entry)| (path.as_slice(), *entry))
            .collect();
        let mut new_trees = Vec::new();
        if self.apply(disk, root, &edits, &mut new_trees)?.is_none() {
            // Everything was removed: the root is the empty tree.
            let id = self.scratch.repo.treebuilder(None)?.write()?;
            new_trees.push(NewObject {
                id,
                kind: ObjectType::Tree,
                data: Vec::new(),
            });
        }
        new_trees.reverse();
        Ok(new_trees)
    }

    /// Applies `edits` (paths relative to `base`) and writes the changed tree; `None` when it
    /// ends up empty (it is then not written). Subtrees are pushed before their parent.
    fn apply(
        &mut self,
        disk: &Repository,
        base: Option<Oid>,
        edits: &[TreeEdit<'_>],
        new_trees: &mut Vec<NewObject>,
    ) -> Result<Option<Oid>, git2::Error> {
        // Group the edits below this tree by their first directory, keeping the order.
        let mut files: Vec<(&str, Option<Entry>)> = Vec::new();
        let mut dirs: Vec<(&str, Vec<TreeEdit<'_>>)> = Vec::new();
        for (path, entry) in edits {
            match path.split_first() {
                None => {}
                Some((name, [])) => files.push((name, *entry)),
                Some((dir, rest)) => match dirs.iter_mut().find(|(d, _)| d == dir) {
                    Some((_, below)) => below.push((rest, *entry)),
                    None => dirs.push((dir, vec![(rest, *entry)])),
                },
            }
        }
        let mut subtrees = Vec::with_capacity(dirs.len());
        for (dir, below) in &dirs {
            let sub_base = match base {
                Some(base) => self.directory(disk, base, dir)?,
                None => None,
            };
            subtrees.push((*dir, self.apply(disk, sub_base, below, new_trees)?));
        }
        let (id, data) = {
            let objects = Objects::new(disk, self.scratch);
            let base_tree = base.map(|id| objects.tree(id)).transpose()?;
            let mut builder = self.scratch.repo.treebuilder(base_tree.as_ref())?;
            for (name, entry) in files {
                match entry {
                    Some(entry) => {
                        builder.insert(name, entry.id, entry.mode)?;
                    }
                    None if builder.get(name)?.is_some() => builder.remove(name)?,
                    None => {}
                }
            }
            for (dir, subtree) in subtrees {
                match subtree {
                    Some(id) => {
                        builder.insert(dir, id, FileMode::Tree.into())?;
                    }
                    None if builder.get(dir)?.is_some() => builder.remove(dir)?,
                    None => {}
                }
            }
            if builder.is_empty() {
                return Ok(None);
            }
            let id = builder.write()?;
            (id, self.scratch.repo.odb()?.read(id)?.data().to_vec())
        };
        self.scratch.bytes += data.len();
        new_trees.push(NewObject {
            id,
            kind: ObjectType::Tree,
            data,
        });
        Ok(Some(id))
    }

    /// The subtree `name` of tree `parent`; an error if `name` is a file.
    fn directory(
        &self,
        disk: &Repository,
        parent: Oid,
        name: &str,
    ) -> Result<Option<Oid>, git2::Error> {
        let parent = Objects::new(disk, self.scratch).tree(parent)?;
        match parent.get_name(name) {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => Ok(Some(entry.id())),
            Some(_) => Err(git2::Error::from_str(&format!(
                "'{name}' is a file in the wiki, not a directory"
            ))),
            None => Ok(None),
        }
    }

    /// A commit object; `parent` is `None` for the first commit.
    pub(crate) fn commit(
        &mut self,
        tree: Oid,
        parent: Option<Oid>,
        author: &super::Author,
        seconds: i64,
        message: &str,
    ) -> Result<NewObject, git2::Error> {
        // The commit format is small and fixed; libgit2 can only build a commit whose parent
        // object is in the same database, which would mean copying it into scratch first.
        let signature = format!("{} <{}> {seconds} +0000", author.name(), author.email());
        let parent = parent.map(|p| format!("parent {p}\n")).unwrap_or_default();
        let text = format!(
            "tree {tree}\n{parent}author {signature}\ncommitter {signature}\n\n{}\n",
            message.trim_end()
        );
        self.insert(ObjectType::Commit, text.into_bytes())
    }

    fn insert(&mut self, kind: ObjectType, data: Vec<u8>) -> Result<NewObject, git2::Error> {
        let id = self.scratch.repo.odb()?.write(kind, &data)?;
        self.scratch.bytes += data.len();
        Ok(NewObject { id, kind, data })
    }
}

/// An object written to a temporary file, where no reader looks for it yet: beside its place
/// (`xx/tmp_obj_wikibot_…`, to be renamed there), or in a spare file made ahead of need (to be
/// linked there).
pub(crate) struct Staged {
    temporary: PathBuf,
    target: PathBuf,
    /// For a spare file: the deflated object, to write afresh if the link fails (maintenance
    /// may have removed a spare that outlived its grace period while its writer stalled).
    linked: Option<Vec<u8>>,
}

impl Staged {
    /// Puts the object in place: from here a ref may name it. Returns a spare file's own
    /// name, still linked to the object, for [`SpareFiles`] to remove later.
    fn publish(self) -> io::Result<Option<PathBuf>> {
        let Some(deflated) = self.linked else {
            let placed = std::fs::rename(&self.temporary, &self.target);
            if placed.is_err() {
                let _ = remove_if_present(&self.temporary);
            }
            return placed.map(|()| None);
        };
        let dir = self.target.parent().unwrap_or(Path::new("."));
        let mut linked = std::fs::hard_link(&self.temporary, &self.target);
        if linked
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            && std::fs::create_dir(dir).is_ok()
        {
            // The fan-out directory was missing (`git gc` removes empty ones).
            linked = std::fs::hard_link(&self.temporary, &self.target);
        }
        match linked {
            // An object that is already in place is complete: every writer, git's included,
            // puts whole files there.
            Ok(()) => Ok(Some(self.temporary)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Some(self.temporary)),
            Err(_) => {
                let _ = remove_if_present(&self.temporary);
                let mut fresh = write_temporary(dir, &deflated)?;
                fresh.target = self.target;
                fresh.publish().map(|_| None)
            }
        }
    }

    /// Removes the temporary file: the object was built for a tip that moved.
    fn discard(self) -> io::Result<()> {
        remove_if_present(&self.temporary)
    }
}

/// Writes `objects` to temporary files, all at once when `parallel` (independent round trips
/// on EFS then overlap instead of adding up), in spare files from `spares` while it has them
/// (one round trip each: the write) and beside their places otherwise (two: create, write).
/// On failure what was written is removed.
pub(crate) fn stage_all(
    objects_dir: &Path,
    objects: &[&NewObject],
    parallel: bool,
    spares: &SpareFiles,
) -> Result<Vec<Staged>, StoreError> {
    let mut spare_files = spares.take(objects.len());
    let jobs: Vec<(&NewObject, Option<Spare>)> = objects
        .iter()
        .map(|&object| (object, spare_files.pop()))
        .collect();
    let staged = at_once(jobs, parallel, |(object, spare)| {
        stage(objects_dir, object, spare)
            .map_err(|e| StoreError::io(format!("writing object {}", object.id), e))
    });
    spares.remember_directories(
        objects
            .iter()
            .map(|object| fanout_dir(objects_dir, object.id)),
    );
    let (done, failed): (Vec<_>, Vec<_>) = staged.into_iter().partition(Result::is_ok);
    let done: Vec<Staged> = done.into_iter().flatten().collect();
    match failed.into_iter().find_map(Result::err) {
        None => Ok(done),
        Some(e) => {
            discard_all(done, parallel);
            Err(e)
        }
    }
}

/// Puts staged objects in place, all at once when `parallel`. The spare files' own names go
/// back to `spares`, to be removed off the write's path.
pub(crate) fn publish_all(
    staged: Vec<Staged>,
    parallel: bool,
    spares: &SpareFiles,
) -> Result<(), StoreError> {
    let published = at_once(staged, parallel, |staged| {
        let target = staged.target.display().to_string();
        staged
            .publish()
            .map_err(|e| StoreError::io(format!("placing object {target}"), e))
    });
    let mut outcome = Ok(());
    for result in published {
        match result {
            Ok(Some(leftover)) => spares.used(leftover),
            Ok(None) => {}
            Err(e) => outcome = outcome.and(Err(e)),
        }
    }
    outcome
}

/// Removes staged objects that will not be published. A file left behind (the removal
/// failed, or the process died) is a `tmp_obj_` file, which maintenance and `git gc` clear.
pub(crate) fn discard_all(staged: Vec<Staged>, parallel: bool) {
    for result in at_once(staged, parallel, |staged| {
        staged
            .discard()
            .map_err(|e| StoreError::io("removing a temporary object file", e))
    }) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "a temporary object file stays for maintenance");
        }
    }
}

/// [`each_at_once`], a panicked thread reported as the store's error.
fn at_once<I: Send, R: Send>(
    items: Vec<I>,
    parallel: bool,
    each: impl Fn(I) -> Result<R, StoreError> + Sync,
) -> Vec<Result<R, StoreError>> {
    each_at_once(items, parallel, each)
        .unwrap_or_else(|e| vec![Err(StoreError::io("writing objects", e))])
}

/// Persists `object` under `objects_dir` as a loose object and puts it in place.
#[cfg(test)]
pub(crate) fn persist(objects_dir: &Path, object: &NewObject) -> io::Result<()> {
    stage(objects_dir, object, None)?.publish().map(|_| ())
}

/// The fan-out directory a loose object goes to (`objects/3f`).
fn fanout_dir(objects_dir: &Path, id: Oid) -> PathBuf {
    objects_dir.join(&id.to_string()[..2])
}

/// Writes `object` as a loose object (deflated `<kind> <size>\0<data>`) to a temporary file,
/// for [`Staged::publish`] to put at `xx/yyyy…`: into `spare` if given (and writable), else
/// to a new file in its fan-out directory. Temporary names start with `tmp_obj_`, which
/// maintenance (and `git gc`) clean up if a writer dies in between.
fn stage(objects_dir: &Path, object: &NewObject, spare: Option<Spare>) -> io::Result<Staged> {
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(object.data.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    write!(encoder, "{} {}\0", object.kind, object.data.len())?;
    encoder.write_all(&object.data)?;
    let deflated = encoder.finish()?;

    let hex = object.id.to_string();
    let dir = fanout_dir(objects_dir, object.id);
    let target = dir.join(&hex[2..]);
    if let Some(Spare { mut file, path, .. }) = spare {
        match file.write_all(&deflated).and_then(|()| close(file)) {
            Ok(()) => {
                return Ok(Staged {
                    temporary: path,
                    target,
                    linked: Some(deflated),
                });
            }
            // A spare that cannot be written (its NFS state lost in a long freeze, say) is
            // dropped; the object goes the usual way.
            Err(_) => {
                let _ = remove_if_present(&path);
            }
        }
    }
    let mut staged = write_temporary(&dir, &deflated)?;
    staged.target = target;
    Ok(staged)
}

/// Writes `deflated` to a new temporary file in `dir` (created if missing), to be renamed
/// into place; the caller sets the target. The temporary file lives in the object's own
/// fan-out directory, as git's do: the rename stays in one directory, and objects bound for
/// different directories do not queue on one directory's lock (the kernel serialises
/// changes to a directory, and renames across directories on a whole file system).
fn write_temporary(dir: &Path, deflated: &[u8]) -> io::Result<Staged> {
    let temporary = dir.join(format!("tmp_obj_wikibot_{:016x}", fastrand::u64(..)));
    match write_new(&temporary, deflated, 0o444) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => write_new(&temporary, deflated, 0o444)?,
        },
        other => other?,
    }
    Ok(Staged {
        target: temporary.clone(),
        temporary,
        linked: None,
    })
}

/// How many spare files a process keeps: two writes' worth of objects (a page's blob, its
/// trees, the commit), so that the next write finds them while the last one's are remade.
const SPARES: usize = 8;

/// A spare file older than this is not used: below the NFS lease (90 s on Linux servers), so
/// a process frozen by Lambda for longer does not write through open state the server may
/// have dropped, and far below maintenance's grace period, after which it may be removed.
const SPARE_MAX_AGE: Duration = Duration::from_secs(60);

/// Empty temporary files made ahead of need: a write then stages each object with one round
/// trip (the write into a spare) instead of two (create, write), and puts it in place with a
/// hard link, as git's own default does (a rename across directories would queue on the file
/// system's rename lock). Each write makes the spares the next one needs, and removes the
/// names of those used before, beside its own round trips (see [`SpareFiles::refill`]). A
/// spare's name starts with `tmp_obj_` and sits in a fan-out directory, so a killed
/// process's spares are cleared like any temporary object file, by maintenance and by
/// `git gc`. A spare that cannot be used (written, or linked) costs the usual way instead.
#[derive(Default)]
pub(crate) struct SpareFiles {
    ready: Mutex<Vec<Spare>>,
    /// Names to remove: spares used (still linked to their object) or too old.
    leftovers: Mutex<Vec<PathBuf>>,
    /// Fan-out directories known to exist, where new spares go.
    directories: Mutex<Vec<PathBuf>>,
    refilling: AtomicBool,
}

/// An empty temporary file, open for writing.
pub(crate) struct Spare {
    file: File,
    path: PathBuf,
    made: Instant,
}

impl SpareFiles {
    /// Up to `wanted` spares young enough to use.
    fn take(&self, wanted: usize) -> Vec<Spare> {
        let mut ready = self.young();
        let keep = ready.len().saturating_sub(wanted);
        ready.split_off(keep)
    }

    /// The ready spares, those too old to use moved to the leftovers first.
    fn young(&self) -> MutexGuard<'_, Vec<Spare>> {
        let mut ready = lock(&self.ready);
        let (young, old): (Vec<Spare>, Vec<Spare>) = ready
            .drain(..)
            .partition(|spare| spare.made.elapsed() < SPARE_MAX_AGE);
        *ready = young;
        lock(&self.leftovers).extend(old.into_iter().map(|spare| spare.path));
        ready
    }

    fn used(&self, name: PathBuf) {
        lock(&self.leftovers).push(name);
    }

    fn remember_directories(&self, dirs: impl Iterator<Item = PathBuf>) {
        let mut known = lock(&self.directories);
        for dir in dirs {
            if !known.contains(&dir) {
                known.push(dir);
            }
        }
        let excess = known.len().saturating_sub(SPARES);
        known.drain(..excess);
    }

    /// Removes the leftovers and makes spares up to [`SPARES`], in fan-out directories earlier
    /// writes used (none before this process's first), at once when `parallel`; does
    /// nothing if another thread is at it. A write calls this beside its own round trips
    /// (after them, when not `parallel`) and waits for it before answering, so nothing
    /// outlives the write (in Lambda, work left for after the answer would be frozen with the
    /// process). Best effort: what fails is logged and left to maintenance.
    pub(crate) fn refill(&self, parallel: bool) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        self.remake(parallel);
        self.refilling.store(false, Ordering::Release);
    }

    fn remake(&self, parallel: bool) {
        enum Job {
            Remove(PathBuf),
            Make(PathBuf),
        }
        let missing = SPARES.saturating_sub(self.young().len());
        let leftovers = std::mem::take(&mut *lock(&self.leftovers));
        let dirs = lock(&self.directories).clone();
        let makes = dirs
            .iter()
            .cycle()
            .take(if dirs.is_empty() { 0 } else { missing });
        let jobs: Vec<Job> = leftovers
            .into_iter()
            .map(Job::Remove)
            .chain(makes.map(|dir| {
                Job::Make(dir.join(format!("tmp_obj_wikibot_{:016x}", fastrand::u64(..))))
            }))
            .collect();
        let made = each_at_once(jobs, parallel, |job| match job {
            Job::Remove(path) => {
                if let Err(e) = remove_if_present(&path) {
                    tracing::debug!(error = %e, "a used spare file stays for maintenance");
                }
                None
            }
            Job::Make(path) => match create_new(&path, 0o444) {
                Ok(file) => Some(Spare {
                    file,
                    path,
                    made: Instant::now(),
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "could not make a spare file");
                    None
                }
            },
        });
        if let Ok(made) = made {
            lock(&self.ready).extend(made.into_iter().flatten());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: Oid) -> Entry {
        Entry {
            id,
            mode: FileMode::Blob.into(),
        }
    }

    #[test]
    fn persisted_objects_are_read_back_by_libgit2_with_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Repository::init_bare(dir.path()).unwrap();
        let mut scratch = Scratch::new().unwrap();
        let mut builder = Builder::new(&mut scratch);
        let blob = builder.blob(b"hello\n").unwrap();
        let trees = builder
            .trees_with_file(&disk, None, &["a", "b"], "c.md", file(blob.id))
            .unwrap();
        assert_eq!(trees.len(), 3, "root, a, a/b");
        let author = super::super::Author::new("Ada", "ada@example.com").unwrap();
        let commit = builder
            .commit(trees[0].id, None, &author, 1_700_000_000, "msg")
            .unwrap();
        for object in std::iter::once(&blob).chain(&trees).chain([&commit]) {
            persist(&dir.path().join("objects"), object).unwrap();
            assert_eq!(
                disk.odb().unwrap().read(object.id).unwrap().data(),
                object.data.as_slice()
            );
            assert_eq!(
                Oid::hash_object(object.kind, &object.data).unwrap(),
                object.id
            );
        }
        let parsed = disk.find_commit(commit.id).unwrap();
        assert_eq!(parsed.tree_id(), trees[0].id);
        assert_eq!(parsed.author().name(), Ok("Ada"));
        assert_eq!(parsed.time().seconds(), 1_700_000_000);
        let tree = disk.find_tree(trees[0].id).unwrap();
        assert_eq!(tree.get_path(Path::new("a/b/c.md")).unwrap().id(), blob.id);
        // The scratch database answers for the objects it built; the disk for the rest.
        let objects = Objects::new(&disk, &scratch);
        assert_eq!(
            objects.entry(trees[0].id, &["a", "b", "c.md"]).unwrap(),
            Lookup::Found(file(blob.id))
        );
        assert_eq!(
            objects.entry(trees[0].id, &["a", "x.md"]).unwrap(),
            Lookup::Absent
        );
        assert_eq!(
            objects
                .entry(trees[0].id, &["a", "b", "c.md", "d"])
                .unwrap(),
            Lookup::BlockedBy("a/b/c.md".into())
        );
    }

    /// Spare files in the fan-out directory `objects/00`, as a refill makes them.
    fn spares_in(objects_dir: &Path) -> SpareFiles {
        let spares = SpareFiles::default();
        std::fs::create_dir_all(objects_dir.join("00")).unwrap();
        spares.remember_directories(std::iter::once(objects_dir.join("00")));
        spares.refill(true);
        assert_eq!(lock(&spares.ready).len(), SPARES);
        spares
    }

    fn temporaries(objects_dir: &Path) -> Vec<(String, u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut found = Vec::new();
        for dir in std::fs::read_dir(objects_dir).unwrap().flatten() {
            for file in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with("tmp_obj_") {
                    let meta = file.metadata().unwrap();
                    found.push((name, meta.len(), meta.nlink()));
                }
            }
        }
        found
    }

    #[test]
    fn objects_staged_in_spares_are_linked_into_place_and_the_spares_remade() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Repository::init_bare(dir.path()).unwrap();
        let objects_dir = dir.path().join("objects");
        let spares = spares_in(&objects_dir);
        let mut scratch = Scratch::new().unwrap();
        let mut builder = Builder::new(&mut scratch);
        let blob = builder.blob(b"in a spare\n").unwrap();
        let trees = builder
            .trees_with_file(&disk, None, &["a"], "b.md", file(blob.id))
            .unwrap();
        let new: Vec<&NewObject> = std::iter::once(&blob).chain(&trees).collect();
        // One object is already in place: its link finds it there, which is success.
        persist(&objects_dir, &trees[1]).unwrap();

        let staged = stage_all(&objects_dir, &new, true, &spares).unwrap();
        assert!(
            staged.iter().all(|s| s.linked.is_some()),
            "all staged in spares"
        );
        assert_eq!(lock(&spares.ready).len(), SPARES - new.len());
        for object in &new {
            assert!(disk.odb().unwrap().read(object.id).is_err() || object.id == trees[1].id);
        }
        publish_all(staged, true, &spares).unwrap();
        let odb = disk.odb().unwrap();
        for object in &new {
            assert_eq!(odb.read(object.id).unwrap().data(), object.data.as_slice());
        }
        // The used spares' own names stay linked to their objects until the next refill.
        let used = temporaries(&objects_dir)
            .into_iter()
            .filter(|(_, len, _)| *len > 0)
            .count();
        assert_eq!(used, new.len());
        spares.refill(true);
        assert_eq!(lock(&spares.ready).len(), SPARES);
        let left = temporaries(&objects_dir);
        assert_eq!(left.len(), SPARES, "{left:?}");
        assert!(
            left.iter().all(|(_, len, links)| *len == 0 && *links == 1),
            "{left:?}"
        );
        assert!(
            disk.odb().unwrap().read(blob.id).is_ok(),
            "the objects stay"
        );
    }

    #[test]
    fn a_spare_removed_before_its_link_is_written_again_the_usual_way() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Repository::init_bare(dir.path()).unwrap();
        let objects_dir = dir.path().join("objects");
        let spares = spares_in(&objects_dir);
        let mut scratch = Scratch::new().unwrap();
        let blob = Builder::new(&mut scratch).blob(b"kept\n").unwrap();
        let staged = stage_all(&objects_dir, &[&blob], true, &spares).unwrap();
        // As maintenance or `git gc --prune=now` would, behind the writer's back.
        for staged in &staged {
            std::fs::remove_file(&staged.temporary).unwrap();
        }
        publish_all(staged, true, &spares).unwrap();
        let odb = disk.odb().unwrap();
        assert_eq!(odb.read(blob.id).unwrap().data(), b"kept\n");
        assert!(
            temporaries(&objects_dir)
                .iter()
                .all(|(_, len, _)| *len == 0),
            "no temporary file with the object stays"
        );
    }

    #[test]
    fn spares_past_their_age_are_not_used_but_removed() {
        let dir = tempfile::tempdir().unwrap();
        let objects_dir = dir.path().join("objects");
        let spares = spares_in(&objects_dir);
        let Some(old) = Instant::now().checked_sub(SPARE_MAX_AGE) else {
            return; // the clock starts too recently to age a spare here
        };
        for spare in lock(&spares.ready).iter_mut().take(SPARES - 1) {
            spare.made = old;
        }
        let taken = spares.take(4);
        assert_eq!(taken.len(), 1, "only the young spare");
        std::fs::remove_file(&taken[0].path).unwrap();
        assert_eq!(lock(&spares.leftovers).len(), SPARES - 1);
        spares.refill(true);
        let left = temporaries(&objects_dir);
        assert_eq!(
            left.len(),
            SPARES,
            "the old ones removed, new ones made: {left:?}"
        );

        // A refill alone retires old spares too (a process thawed after a long freeze).
        for spare in lock(&spares.ready).iter_mut() {
            spare.made = old;
        }
        let before: Vec<PathBuf> = lock(&spares.ready).iter().map(|s| s.path.clone()).collect();
        spares.refill(true);
        assert_eq!(lock(&spares.ready).len(), SPARES);
        assert!(
            before.iter().all(|path| !path.exists()),
            "old spares removed"
        );
        assert_eq!(temporaries(&objects_dir).len(), SPARES);
    }

    #[test]
    fn updating_a_tree_keeps_its_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Repository::init_bare(dir.path()).unwrap();
        let mut scratch = Scratch::new().unwrap();
        let mut builder = Builder::new(&mut scratch);
        let one = builder.blob(b"1").unwrap();
        let two = builder.blob(b"2").unwrap();
        let first = builder
            .trees_with_file(&disk, None, &["d"], "one.md", file(one.id))
            .unwrap();
        let second = builder
            .trees_with_file(&disk, Some(first[0].id), &["d"], "two.md", file(two.id))
            .unwrap();
        let objects = Objects::new(&disk, &scratch);
        assert_eq!(
            objects.entry(second[0].id, &["d", "one.md"]).unwrap(),
            Lookup::Found(file(one.id))
        );
        assert_eq!(
            objects.entry(second[0].id, &["d", "two.md"]).unwrap(),
            Lookup::Found(file(two.id))
        );
        let mut builder = Builder::new(&mut scratch);
        let err = builder
            .trees_with_file(
                &disk,
                Some(second[0].id),
                &["d", "one.md"],
                "x.md",
                file(one.id),
            )
            .err()
            .unwrap();
        assert!(err.message().contains("is a file"), "{err}");
    }
}

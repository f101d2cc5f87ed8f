//! Git objects, read and written with as few file operations as possible.
//!
//! Reads are libgit2's, through its parsed-object cache (kept warm across invocations). New
//! objects are built in a scratch object database in memory (a libgit2 mempack), which also
//! remembers them: the next read or write in this process finds the commit and trees it just
//! wrote without touching the disk. They are then persisted as loose objects, one exclusive
//! create and one rename each. libgit2's own write path spends 8 file operations per object
//! (existence checks, a pack-directory rescan, link + unlink); on EFS each is a round trip.
//!
//! This module must not move refs (see `refs`) or decide what to write (the store does).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use git2::{Blob, Commit, ErrorCode, FileMode, ObjectType, Odb, Oid, Repository, Tree};

use super::StoreError;
use super::fs::{each_at_once, remove_if_present, write_new};

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

/// An object written to a temporary file beside its place (`xx/tmp_obj_wikibot_…`), where no
/// reader looks for it yet.
pub(crate) struct Staged {
    temporary: PathBuf,
    target: PathBuf,
}

impl Staged {
    /// Renames the object into place: from here a ref may name it.
    fn publish(self) -> io::Result<()> {
        let placed = std::fs::rename(&self.temporary, &self.target);
        if placed.is_err() {
            let _ = remove_if_present(&self.temporary);
        }
        placed
    }

    /// Removes the temporary file: the object was built for a tip that moved.
    fn discard(self) -> io::Result<()> {
        remove_if_present(&self.temporary)
    }
}

/// Writes `objects` to temporary files beside their places, all at once when `parallel`
/// (independent round trips on EFS then overlap instead of adding up). On failure what was
/// written is removed.
pub(crate) fn stage_all(
    objects_dir: &Path,
    objects: &[&NewObject],
    parallel: bool,
) -> Result<Vec<Staged>, StoreError> {
    let staged = at_once(objects.to_vec(), parallel, |object| {
        stage(objects_dir, object)
            .map_err(|e| StoreError::io(format!("writing object {}", object.id), e))
    });
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

/// Renames staged objects into place, all at once when `parallel`.
pub(crate) fn publish_all(staged: Vec<Staged>, parallel: bool) -> Result<(), StoreError> {
    at_once(staged, parallel, |staged| {
        let target = staged.target.display().to_string();
        staged
            .publish()
            .map_err(|e| StoreError::io(format!("placing object {target}"), e))
    })
    .into_iter()
    .collect()
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
    stage(objects_dir, object)?.publish()
}

/// Writes `object` as a loose object (deflated `<kind> <size>\0<data>`) to a temporary file
/// in its fan-out directory, for [`Staged::publish`] to rename to `xx/yyyy…`. The temporary
/// name starts with `tmp_obj_`, which maintenance (and `git gc`) clean up if a writer dies in
/// between.
fn stage(objects_dir: &Path, object: &NewObject) -> io::Result<Staged> {
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(object.data.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    write!(encoder, "{} {}\0", object.kind, object.data.len())?;
    encoder.write_all(&object.data)?;
    let deflated = encoder.finish()?;

    let hex = object.id.to_string();
    let (fanout, rest) = hex.split_at(2);
    // The temporary file lives in the object's own fan-out directory, as git's do: the
    // rename stays in one directory, and objects bound for different directories do not
    // queue on one directory's lock (the kernel serialises changes to a directory).
    let dir = objects_dir.join(fanout);
    let temporary = dir.join(format!("tmp_obj_wikibot_{:016x}", fastrand::u64(..)));
    match write_new(&temporary, &deflated, 0o444) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => write_new(&temporary, &deflated, 0o444)?,
        },
        other => other?,
    }
    Ok(Staged {
        temporary,
        target: dir.join(rest),
    })
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

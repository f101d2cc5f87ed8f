//! The changed-paths index: for every commit reachable from the branch when it was built,
//! its parents, its commit time, and which file paths differ from each parent. It is what
//! makes a page's history a walk in memory instead of two tree lookups per commit on disk.
//!
//! It is derived data, rebuilt or extended by maintenance (`maintain.rs`) and kept in
//! `<git dir>/wikibot/changed-paths`, written to a temporary file and renamed into place so a
//! reader sees the old index or the new one. It is never trusted to be current: history walks
//! commits newer than the index from git itself, and an index that does not parse, or whose
//! checksum does not match, is ignored. This module must not decide what history shows (see
//! `history.rs`), and must not write anything but its own file.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use super::fs::{read_if_present, replace_file};
use super::lock::WIKIBOT_DIR;

const FILE_NAME: &str = "changed-paths";
/// How the temporary files the index is written through start (maintenance removes strays).
pub(crate) const TEMPORARY_PREFIX: &str = "tmp_changed-paths_";
const MAGIC: &[u8; 8] = b"WBCHGP1\n";

/// One indexed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedCommit {
    pub id: Oid,
    /// Committer time, in seconds: what `git log` orders by.
    pub time: i64,
    /// Positions of the parents in the index, in parent order.
    pub parents: Vec<u32>,
    /// For each parent (or, for a root commit, against the empty tree: one entry), the ids of
    /// the paths whose file differs, sorted.
    pub changed: Vec<Vec<u32>>,
}

/// The whole index, in memory.
#[derive(Debug, Default)]
pub(crate) struct ChangeIndex {
    /// The branch tip the index was built from (zero for an empty index).
    pub tip: Option<Oid>,
    paths: Vec<String>,
    path_ids: HashMap<String, u32>,
    pub commits: Vec<IndexedCommit>,
    positions: HashMap<Oid, u32>,
}

impl ChangeIndex {
    pub(crate) fn path(git_dir: &Path) -> PathBuf {
        git_dir.join(WIKIBOT_DIR).join(FILE_NAME)
    }

    /// The position of a commit, if the index holds it.
    pub(crate) fn position(&self, id: Oid) -> Option<u32> {
        self.positions.get(&id).copied()
    }

    pub(crate) fn commit(&self, position: u32) -> Option<&IndexedCommit> {
        self.commits.get(position as usize)
    }

    /// The id of a tree path, if any indexed commit changed it.
    pub(crate) fn path_id(&self, tree_path: &str) -> Option<u32> {
        self.path_ids.get(tree_path).copied()
    }

    /// The tree path with this id.
    pub(crate) fn path_name(&self, id: u32) -> Option<&str> {
        self.paths.get(id as usize).map(String::as_str)
    }

    fn intern(&mut self, tree_path: &str) -> u32 {
        if let Some(id) = self.path_ids.get(tree_path) {
            return *id;
        }
        let id = u32::try_from(self.paths.len()).unwrap_or(u32::MAX);
        self.paths.push(tree_path.to_owned());
        self.path_ids.insert(tree_path.to_owned(), id);
        id
    }

    /// Adds every commit reachable from `tip` that the index lacks, diffing each against its
    /// parents. Returns the ids of the commits added, newest first as found.
    pub(crate) fn extend(&mut self, repo: &Repository, tip: Oid) -> Result<Vec<Oid>, git2::Error> {
        // Collect the unindexed commits; parents come after their children.
        let mut new = Vec::new();
        let mut pending = vec![tip];
        let mut queued = std::collections::HashSet::from([tip]);
        while let Some(id) = pending.pop() {
            if self.positions.contains_key(&id) {
                continue;
            }
            let commit = repo.find_commit(id)?;
            for parent in commit.parent_ids() {
                if !self.positions.contains_key(&parent) && queued.insert(parent) {
                    pending.push(parent);
                }
            }
            new.push(id);
        }
        // Positions first, so parents can be referred to whatever the order.
        let base = self.commits.len();
        for (offset, id) in new.iter().enumerate() {
            let position = u32::try_from(base + offset)
                .map_err(|_| git2::Error::from_str("too many commits for the index"))?;
            self.positions.insert(*id, position);
        }
        for id in &new {
            let commit = repo.find_commit(*id)?;
            let tree = commit.tree()?;
            let mut parents = Vec::new();
            let mut changed = Vec::new();
            if commit.parent_count() == 0 {
                changed.push(self.changed_paths(repo, None, &tree)?);
            }
            for parent in commit.parents() {
                let position = self
                    .position(parent.id())
                    .ok_or_else(|| git2::Error::from_str("a parent is missing from the index"))?;
                parents.push(position);
                changed.push(self.changed_paths(repo, Some(&parent.tree()?), &tree)?);
            }
            self.commits.push(IndexedCommit {
                id: *id,
                time: commit.committer().when().seconds(),
                parents,
                changed,
            });
        }
        self.tip = Some(tip);
        Ok(new)
    }

    fn changed_paths(
        &mut self,
        repo: &Repository,
        old: Option<&git2::Tree<'_>>,
        new: &git2::Tree<'_>,
    ) -> Result<Vec<u32>, git2::Error> {
        let mut options = git2::DiffOptions::new();
        options
            .skip_binary_check(true)
            .ignore_submodules(false)
            .include_typechange(true);
        let diff = repo.diff_tree_to_tree(old, Some(new), Some(&mut options))?;
        let mut ids = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(path) = file.path_bytes()
                    && !file.id().is_zero()
                {
                    ids.push(self.intern(&String::from_utf8_lossy(path)));
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Reads the index of the repository at `git_dir`; `None` if there is none or it cannot
    /// be trusted (it is derived data: the caller falls back to git).
    pub(crate) fn load(git_dir: &Path) -> io::Result<Option<Self>> {
        Ok(read_if_present(&Self::path(git_dir))?.and_then(|bytes| Self::decode(&bytes)))
    }

    /// Writes the index next to the repository, atomically.
    pub(crate) fn save(&self, git_dir: &Path) -> io::Result<()> {
        replace_file(&Self::path(git_dir), TEMPORARY_PREFIX, &self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.commits.len() * 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.tip.unwrap_or(Oid::ZERO_SHA1).as_bytes());
        put_u32(&mut out, self.paths.len());
        for path in &self.paths {
            put_u32(&mut out, path.len());
            out.extend_from_slice(path.as_bytes());
        }
        put_u32(&mut out, self.commits.len());
        for commit in &self.commits {
            out.extend_from_slice(commit.id.as_bytes());
            out.extend_from_slice(&commit.time.to_le_bytes());
            put_u32(&mut out, commit.parents.len());
            for parent in &commit.parents {
                put_u32(&mut out, *parent as usize);
            }
            put_u32(&mut out, commit.changed.len());
            for ids in &commit.changed {
                put_u32(&mut out, ids.len());
                for id in ids {
                    put_u32(&mut out, *id as usize);
                }
            }
        }
        let checksum = Oid::hash_object(git2::ObjectType::Blob, &out).unwrap_or(Oid::ZERO_SHA1);
        out.extend_from_slice(checksum.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(20)?)?;
        if Oid::hash_object(git2::ObjectType::Blob, body)
            .ok()?
            .as_bytes()
            != checksum
        {
            return None;
        }
        let mut reader = Reader(body);
        if reader.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let tip = Oid::from_bytes(reader.take(20)?).ok()?;
        let mut index = Self {
            tip: (!tip.is_zero()).then_some(tip),
            ..Self::default()
        };
        for id in 0..reader.u32()? {
            let length = reader.u32()? as usize;
            let path = std::str::from_utf8(reader.take(length)?).ok()?.to_owned();
            index.path_ids.insert(path.clone(), id);
            index.paths.push(path);
        }
        let count = reader.u32()?;
        for position in 0..count {
            let id = Oid::from_bytes(reader.take(20)?).ok()?;
            let time = i64::from_le_bytes(reader.take(8)?.try_into().ok()?);
            let parents = (0..reader.u32()?)
                .map(|_| reader.u32().filter(|p| *p < count))
                .collect::<Option<Vec<u32>>>()?;
            let mut changed = Vec::new();
            for _ in 0..reader.u32()? {
                let ids = (0..reader.u32()?)
                    .map(|_| reader.u32())
                    .collect::<Option<Vec<u32>>>()?;
                changed.push(ids);
            }
            index.positions.insert(id, position);
            index.commits.push(IndexedCommit {
                id,
                time,
                parents,
                changed,
            });
        }
        reader.0.is_empty().then_some(index)
    }
}

fn put_u32(out: &mut Vec<u8>, value: usize) {
    let value = u32::try_from(value).unwrap_or(u32::MAX);
    out.extend_from_slice(&value.to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_or_truncated_index_is_ignored_not_trusted() {
        let mut index = ChangeIndex {
            tip: Some(Oid::from_bytes(&[1; 20]).unwrap()),
            ..ChangeIndex::default()
        };
        let a = index.intern("a.md");
        index.commits.push(IndexedCommit {
            id: Oid::from_bytes(&[1; 20]).unwrap(),
            time: 5,
            parents: vec![],
            changed: vec![vec![a]],
        });
        let bytes = index.encode();
        let decoded = ChangeIndex::decode(&bytes).expect("round trip");
        assert_eq!(decoded.commits, index.commits);
        assert_eq!(decoded.path_id("a.md"), Some(a));
        assert_eq!(decoded.tip, index.tip);
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(ChangeIndex::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(ChangeIndex::decode(&flipped).is_none());
    }
}

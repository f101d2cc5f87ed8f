//! Page and wiki history: the commits `git log -- <page>.md` (or plain `git log`) lists,
//! newest first, found within a time budget and resumable from a cursor.
//!
//! The walk is git's own (revision.c): a queue ordered by commit time, ties first-in
//! first-out; a commit whose page file is the same as in one of its parents ("TREESAME") is
//! not shown, and only the first such parent is followed, which is git's default history
//! simplification; other commits are shown. A root commit is shown if the page exists in it.
//! Whether a commit changed the page comes from the changed-paths index (`changes.rs`) for
//! the commits it holds, and from git (two tree lookups) for newer ones. A page path is
//! matched literally, as `git log -- ':(literal)<page>.md'` would.
//!
//! This module must not write anything, and must stop at the deadline: it returns what it
//! found with a cursor rather than outrun the request.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

use git2::Oid;

use super::changes::ChangeIndex;
use super::objects::Objects;
use super::{PagePath, StoreError};

/// Where a walk stopped: the commits still queued, in the order git would take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor(Vec<Oid>);

impl HistoryCursor {
    /// Longest cursor accepted back: a walk through many merges could queue more.
    const MAX_COMMITS: usize = 64;

    /// Parses a cursor handed out by an earlier call.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let invalid = || {
            StoreError::InvalidInput(format!(
                "cursor {:?} is not one this wiki handed out; pass back the `next_cursor` of a \
                 history call unchanged",
                raw.chars().take(60).collect::<String>()
            ))
        };
        let ids = raw
            .strip_prefix("h1.")
            .ok_or_else(invalid)?
            .split('.')
            .map(|hex| {
                (hex.len() == 40)
                    .then(|| Oid::from_str(hex).ok())
                    .flatten()
                    .ok_or_else(invalid)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() || ids.len() > Self::MAX_COMMITS {
            return Err(invalid());
        }
        Ok(Self(ids))
    }
}

impl HistoryCursor {
    pub(crate) fn commits(&self) -> &[Oid] {
        &self.0
    }
}

impl std::fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("h1")?;
        for id in &self.0 {
            write!(f, ".{id}")?;
        }
        Ok(())
    }
}

/// What one walk found.
pub(crate) struct Walked {
    pub commits: Vec<Oid>,
    /// Where to continue, if there may be more.
    pub next: Option<HistoryCursor>,
    /// The walk stopped because the deadline passed (not because it had `limit` commits).
    pub out_of_time: bool,
}

/// A commit in the queue, ordered as git's `prio_queue` orders them: newer first, then
/// first queued first.
#[derive(PartialEq, Eq)]
struct Queued {
    time: i64,
    order: Reverse<u64>,
    id: Oid,
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, &self.order).cmp(&(other.time, &other.order))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What the walk needs to know of a commit.
struct Node {
    parents: Vec<Oid>,
    /// For each parent (one entry against the empty tree for a root): does the page differ?
    differs: Vec<bool>,
}

pub(crate) struct Walk<'a> {
    pub objects: &'a Objects<'a>,
    pub index: Option<&'a ChangeIndex>,
    /// `None`: the whole wiki (every commit is shown).
    pub page: Option<&'a PagePath>,
    pub limit: usize,
    pub deadline: Instant,
}

impl Walk<'_> {
    /// Walks from `start` (the branch tip, or a cursor's commits).
    pub(crate) fn run(&self, start: &[Oid]) -> Result<Walked, StoreError> {
        let tree_path = self.page.map(PagePath::tree_path);
        let path_id = match (&tree_path, self.index) {
            (Some(path), Some(index)) => index.path_id(path),
            _ => None,
        };
        let mut queue = BinaryHeap::new();
        let mut seen = HashSet::new();
        let mut order = 0u64;
        for id in start {
            if seen.insert(*id) {
                queue.push(Queued {
                    time: self.time(*id)?,
                    order: Reverse(order),
                    id: *id,
                });
                order += 1;
            }
        }
        let mut shown = Vec::new();
        let mut out_of_time = false;
        let mut steps = 0u32;
        while shown.len() < self.limit {
            // A page no indexed commit ever changed cannot show up among indexed commits.
            if self.page.is_some()
                && path_id.is_none()
                && let Some(index) = self.index
                && queue
                    .iter()
                    .all(|q: &Queued| index.position(q.id).is_some())
            {
                queue.clear();
            }
            steps += 1;
            if steps.is_multiple_of(64) && Instant::now() >= self.deadline {
                out_of_time = true;
                break;
            }
            let Some(Queued { id, .. }) = queue.pop() else {
                break;
            };
            let node = self.node(id, tree_path.as_deref(), path_id)?;
            // git's default simplification: follow the first parent the page is the same in.
            let same = node
                .parents
                .iter()
                .zip(&node.differs)
                .find(|(_, differs)| !**differs)
                .map(|(parent, _)| *parent);
            let (show, follow) = match (self.page, same) {
                (None, _) => (true, node.parents.clone()),
                (Some(_), Some(parent)) => (false, vec![parent]),
                (Some(_), None) if node.parents.is_empty() => {
                    (node.differs.first().copied().unwrap_or(false), Vec::new())
                }
                (Some(_), None) => (true, node.parents.clone()),
            };
            for parent in follow {
                if seen.insert(parent) {
                    queue.push(Queued {
                        time: self.time(parent)?,
                        order: Reverse(order),
                        id: parent,
                    });
                    order += 1;
                }
            }
            if show {
                shown.push(id);
            }
            if !out_of_time && Instant::now() >= self.deadline && self.is_unindexed(id) {
                // Unindexed commits are the slow ones: check the clock after each.
                out_of_time = true;
                break;
            }
        }
        let mut rest: Vec<Queued> = queue.into_vec();
        rest.sort_by(|a, b| b.cmp(a));
        let next = (!rest.is_empty())
            .then(|| HistoryCursor(rest.iter().map(|q| q.id).collect()))
            .filter(|cursor| cursor.0.len() <= HistoryCursor::MAX_COMMITS);
        if next.is_none() && !rest.is_empty() {
            return Err(StoreError::InvalidInput(
                "this history branches into too many merged lines to page through; ask for a \
                 larger limit"
                    .into(),
            ));
        }
        Ok(Walked {
            commits: shown,
            next,
            out_of_time,
        })
    }

    fn is_unindexed(&self, id: Oid) -> bool {
        self.index.is_none_or(|index| index.position(id).is_none())
    }

    fn time(&self, id: Oid) -> Result<i64, StoreError> {
        if let Some(index) = self.index
            && let Some(commit) = index.position(id).and_then(|p| index.commit(p))
        {
            return Ok(commit.time);
        }
        Ok(self.objects.commit(id)?.committer().when().seconds())
    }

    fn node(
        &self,
        id: Oid,
        tree_path: Option<&str>,
        path_id: Option<u32>,
    ) -> Result<Node, StoreError> {
        if let Some(index) = self.index
            && let Some(commit) = index.position(id).and_then(|p| index.commit(p))
        {
            let parents = commit
                .parents
                .iter()
                .filter_map(|p| index.commit(*p).map(|c| c.id))
                .collect();
            let differs = commit
                .changed
                .iter()
                .map(|ids| path_id.is_some_and(|path| ids.binary_search(&path).is_ok()))
                .collect();
            return Ok(Node { parents, differs });
        }
        let commit = self.objects.commit(id)?;
        let parents: Vec<Oid> = commit.parent_ids().collect();
        let Some(tree_path) = tree_path else {
            let differs = vec![true; parents.len().max(1)];
            return Ok(Node { parents, differs });
        };
        let components: Vec<&str> = tree_path.split('/').collect();
        let mine = self.objects.entry(commit.tree_id(), &components)?;
        let differs = if parents.is_empty() {
            vec![mine != super::objects::Lookup::Absent]
        } else {
            parents
                .iter()
                .map(|parent| {
                    let tree = self.objects.commit(*parent)?.tree_id();
                    Ok(self.objects.entry(tree, &components)? != mine)
                })
                .collect::<Result<Vec<bool>, StoreError>>()?
        };
        Ok(Node { parents, differs })
    }
}

/// Commits older than `since` seen in a row before a walk for recent changes stops: git's
/// `--since` slop, for clocks that went backwards.
const SINCE_SLOP: usize = 5;

/// For each file path that a commit at or after `since` (commit time, seconds) changed,
/// reachable from `tip`: the time of the newest such commit. A commit changed a path when
/// the path differs from every parent (so a merge counts only for what it resolved itself:
/// what it brought in, the merged branch's commits changed); a root commit changed every
/// path it has. The walk goes newest first and stops after [`SINCE_SLOP`] older commits in a
/// row, as `git log --since` does.
pub(crate) fn changed_since(
    objects: &Objects<'_>,
    index: Option<&ChangeIndex>,
    tip: Oid,
    since: i64,
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let time = |id: Oid| -> Result<i64, StoreError> {
        if let Some(index) = index
            && let Some(commit) = index.position(id).and_then(|p| index.commit(p))
        {
            return Ok(commit.time);
        }
        Ok(objects.commit(id)?.committer().when().seconds())
    };
    let mut changed = std::collections::HashMap::new();
    let mut queue = BinaryHeap::new();
    let mut seen = HashSet::from([tip]);
    let mut order = 0u64;
    queue.push(Queued {
        time: time(tip)?,
        order: Reverse(order),
        id: tip,
    });
    let mut older_in_a_row = 0;
    while let Some(Queued { time: when, id, .. }) = queue.pop() {
        if when < since {
            older_in_a_row += 1;
            if older_in_a_row >= SINCE_SLOP {
                break;
            }
            continue;
        }
        older_in_a_row = 0;
        let (parents, paths) = touched(objects, index, id)?;
        for path in paths {
            let newest = changed.entry(path).or_insert(when);
            *newest = (*newest).max(when);
        }
        for parent in parents {
            if seen.insert(parent) {
                order += 1;
                queue.push(Queued {
                    time: time(parent)?,
                    order: Reverse(order),
                    id: parent,
                });
            }
        }
    }
    Ok(changed)
}

/// A commit's parents, and the file paths it changed (differ from every parent).
fn touched(
    objects: &Objects<'_>,
    index: Option<&ChangeIndex>,
    id: Oid,
) -> Result<(Vec<Oid>, Vec<String>), StoreError> {
    if let Some(index) = index
        && let Some(commit) = index.position(id).and_then(|p| index.commit(p))
    {
        let parents = commit
            .parents
            .iter()
            .filter_map(|p| index.commit(*p).map(|c| c.id))
            .collect();
        let mut lists = commit.changed.iter();
        let mut common: Vec<u32> = lists.next().cloned().unwrap_or_default();
        for other in lists {
            common.retain(|path| other.binary_search(path).is_ok());
        }
        let paths = common
            .iter()
            .filter_map(|path| index.path_name(*path).map(str::to_owned))
            .collect();
        return Ok((parents, paths));
    }
    let commit = objects.commit(id)?;
    let tree = commit.tree_id();
    let parents: Vec<Oid> = commit.parent_ids().collect();
    drop(commit);
    let mut common: Option<Vec<String>> = None;
    let parent_trees: Vec<Option<Oid>> = if parents.is_empty() {
        vec![None]
    } else {
        parents
            .iter()
            .map(|p| objects.commit(*p).map(|c| Some(c.tree_id())))
            .collect::<Result<_, _>>()?
    };
    for parent_tree in parent_trees {
        let paths: Vec<String> =
            super::page_index::changed_files(objects, parent_tree, Some(tree))?
                .into_iter()
                .map(|(path, _)| path)
                .collect();
        common = Some(match common {
            None => paths,
            Some(mut so_far) => {
                so_far.retain(|p| paths.contains(p));
                so_far
            }
        });
    }
    Ok((parents, common.unwrap_or_default()))
}

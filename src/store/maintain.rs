//! Maintenance: keeps a wiki's repository small and its history fast as it grows, while other
//! processes read and write it.
//!
//! One run (under the maintenance mutex, so runs never overlap):
//! 1. extends the changed-paths index (`changes.rs`) to the branch tip;
//! 2. packs the objects of the commits it just indexed into a new pack, placed as git places
//!    one (the `.pack`, then the `.idx` that makes readers see it);
//! 3. merges small packs geometrically (each kept pack at least twice the next smaller one),
//!    so a reader never has many to open; merged packs are marked retired, not deleted;
//! 4. deletes, only once they are older than the grace period, what is redundant: loose
//!    objects that an old-enough pack holds, retired packs, and temporary files of killed
//!    writers.
//!
//! The grace period outlasts both the longest invocation (900 s) and the NFS caches of other
//! clients (≈ 60 s): a process that has not seen a new pack yet still finds its loose objects,
//! and one that still reads a retired pack has reopened the repository before it goes
//! (`Wiki` reopens after `StoreConfig::reopen_after`). Nothing unpacked is ever deleted, so a
//! writer's objects are safe whatever it is about to do with them. git's own `gc` remains safe
//! to run beside this. This module must not move refs or write pages.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use git2::{ObjectType, Oid, Repository};

use super::StoreError;
use super::changes::ChangeIndex;
use super::fs::remove_if_present;

/// A pack that a later run merged into a bigger one: `pack-<hash>.retired` beside it.
const RETIRED_SUFFIX: &str = ".retired";

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Redundant files are deleted only once older than this.
    pub grace: Duration,
}

impl MaintainOptions {
    /// 900 s (the longest Lambda invocation) + 60 s (NFS attribute and lookup caches) +
    /// a margin.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(20 * 60);
}

impl Default for MaintainOptions {
    fn default() -> Self {
        Self {
            grace: Self::DEFAULT_GRACE,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceReport {
    /// Another run held the maintenance mutex, so this one did nothing.
    pub skipped: bool,
    /// Commits added to the changed-paths index.
    pub commits_indexed: usize,
    pub objects_packed: usize,
    /// The pack written for new objects, if any.
    pub new_pack: Option<String>,
    /// Packs merged into one bigger pack (and retired).
    pub packs_merged: usize,
    pub loose_objects_removed: usize,
    pub packs_removed: usize,
    pub temporary_files_removed: usize,
    /// Live packs after the run.
    pub packs: usize,
    /// The saved page index (search, links, frontmatter) was brought to the tip and written.
    pub page_index_saved: bool,
}

/// One run; the caller holds the maintenance mutex and passes the branch tip.
pub(crate) fn run(
    git_dir: &Path,
    repo: &Repository,
    tip: Option<Oid>,
    options: &MaintainOptions,
) -> Result<MaintenanceReport, StoreError> {
    let mut report = MaintenanceReport::default();
    let pack_dir = git_dir.join("objects").join("pack");
    let io_error = |what: &str| {
        let what = what.to_owned();
        move |e: io::Error| StoreError::io(what, e)
    };
    if let Some(tip) = tip {
        let mut index = ChangeIndex::load(git_dir)
            .map_err(io_error("reading the changed-paths index"))?
            .unwrap_or_default();
        let added = index.extend(repo, tip)?;
        report.commits_indexed = added.len();
        let objects = new_objects(repo, &added)?;
        report.objects_packed = objects.len();
        if !objects.is_empty() {
            report.new_pack = Some(write_pack(repo, &pack_dir, &objects)?);
        }
        // The pack first: an index that names commits whose objects are only loose is fine,
        // but history must never wait on a pack that was not written.
        if !added.is_empty() {
            index
                .save(git_dir)
                .map_err(io_error("writing the changed-paths index"))?;
        }
    }
    report.packs_merged = merge_small_packs(repo, &pack_dir)?;
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    report.packs_removed =
        remove_retired_packs(&pack_dir, cutoff).map_err(io_error("removing retired packs"))?;
    report.loose_objects_removed = remove_packed_loose_objects(git_dir, &pack_dir, cutoff)
        .map_err(io_error("removing packed loose objects"))?;
    report.temporary_files_removed =
        remove_temporary_files(git_dir, cutoff).map_err(io_error("removing temporary files"))?;
    report.packs = live_packs(&pack_dir)
        .map_err(io_error("listing packs"))?
        .len();
    Ok(report)
}

/// The objects the given commits brought: each commit, and every tree and blob of its tree
/// that its first parent's tree does not have at the same place.
fn new_objects(repo: &Repository, commits: &[Oid]) -> Result<Vec<Oid>, git2::Error> {
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    for id in commits {
        let commit = repo.find_commit(*id)?;
        let parent_tree = match commit.parent_ids().next() {
            Some(parent) => Some(repo.find_commit(parent)?.tree_id()),
            None => None,
        };
        if seen.insert(*id) {
            objects.push(*id);
        }
        collect_tree(repo, commit.tree_id(), parent_tree, &mut seen, &mut objects)?;
    }
    Ok(objects)
}

fn collect_tree(
    repo: &Repository,
    tree: Oid,
    old: Option<Oid>,
    seen: &mut HashSet<Oid>,
    out: &mut Vec<Oid>,
) -> Result<(), git2::Error> {
    if Some(tree) == old || !seen.insert(tree) {
        return Ok(());
    }
    out.push(tree);
    let old_tree = old.map(|id| repo.find_tree(id)).transpose()?;
    for entry in repo.find_tree(tree)?.iter() {
        let before = old_tree
            .as_ref()
            .and_then(|t| t.get_name_bytes(entry.name_bytes()))
            .map(|e| (e.id(), e.kind()));
        if before.map(|(id, _)| id) == Some(entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let old_subtree = before
                    .filter(|(_, kind)| *kind == Some(ObjectType::Tree))
                    .map(|(id, _)| id);
                collect_tree(repo, entry.id(), old_subtree, seen, out)?;
            }
            Some(ObjectType::Blob) if seen.insert(entry.id()) => out.push(entry.id()),
            // Submodules point outside the repository.
            _ => {}
        }
    }
    Ok(())
}

/// Writes `objects` as one pack into `pack_dir`, placed as git places packs: written in a
/// temporary directory, then the `.pack` and last the `.idx` renamed in. Returns its name.
fn write_pack(repo: &Repository, pack_dir: &Path, objects: &[Oid]) -> Result<String, StoreError> {
    let mut builder = repo.packbuilder()?;
    builder.set_threads(0);
    for id in objects {
        builder.insert_object(*id, None)?;
    }
    std::fs::create_dir_all(pack_dir).map_err(|e| StoreError::io("creating objects/pack", e))?;
    let staging = pack_dir.join(format!("tmp_wikibot_{:016x}", fastrand::u64(..)));
    std::fs::create_dir(&staging).map_err(|e| StoreError::io("creating a staging directory", e))?;
    let placed = (|| {
        builder.write(&staging, 0o444)?;
        let name = builder
            .name()?
            .map(|hash| format!("pack-{hash}"))
            .ok_or_else(|| git2::Error::from_str("the pack was written without a name"))?;
        for suffix in [".pack", ".idx"] {
            let file = format!("{name}{suffix}");
            std::fs::rename(staging.join(&file), pack_dir.join(&file))
                .map_err(|e| StoreError::io(format!("placing {file}"), e))?;
        }
        Ok::<_, StoreError>(name)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    placed
}

/// A live pack: its name (`pack-<hash>`) and how many objects it holds.
struct Pack {
    name: String,
    objects: u32,
}

fn live_packs(pack_dir: &Path) -> io::Result<Vec<Pack>> {
    let entries = match std::fs::read_dir(pack_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let names: HashSet<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let mut packs = Vec::new();
    for file in &names {
        let Some(name) = file.strip_suffix(".idx") else {
            continue;
        };
        let retired = names.contains(&format!("{name}{RETIRED_SUFFIX}"));
        let kept = names.contains(&format!("{name}.keep"));
        if !name.starts_with("pack-") || retired || kept || !names.contains(&format!("{name}.pack"))
        {
            continue;
        }
        let objects = idx_object_count(&pack_dir.join(file))?;
        packs.push(Pack {
            name: name.to_owned(),
            objects,
        });
    }
    packs.sort_by(|a, b| (a.objects, &a.name).cmp(&(b.objects, &b.name)));
    Ok(packs)
}

/// Merges the small packs into one when the packs, smallest first, stop growing at least
/// twofold (git's `repack --geometric=2`). Returns how many packs were merged.
fn merge_small_packs(repo: &Repository, pack_dir: &Path) -> Result<usize, StoreError> {
    let packs = live_packs(pack_dir).map_err(|e| StoreError::io("listing packs", e))?;
    let sizes: Vec<u64> = packs.iter().map(|p| u64::from(p.objects)).collect();
    let split = geometric_split(&sizes);
    if split < 2 {
        return Ok(0);
    }
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    for pack in &packs[..split] {
        let ids = idx_object_ids(&pack_dir.join(format!("{}.idx", pack.name)))
            .map_err(|e| StoreError::io(format!("reading {}.idx", pack.name), e))?;
        objects.extend(ids.into_iter().filter(|id| seen.insert(*id)));
    }
    let merged = write_pack(repo, pack_dir, &objects)?;
    for pack in &packs[..split] {
        if pack.name != merged {
            let marker = pack_dir.join(format!("{}{RETIRED_SUFFIX}", pack.name));
            std::fs::write(&marker, b"")
                .map_err(|e| StoreError::io(format!("retiring {}", pack.name), e))?;
        }
    }
    Ok(split)
}

/// How many of the smallest packs (sizes ascending) to merge so that what remains, with the
/// merged pack, grows at least twofold from each pack to the next.
fn geometric_split(sizes: &[u64]) -> usize {
    // From the top, find the first place the progression breaks.
    let mut split = 0;
    for i in (1..sizes.len()).rev() {
        if sizes[i] < 2 * sizes[i - 1].max(1) {
            split = i;
            break;
        }
    }
    // Everything below `split` merges; roll up further while the merged pack would not be
    // at most half of the next one.
    let mut merged: u64 = sizes[..split].iter().sum();
    while split < sizes.len() && merged * 2 > sizes[split] {
        merged += sizes[split];
        split += 1;
    }
    split
}

fn remove_retired_packs(pack_dir: &Path, cutoff: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    for marker in files_with_suffix(pack_dir, RETIRED_SUFFIX)? {
        if modified(&marker)? > cutoff {
            continue;
        }
        let base = marker
            .to_string_lossy()
            .trim_end_matches(RETIRED_SUFFIX)
            .to_owned();
        // The index first: a reader that lists packs then no longer finds this one.
        for suffix in [".idx", ".pack", ".rev", ".bitmap"] {
            remove_if_present(Path::new(&format!("{base}{suffix}")))?;
        }
        remove_if_present(&marker)?;
        removed += 1;
    }
    Ok(removed)
}

/// Deletes loose objects that a pack older than `cutoff` also holds.
fn remove_packed_loose_objects(
    git_dir: &Path,
    pack_dir: &Path,
    cutoff: SystemTime,
) -> io::Result<usize> {
    let mut packed = HashSet::new();
    for idx in files_with_suffix(pack_dir, ".idx")? {
        let pack = idx.with_extension("pack");
        if modified(&idx)? <= cutoff && pack.exists() {
            packed.extend(idx_object_ids(&idx)?);
        }
    }
    if packed.is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    let objects = git_dir.join("objects");
    for fanout in 0..=255u8 {
        let dir = objects.join(format!("{fanout:02x}"));
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(rest) = name.to_str() else { continue };
            let hex = format!("{fanout:02x}{rest}");
            if let Ok(id) = Oid::from_str(&hex)
                && hex.len() == 40
                && packed.contains(&id)
            {
                remove_if_present(&entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Temporary files of killed writers and maintenance runs: loose-object and index temporaries,
/// and staging directories of packs.
fn remove_temporary_files(git_dir: &Path, cutoff: SystemTime) -> io::Result<usize> {
    let objects = git_dir.join("objects");
    let mut dirs = vec![
        objects.clone(),
        objects.join("pack"),
        git_dir.join(super::lock::WIKIBOT_DIR),
    ];
    dirs.extend((0..=255u8).map(|fanout| objects.join(format!("{fanout:02x}"))));
    let mut removed = 0;
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = name.starts_with("tmp_obj_")
                || name.starts_with("tmp_wikibot_")
                || name.starts_with(super::changes::TEMPORARY_PREFIX)
                || name.starts_with(super::page_index::TEMPORARY_PREFIX);
            if !ours {
                continue;
            }
            // A writer may put its staged object in place (or a killed writer's file be
            // removed by another run) between the listing and here: gone is fine.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.modified()? > cutoff {
                continue;
            }
            let gone = if meta.is_dir() {
                std::fs::remove_dir_all(entry.path())
            } else {
                remove_if_present(&entry.path())
            };
            match gone {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.to_string_lossy().ends_with(suffix))
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn modified(path: &Path) -> io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// The object count of a version 2 pack index: the last fan-out entry.
fn idx_object_count(idx: &Path) -> io::Result<u32> {
    let mut header = [0u8; 8 + 256 * 4];
    std::fs::File::open(idx)?.read_exact(&mut header)?;
    check_idx_header(&header)?;
    let last = &header[8 + 255 * 4..];
    Ok(u32::from_be_bytes([last[0], last[1], last[2], last[3]]))
}

/// Every object id in a version 2 pack index (gitformat-pack(5)).
fn idx_object_ids(idx: &Path) -> io::Result<Vec<Oid>> {
    let bytes = std::fs::read(idx)?;
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not a version 2 pack index");
    let header = bytes.get(..8 + 256 * 4).ok_or_else(invalid)?;
    check_idx_header(header)?;
    let last = &header[8 + 255 * 4..];
    let count = u32::from_be_bytes([last[0], last[1], last[2], last[3]]) as usize;
    let start = 8 + 256 * 4;
    let table = bytes.get(start..start + count * 20).ok_or_else(invalid)?;
    table
        .chunks_exact(20)
        .map(|raw| Oid::from_bytes(raw).map_err(|_| invalid()))
        .collect()
}

fn check_idx_header(header: &[u8]) -> io::Result<()> {
    if header.get(..8) == Some(&[0xff, b't', b'O', b'c', 0, 0, 0, 2]) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a version 2 pack index",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_split_merges_only_what_breaks_the_progression() {
        assert_eq!(geometric_split(&[]), 0);
        assert_eq!(geometric_split(&[100]), 0);
        assert_eq!(geometric_split(&[10, 100, 1000]), 0);
        // Two small packs below a big one: merge the two.
        assert_eq!(geometric_split(&[10, 12, 1000]), 2);
        // Rolling up: the merged pack would exceed half of the next, so it joins in.
        assert_eq!(geometric_split(&[10, 12, 30, 1000]), 3);
        assert_eq!(geometric_split(&[50, 60, 70, 100]), 4);
    }
}

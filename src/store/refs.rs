//! The branch ref: read it, and move it by compare-and-swap under git's own lock protocol
//! (create `<ref>.lock` exclusively, check the current value, write, rename over the ref).
//!
//! A swap is only ever attempted by the holder of the wiki's writer mutex (`lock.rs`), so no
//! two wikibot writers are ever inside it at once, however long one of them stalls. git's
//! `<ref>.lock` is still taken, because that is what stops the git CLI. Our lock files are
//! created read-only (no owner write bit, which git's never lack), so a mutex holder that finds
//! one knows its creator is dead (it would still hold the mutex otherwise) and removes it at
//! once; a lock file without the mark belongs to another program (a person's git) and is
//! respected until it is older than the stale age. The reasoning, and the schedules it was
//! checked against, are in `docs/decisions/0003-ref-updates.md`.
//!
//! A loose ref is read with one open; a ref that only exists in `packed-refs` (after `git gc`)
//! is read from there and then shadowed by the loose ref, as git does. A ref file whose stamp
//! (`RefMemo`) shows it is the one this process last read or wrote is not read again: the
//! open alone, which revalidates the file on NFS, tells. This module must not
//! decide when to retry, and must not be called without the writer mutex.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use git2::Oid;

use super::fs::{append, at_once, close, create_new, remove_if_present};

/// The mode of the lock files wikibot creates: no owner write bit marks them as ours.
const OUR_LOCK_MODE: u32 = 0o444;

/// What a compare-and-swap did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Swap {
    Done,
    /// The ref no longer had the expected value once locked (it had this one); nothing was
    /// changed by us, though someone may have published our lock file early.
    Moved(Option<Oid>),
    /// Our lock file vanished before the rename: someone else's late rename may have published
    /// it. The ref's value now is carried so the caller can tell whether our commit landed.
    Vanished(Option<Oid>),
}

/// One line for the ref's reflog, written when the update lands (git's rules decide whether
/// there is one; see `Reflog`).
pub(crate) struct ReflogEntry<'a> {
    pub who: &'a str,
    pub seconds: i64,
    pub message: &'a str,
}

/// Where reflog lines go for a branch, decided once when the repository is opened.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reflog {
    /// `logs/<branch>`, when the branch's updates are logged.
    pub branch_log: Option<PathBuf>,
    /// `logs/HEAD`, when updates of the branch HEAD names are logged there too.
    pub head_log: Option<PathBuf>,
}

impl Reflog {
    /// git's rules (refs/files-backend.c `should_autocreate_reflog` and `log_ref_setup`): a
    /// ref's update is logged if its log file exists, or if `core.logAllRefUpdates` is `always`,
    /// or `true` for branches and HEAD. Bare repositories default to `false`.
    pub(crate) fn decide(git_dir: &Path, branch: &str, setting: Option<&str>) -> Self {
        let setting = setting.map(str::to_ascii_lowercase);
        let auto = matches!(
            setting.as_deref(),
            Some("always" | "true" | "yes" | "on" | "1")
        );
        let log = |name: &str| {
            let path = git_dir.join("logs").join(name);
            (auto || path.is_file()).then_some(path)
        };
        Self {
            branch_log: log(branch),
            head_log: log("HEAD"),
        }
    }

    fn write(&self, old: Option<Oid>, new: Oid, entry: &ReflogEntry<'_>) -> io::Result<()> {
        let old = old.unwrap_or(Oid::ZERO_SHA1);
        let message: String = entry
            .message
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let line = format!(
            "{old} {new} {} {} +0000\t{message}\n",
            entry.who, entry.seconds
        );
        for log in [&self.branch_log, &self.head_log].into_iter().flatten() {
            append(log, line.as_bytes())?;
        }
        Ok(())
    }
}

/// Identifies one version of a loose ref file. git and wikibot never change a ref file in
/// place (every update renames a new file over the ref; a rename keeps the file's
/// modification time), so two files with the same stamp hold the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl RefStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// The ref file this process last read or wrote, and its value. Reading a ref costs an open
/// and a read, a round trip each on EFS unless the NFS client still has the page; after our
/// own update it does not (the rename changes the file's attributes). The open's attributes
/// (NFS revalidates them on every open) and this memo stand in for the read.
#[derive(Debug, Default)]
pub(crate) struct RefMemo(Mutex<Option<(RefStamp, Oid)>>);

impl RefMemo {
    fn recall(&self, stamp: RefStamp) -> Option<Oid> {
        let memo = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.and_then(|(known, value)| (known == stamp).then_some(value))
    }

    /// The value last read or written, wherever the ref is now.
    pub(crate) fn value(&self) -> Option<Oid> {
        let memo = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.map(|(_, value)| value)
    }

    fn remember(&self, stamp: RefStamp, value: Oid) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stamp, value));
    }
}

/// The commit `name` points at, if the ref exists.
pub(crate) fn read(git_dir: &Path, name: &str, memo: &RefMemo) -> io::Result<Option<Oid>> {
    match read_loose(&git_dir.join(name), memo) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => read_packed(git_dir, name),
        // A file where a directory of the ref's path should be (`refs/heads` is a file).
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => read_packed(git_dir, name),
        Err(e) => Err(e),
    }
}

/// A loose ref's value: one open, then its stamp from the open descriptor (no round trip:
/// the open brought the attributes), and the read only if the memo does not know the file.
fn read_loose(path: &Path, memo: &RefMemo) -> io::Result<Oid> {
    let file = std::fs::File::open(path)?;
    let stamp = RefStamp::of(&file.metadata()?);
    if let Some(value) = memo.recall(stamp) {
        return Ok(value);
    }
    let value = parse_loose(&read_small(file)?)?;
    memo.remember(stamp, value);
    Ok(value)
}

/// Reads an open file of at most 128 bytes without a stat (`std::fs::read` stats for a size
/// hint: one more round trip on NFS). A valid loose ref is 41 bytes.
fn read_small(mut file: std::fs::File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buffer = [0u8; 128];
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(buffer[..filled].to_vec())
}

/// git's lock on a ref, held by us: the lock file, created empty and kept open.
pub(crate) struct RefLock {
    lock: PathBuf,
    file: File,
    /// The lock file's device and inode: a late rename may make it the ref itself.
    inode: (u64, u64),
}

/// What trying to lock a ref found.
pub(crate) enum Taken {
    Held(RefLock),
    /// Another program (not wikibot) holds `<ref>.lock`.
    Foreign {
        age: Duration,
    },
}

/// Takes git's lock on ref `name`: creates `<ref>.lock`, empty, for
/// [`RefLock::fill_and_confirm`] to fill. The caller holds the writer mutex. A
/// lock file left by a dead wikibot writer is removed; one of another program's is removed
/// only once it is older than `stale_after`.
pub(crate) fn lock(git_dir: &Path, name: &str, stale_after: Duration) -> io::Result<Taken> {
    let lock = git_dir.join(format!("{name}.lock"));
    let mut made_parent = false;
    // Each turn either takes the lock, or removes one obstacle; two obstacles in a row
    // (someone keeps recreating it) are answered as a foreign lock.
    for _ in 0..3 {
        match create_new(&lock, OUR_LOCK_MODE) {
            Ok(file) => {
                // From the descriptor: the create's reply brought the attributes.
                let inode = match file.metadata() {
                    Ok(meta) => (meta.dev(), meta.ino()),
                    Err(e) => {
                        remove_if_present(&lock)?;
                        return Err(e);
                    }
                };
                return Ok(Taken::Held(RefLock { lock, file, inode }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !made_parent => {
                // `refs/heads/` can be missing: tools that drop empty directories, or a
                // repository whose refs are all packed. git recreates it; so do we.
                if let Some(parent) = lock.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                made_parent = true;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match LockFile::inspect(&lock)? {
                    None => {}
                    Some(found) if found.is_ours() => {
                        // We hold the writer mutex, so the wikibot writer that made it is dead.
                        found.remove_if_unchanged(&lock)?;
                        tracing::warn!(lock = %lock.display(), "removed the lock of a dead wikibot writer");
                    }
                    Some(found) if found.age() >= stale_after => {
                        found.remove_if_unchanged(&lock)?;
                        tracing::warn!(lock = %lock.display(), age_s = found.age().as_secs(),
                            "removed an abandoned lock of another program");
                    }
                    Some(found) => return Ok(Taken::Foreign { age: found.age() }),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(match LockFile::inspect(&lock)? {
        Some(found) => Taken::Foreign { age: found.age() },
        None => Taken::Foreign {
            age: Duration::ZERO,
        },
    })
}

impl RefLock {
    /// Writes `new`, the value the ref is to get, into the lock file (through the open
    /// descriptor) and reads the ref again: at once when `parallel`, each being a round trip
    /// on EFS. The caller built `new` on `expected`, which it read under the writer mutex,
    /// so the lock's content is right even before the check; the check, now that git's lock
    /// keeps everyone else's updates out, is the compare-and-swap against a person's git. If
    /// the ref moved (`None`: must not exist), the lock is given up and the ref's value is
    /// returned.
    ///
    /// If the ref file *is* our lock file, or already holds `new`, someone's late rename
    /// published the lock (`docs/decisions/0003-ref-updates.md`): the ref's value before that
    /// was `expected`, and our write gives it `new`, so the lock counts as confirmed.
    pub(crate) fn fill_and_confirm(
        self,
        git_dir: &Path,
        name: &str,
        new: Oid,
        expected: Option<Oid>,
        memo: &RefMemo,
        parallel: bool,
    ) -> io::Result<Confirmed> {
        // From here the lock is ours: every path below releases it or hands it on.
        let Self { lock, file, inode } = self;
        let fill = move || -> io::Result<RefStamp> {
            // The stamp is taken before the close, from the descriptor (on NFS the write's
            // reply carries the attributes): the ref's after the rename, since a rename keeps
            // a file's modification time.
            let stamp = (&file)
                .write_all(format!("{new}\n").as_bytes())
                .and_then(|()| file.metadata())
                .map(|meta| RefStamp::of(&meta));
            stamp.and_then(|stamp| close(file).map(|()| stamp))
        };
        let (filled, current) = at_once(parallel, fill, || read(git_dir, name, memo))?;
        let stamp = match filled {
            Ok(stamp) => stamp,
            Err(e) => {
                remove_if_present(&lock)?;
                return Err(e);
            }
        };
        // A late rename made our lock file the ref: it reads as empty (or part-written), or
        // as our own value.
        let published_early = match &current {
            Ok(current) => *current == Some(new),
            Err(e) => {
                e.kind() == io::ErrorKind::InvalidData
                    && std::fs::symlink_metadata(git_dir.join(name))
                        .is_ok_and(|meta| (meta.dev(), meta.ino()) == inode)
            }
        };
        if published_early || matches!(current, Ok(current) if current == expected) {
            return Ok(Confirmed::Held(WrittenLock { lock, stamp, new }));
        }
        remove_if_present(&lock)?;
        current.map(Confirmed::Moved)
    }

    /// Gives the lock up without changing the ref.
    pub(crate) fn release(self) -> io::Result<()> {
        drop(self.file);
        remove_if_present(&self.lock)
    }
}

/// What filling and confirming a ref lock found.
pub(crate) enum Confirmed {
    /// The ref is as expected and the lock, still ours, holds the new value.
    Held(WrittenLock),
    /// The ref points elsewhere (or nowhere); the lock was given up.
    Moved(Option<Oid>),
}

/// git's lock on a ref, confirmed and holding the ref's new value.
pub(crate) struct WrittenLock {
    lock: PathBuf,
    stamp: RefStamp,
    new: Oid,
}

impl WrittenLock {
    /// Points the ref at the value the lock holds, the ref having been confirmed to be
    /// `expected`: appends the reflog line if git's rules ask for one, and renames the lock
    /// over the ref. A ref moved here is remembered in `memo`.
    pub(crate) fn commit(
        self,
        git_dir: &Path,
        name: &str,
        expected: Option<Oid>,
        reflog: (&Reflog, &ReflogEntry<'_>),
        memo: &RefMemo,
    ) -> io::Result<Swap> {
        let Self { lock, stamp, new } = self;
        let (log, entry) = reflog;
        if let Err(e) = log.write(expected, new, entry) {
            // git refuses a ref update whose reflog it cannot write; so do we.
            remove_if_present(&lock)?;
            return Err(e);
        }
        let path = git_dir.join(name);
        match std::fs::rename(&lock, &path) {
            Ok(()) => {
                memo.remember(stamp, new);
                Ok(Swap::Done)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(Swap::Vanished(read(git_dir, name, memo)?))
            }
            Err(e) => {
                // The rename may have happened even though it reported failure (NFS replies
                // can be lost and the call retried): the ref itself says.
                if read(git_dir, name, memo)? == Some(new) {
                    return Ok(Swap::Done);
                }
                remove_if_present(&lock)?;
                Err(e)
            }
        }
    }

    /// Gives the lock up without changing the ref.
    pub(crate) fn release(self) -> io::Result<()> {
        remove_if_present(&self.lock)
    }
}

/// A lock file found in our way.
struct LockFile {
    mode: u32,
    modified: SystemTime,
    identity: (u64, u64, i64, i64),
}

impl LockFile {
    fn inspect(path: &Path) -> io::Result<Option<Self>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(Self {
                mode: meta.permissions().mode(),
                modified: meta.modified()?,
                identity: (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec()),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_ours(&self) -> bool {
        self.mode & 0o200 == 0
    }

    fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.modified)
            .unwrap_or(Duration::ZERO)
    }

    /// Removes the lock file if it is still the one inspected. Another program may have
    /// released it and taken a new one since; that one is left alone.
    fn remove_if_unchanged(&self, path: &Path) -> io::Result<()> {
        match Self::inspect(path)? {
            Some(now) if now.identity == self.identity => remove_if_present(path),
            _ => Ok(()),
        }
    }
}

/// The current value of `HEAD`'s branch: what `ref: <name>` in `HEAD` says.
pub(crate) fn head_branch(git_dir: &Path) -> io::Result<HeadBranch> {
    let content = read_small(std::fs::File::open(git_dir.join("HEAD"))?)?;
    let text = std::str::from_utf8(&content).unwrap_or_default().trim_end();
    Ok(match text.strip_prefix("ref:") {
        Some(target) => {
            let target = target.trim();
            if target.starts_with("refs/heads/") && git2::Reference::is_valid_name(target) {
                HeadBranch::Branch(target.to_owned())
            } else {
                HeadBranch::Invalid(target.chars().take(100).collect())
            }
        }
        None if parse_hex(text).is_some() => HeadBranch::Detached,
        None => HeadBranch::Invalid(text.chars().take(100).collect()),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadBranch {
    Branch(String),
    Detached,
    Invalid(String),
}

fn parse_loose(content: &[u8]) -> io::Result<Oid> {
    let text = std::str::from_utf8(content).unwrap_or_default().trim_end();
    parse_hex(text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the ref file does not hold a commit id",
        )
    })
}

fn read_packed(git_dir: &Path, name: &str) -> io::Result<Option<Oid>> {
    let packed = match std::fs::read_to_string(git_dir.join("packed-refs")) {
        Ok(packed) => packed,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(packed
        .lines()
        .filter(|line| !line.starts_with(['#', '^']))
        .filter_map(|line| line.split_once(' '))
        .find(|(_, refname)| *refname == name)
        .and_then(|(hex, _)| parse_hex(hex)))
}

fn parse_hex(hex: &str) -> Option<Oid> {
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Oid::from_str(hex).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::write_new;

    const MAIN: &str = "refs/heads/main";
    const STALE: Duration = Duration::from_secs(60);

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn git_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("refs/heads")).unwrap();
        dir
    }

    /// Points MAIN at `new` if it points at `expected`; `None` when a foreign lock stops it.
    fn swap(dir: &Path, expected: Option<Oid>, new: Oid) -> Option<Swap> {
        swap_logged(dir, expected, new, &Reflog::default(), "commit: x")
    }

    fn swap_logged(
        dir: &Path,
        expected: Option<Oid>,
        new: Oid,
        log: &Reflog,
        message: &str,
    ) -> Option<Swap> {
        let entry = ReflogEntry {
            who: "Ada <ada@example.com>",
            seconds: 1_700_000_000,
            message,
        };
        match lock(dir, MAIN, STALE).unwrap() {
            Taken::Held(held) => Some(
                match held
                    .fill_and_confirm(dir, MAIN, new, expected, &RefMemo::default(), false)
                    .unwrap()
                {
                    Confirmed::Held(held) => held
                        .commit(dir, MAIN, expected, (log, &entry), &RefMemo::default())
                        .unwrap(),
                    Confirmed::Moved(now) => Swap::Moved(now),
                },
            ),
            Taken::Foreign { .. } => None,
        }
    }

    fn age(path: &Path, by: Duration) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn swaps_only_from_the_expected_value() {
        let dir = git_dir();
        assert_eq!(read(dir.path(), MAIN, &RefMemo::default()).unwrap(), None);
        assert_eq!(swap(dir.path(), None, oid(1)), Some(Swap::Done));
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(1))
        );
        assert_eq!(
            swap(dir.path(), None, oid(2)),
            Some(Swap::Moved(Some(oid(1))))
        );
        assert_eq!(
            swap(dir.path(), Some(oid(9)), oid(2)),
            Some(Swap::Moved(Some(oid(1))))
        );
        assert_eq!(swap(dir.path(), Some(oid(1)), oid(2)), Some(Swap::Done));
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(2))
        );
        assert!(
            !dir.path().join("refs/heads/main.lock").exists(),
            "no lock left behind"
        );
    }

    #[test]
    fn a_foreign_lock_is_respected_until_stale_and_ours_is_cleared_at_once() {
        let dir = git_dir();
        swap(dir.path(), None, oid(1));
        let lock = dir.path().join("refs/heads/main.lock");

        // A person's git holds the lock (git creates it writable).
        std::fs::write(&lock, "").unwrap();
        assert_eq!(swap(dir.path(), Some(oid(1)), oid(2)), None, "stopped");
        assert!(lock.exists());
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(1))
        );
        age(&lock, STALE + Duration::from_secs(1));
        assert_eq!(swap(dir.path(), Some(oid(1)), oid(2)), Some(Swap::Done));

        // A wikibot writer died holding it: read-only, however fresh.
        write_new(&lock, format!("{}\n", oid(7)).as_bytes(), OUR_LOCK_MODE).unwrap();
        assert_eq!(swap(dir.path(), Some(oid(2)), oid(3)), Some(Swap::Done));
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(3))
        );
        assert!(!lock.exists());
    }

    #[test]
    fn a_lock_renamed_early_by_someone_else_is_reported_with_where_the_ref_went() {
        let entry = ReflogEntry {
            who: "Ada <ada@example.com>",
            seconds: 1,
            message: "m",
        };
        let take = |dir: &Path| {
            let Taken::Held(held) = lock(dir, MAIN, STALE).unwrap() else {
                panic!("free")
            };
            held
        };
        // A late rename of a dead writer's, reaching the server now, takes our lock file.
        let late_rename = |dir: &Path| {
            std::fs::rename(dir.join("refs/heads/main.lock"), dir.join(MAIN)).unwrap();
        };
        let memo = RefMemo::default();
        // Whether it comes before we fill and check the lock (the two at once or in order), or
        // between that and our rename, the branch ends at our commit, and the rename says so.
        for (when, parallel) in [
            ("before the fill", false),
            ("before the fill", true),
            ("before the rename", false),
            ("before the rename", true),
        ] {
            let dir = git_dir();
            swap(dir.path(), None, oid(1));
            let held = take(dir.path());
            if when == "before the fill" {
                late_rename(dir.path());
            }
            let filled =
                held.fill_and_confirm(dir.path(), MAIN, oid(2), Some(oid(1)), &memo, parallel);
            let Confirmed::Held(written) = filled.unwrap() else {
                panic!("{when}: the lock counts as confirmed")
            };
            if when == "before the rename" {
                late_rename(dir.path());
            }
            let landed = written
                .commit(
                    dir.path(),
                    MAIN,
                    Some(oid(1)),
                    (&Reflog::default(), &entry),
                    &memo,
                )
                .unwrap();
            assert_eq!(landed, Swap::Vanished(Some(oid(2))), "{when}");
            assert_eq!(
                read(dir.path(), MAIN, &memo).unwrap(),
                Some(oid(2)),
                "{when}"
            );
            assert!(!dir.path().join("refs/heads/main.lock").exists(), "{when}");
        }

        // A ref file that is not ours and holds no commit id is an error, and the lock goes.
        let dir = git_dir();
        swap(dir.path(), None, oid(1));
        let held = take(dir.path());
        std::fs::write(dir.path().join(MAIN), "").unwrap();
        let err = held
            .fill_and_confirm(dir.path(), MAIN, oid(2), Some(oid(1)), &memo, true)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(!dir.path().join("refs/heads/main.lock").exists());
    }

    #[test]
    fn a_ref_file_this_process_wrote_or_read_is_known_by_its_stamp() {
        let dir = git_dir();
        let ours = RefMemo::default();
        let Taken::Held(held) = lock(dir.path(), MAIN, STALE).unwrap() else {
            panic!("free")
        };
        let filled = held.fill_and_confirm(dir.path(), MAIN, oid(1), None, &ours, true);
        let Confirmed::Held(held) = filled.unwrap() else {
            panic!("no branch yet")
        };
        let entry = ReflogEntry {
            who: "Ada <ada@example.com>",
            seconds: 1_700_000_000,
            message: "commit: x",
        };
        let landed = held.commit(dir.path(), MAIN, None, (&Reflog::default(), &entry), &ours);
        assert_eq!(landed.unwrap(), Swap::Done);

        // Rewrite the file in place, keeping its size and time: only a process that reads it
        // sees the change. Nobody updates a ref this way; it shows what the memo answers from.
        let path = dir.path().join(MAIN);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, format!("{}\n", oid(7)).as_bytes(), 0)
            .unwrap();
        file.set_modified(modified).unwrap();
        assert_eq!(
            read(dir.path(), MAIN, &ours).unwrap(),
            Some(oid(1)),
            "from the memo"
        );
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(7))
        );

        // An update renames a new file over the ref: another stamp, so it is read.
        swap(dir.path(), Some(oid(7)), oid(2));
        assert_eq!(read(dir.path(), MAIN, &ours).unwrap(), Some(oid(2)));
        // and remembered: the file's value is now the one read.
        std::fs::remove_file(dir.path().join(MAIN)).unwrap();
        assert_eq!(read(dir.path(), MAIN, &ours).unwrap(), None, "gone is gone");
    }

    #[test]
    fn a_lock_taken_on_a_moved_branch_is_given_up() {
        let dir = git_dir();
        swap(dir.path(), None, oid(1));
        let Taken::Held(held) = lock(dir.path(), MAIN, STALE).unwrap() else {
            panic!("free")
        };
        // We built on oid(9), but the branch is at oid(1) (a person's git moved it).
        assert!(matches!(
            held.fill_and_confirm(dir.path(), MAIN, oid(3), Some(oid(9)), &RefMemo::default(), true)
                .unwrap(),
            Confirmed::Moved(Some(now)) if now == oid(1)
        ));
        assert!(
            !dir.path().join("refs/heads/main.lock").exists(),
            "released"
        );
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(1)),
            "untouched"
        );
    }

    #[test]
    fn a_missing_refs_heads_directory_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(swap(dir.path(), None, oid(1)), Some(Swap::Done));
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(1))
        );
    }

    #[test]
    fn reads_packed_refs_and_shadows_them_with_a_loose_ref() {
        let dir = git_dir();
        let packed = format!(
            "# pack-refs with: peeled fully-peeled sorted \n{} refs/heads/other\n{} {MAIN}\n^{}\n",
            oid(7),
            oid(1),
            oid(8)
        );
        std::fs::write(dir.path().join("packed-refs"), packed).unwrap();
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(1))
        );
        assert_eq!(swap(dir.path(), Some(oid(1)), oid(2)), Some(Swap::Done));
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default()).unwrap(),
            Some(oid(2))
        );
    }

    #[test]
    fn a_corrupt_ref_is_an_error_not_a_missing_ref() {
        let dir = git_dir();
        std::fs::write(dir.path().join(MAIN), "ref: refs/heads/elsewhere\n").unwrap();
        assert_eq!(
            read(dir.path(), MAIN, &RefMemo::default())
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn reflog_lines_follow_gits_format() {
        let dir = git_dir();
        let log = Reflog::decide(dir.path(), MAIN, Some("true"));
        let entry = ReflogEntry {
            who: "Ada <ada@example.com>",
            seconds: 1_700_000_000,
            message: "commit (initial): Home\nbody",
        };
        swap_logged(dir.path(), None, oid(1), &log, entry.message).unwrap();
        let line = std::fs::read_to_string(dir.path().join("logs/refs/heads/main")).unwrap();
        assert_eq!(
            line,
            format!(
                "{} {} Ada <ada@example.com> 1700000000 +0000\tcommit (initial): Home\n",
                Oid::ZERO_SHA1,
                oid(1)
            )
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("logs/HEAD")).unwrap(),
            line
        );
        let off = Reflog::decide(tempfile::tempdir().unwrap().path(), MAIN, Some("false"));
        assert!(off.branch_log.is_none() && off.head_log.is_none());
    }

    #[test]
    fn head_names_the_branch() {
        let dir = git_dir();
        let head = dir.path().join("HEAD");
        for (content, expected) in [
            (
                "ref: refs/heads/master\n",
                HeadBranch::Branch("refs/heads/master".into()),
            ),
            (
                "ref: refs/heads/a/b\n",
                HeadBranch::Branch("refs/heads/a/b".into()),
            ),
            (&format!("{}\n", oid(1)), HeadBranch::Detached),
            (
                "ref: refs/heads/../../x\n",
                HeadBranch::Invalid("refs/heads/../../x".into()),
            ),
            (
                "ref: refs/tags/v1\n",
                HeadBranch::Invalid("refs/tags/v1".into()),
            ),
        ] {
            std::fs::write(&head, content).unwrap();
            assert_eq!(head_branch(dir.path()).unwrap(), expected, "{content:?}");
        }
    }
}

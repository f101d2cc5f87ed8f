//! Mutexes between processes that a dead holder cannot leave behind: an exclusive `flock(2)`
//! on a file under `<git dir>/wikibot/`.
//!
//! The writer mutex admits one wikibot writer at a time to the ref update (see `refs.rs`), on
//! any number of machines: on EFS a `flock` is an NFSv4 lock that the server grants to one
//! client at a time, and the kernel releases it the moment the holding process exits, however
//! it dies. Nothing can take it from a live holder, stalled or not, so there is no stale age to
//! guess and no late writer to fence off. The maintenance mutex keeps two maintenance runs
//! apart the same way.
//!
//! This module must not hold a mutex across a Lambda freeze (guards are dropped before a
//! handler returns), and nothing may delete a mutex file while it is in use: a new file would
//! be a second, independent mutex.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The directory under a repository's git dir that holds wikibot's own files. git ignores
/// unknown directories there, and `git gc` leaves them alone.
pub(crate) const WIKIBOT_DIR: &str = "wikibot";

/// An exclusive lock shared by every process that opens the same file. Within a process, a
/// std mutex keeps threads apart (a `flock` is per open file, which the threads share).
pub(crate) struct FileMutex {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

/// Holds the mutex until dropped.
pub(crate) struct Held<'a> {
    file: MutexGuard<'a, Option<File>>,
}

impl FileMutex {
    /// The mutex `<git dir>/wikibot/<name>`. The file is opened (and created, with its
    /// directory, if missing) on first use and kept open: one open per process, not per lock.
    pub(crate) fn new(git_dir: &Path, name: &str) -> Self {
        Self {
            path: git_dir.join(WIKIBOT_DIR).join(name),
            file: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the mutex if no other process holds it. Waits for other threads of this process.
    pub(crate) fn try_lock(&self) -> io::Result<Option<Held<'_>>> {
        let mut slot = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let Some(file) = slot.as_ref() else {
            unreachable!("the file was opened above")
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Held { file: slot })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                // A stale NFS handle (the file was replaced) must not stick: reopen next time.
                *slot = None;
                Err(e)
            }
        }
    }

    fn open(&self) -> io::Result<File> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&self.path)
        };
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = self.path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                open()
            }
            other => other,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.file.as_ref()
            && let Err(e) = file.unlock()
        {
            // Closing the file releases the lock for certain; reopen on next use.
            tracing::warn!(error = %e, "could not unlock a mutex file; closing it");
            *self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        // Two instances stand for two processes: each has its own open file.
        let first = FileMutex::new(dir.path(), "writer");
        let second = FileMutex::new(dir.path(), "writer");
        let held = first.try_lock().unwrap().expect("free");
        assert!(second.try_lock().unwrap().is_none(), "held elsewhere");
        drop(held);
        let held = second.try_lock().unwrap().expect("released");
        assert!(first.try_lock().unwrap().is_none());
        drop(held);
        assert!(dir.path().join("wikibot/writer").is_file());
    }
}

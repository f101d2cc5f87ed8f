//! Stale lock files: recognising a `*.lock` whose writer died, and removing it safely.
//!
//! git's lock files carry no owner, so a writer killed mid-update (a Lambda timeout, SIGKILL)
//! leaves `refs/heads/main.lock` behind and every later write fails. A lock older than the
//! configured stale age (longer than any live writer can run) is removed. This module must
//! not remove a lock younger than that age, and must not race another remover into deleting
//! a fresh lock: removal happens only while holding a separate breaker file.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::fs::remove_if_present;

/// What a caller blocked by `lock` should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockCheck {
    /// The lock is gone (released, or removed as stale): retry now.
    Cleared,
    /// The lock is held and not stale: back off.
    Held,
}

/// Removes `lock` if it is older than `stale_after`. `breaker` is the file that serialises
/// removers; it must not live where git would read it as a ref.
pub(crate) fn clear_if_stale(
    lock: &Path,
    breaker: &Path,
    stale_after: Duration,
) -> io::Result<LockCheck> {
    let Some(seen) = stale_lock(lock, stale_after)? else {
        return Ok(if lock_exists(lock)? {
            LockCheck::Held
        } else {
            LockCheck::Cleared
        });
    };
    let _guard = match BreakerGuard::acquire(breaker) {
        Ok(guard) => guard,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Another remover is at work, or died at work: its breaker is stale by the
            // same rule as any lock.
            if stale_lock(breaker, stale_after)?.is_some() {
                remove_if_present(breaker)?;
            }
            return Ok(LockCheck::Held);
        }
        Err(e) => return Err(e),
    };
    // Still the same stale file? No one else can have replaced it while it existed.
    match stale_lock(lock, stale_after)? {
        Some(now) if now == seen => {
            remove_if_present(lock)?;
            tracing::warn!(lock = %lock.display(), "removed a stale lock left by a dead writer");
            Ok(LockCheck::Cleared)
        }
        Some(_) => Ok(LockCheck::Held),
        None => Ok(LockCheck::Cleared),
    }
}

/// Identity of a lock file judged stale: inode and modification time.
type LockIdentity = (u64, i64);

fn stale_lock(path: &Path, stale_after: Duration) -> io::Result<Option<LockIdentity>> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let age = SystemTime::now()
        .duration_since(meta.modified()?)
        .unwrap_or(Duration::ZERO);
    Ok((age >= stale_after).then_some((meta.ino(), meta.mtime())))
}

fn lock_exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

struct BreakerGuard(PathBuf);

impl BreakerGuard {
    fn acquire(path: &Path) -> io::Result<Self> {
        // O_CREAT|O_EXCL is atomic on NFSv4.1, so at most one remover holds the breaker.
        OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for BreakerGuard {
    fn drop(&mut self) {
        if let Err(e) = remove_if_present(&self.0) {
            tracing::warn!(breaker = %self.0.display(), error = %e, "could not remove lock breaker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn removes_only_locks_older_than_the_stale_age() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("main.lock");
        let breaker = dir.path().join("breaker.lock");
        let stale_after = Duration::from_secs(60);

        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Cleared
        );

        fs::write(&lock, "").unwrap();
        age(&lock, Duration::from_secs(30));
        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Held
        );
        assert!(lock.exists());

        age(&lock, Duration::from_secs(61));
        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Cleared
        );
        assert!(!lock.exists());
        assert!(!breaker.exists(), "breaker must be released");
    }

    #[test]
    fn a_held_breaker_defers_and_a_dead_one_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("main.lock");
        let breaker = dir.path().join("breaker.lock");
        let stale_after = Duration::from_secs(60);
        fs::write(&lock, "").unwrap();
        age(&lock, Duration::from_secs(120));
        fs::write(&breaker, "").unwrap();

        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Held
        );
        assert!(lock.exists(), "a live breaker's lock is left to it");

        age(&breaker, Duration::from_secs(120));
        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Held
        );
        assert!(!breaker.exists(), "a dead breaker is cleared");
        assert_eq!(
            clear_if_stale(&lock, &breaker, stale_after).unwrap(),
            LockCheck::Cleared
        );
        assert!(!lock.exists());
    }
}

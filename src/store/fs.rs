//! File primitives for the store, written for NFS: every call here is one or two network
//! round trips on EFS, and write-back errors surface at close(2), which `std` ignores.
//!
//! This module must not know about git formats; it moves bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` (it must not exist), writes `bytes`, and closes it, reporting any error
/// including one from close. One file-system operation (the create). If the create succeeds
/// but the write or close fails, the file this call created is removed; if the create fails,
/// nothing is touched (the path may be someone else's, such as another writer's lock).
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = create_new(path, mode)?;
    let written = file.write_all(bytes);
    let closed = close(file);
    let result = written.and(closed);
    if result.is_err() {
        let _ = remove_if_present(path);
    }
    result
}

/// Creates `path` for writing; it must not exist. One file-system operation.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Reads the whole of `path`; `None` if it does not exist.
pub(crate) fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `target` with `bytes` atomically: a reader sees the old file or the new one,
/// never a part. The bytes go to a new file named `temporary_prefix` and a random suffix in
/// `target`'s directory (created if missing), which is then renamed over `target`; a
/// temporary file left by a crash keeps the prefix, for whoever cleans up.
pub(crate) fn replace_file(target: &Path, temporary_prefix: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!("{temporary_prefix}{:016x}", fastrand::u64(..)));
    write_new(&temporary, bytes, 0o444)?;
    std::fs::rename(&temporary, target).inspect_err(|_| {
        let _ = remove_if_present(&temporary);
    })
}

/// Appends `bytes` to `path` in one write, creating it (and its directory) if needed: how
/// git appends to a reflog. One open on the common path.
pub(crate) fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let open = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path)
    };
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()?
        }
        other => other?,
    };
    let written = file.write_all(bytes);
    written.and(close(file))
}

/// Runs `first` on a thread of its own while `second` runs on this one, when `parallel`: on
/// EFS each is a round trip or more, and independent ones then overlap instead of adding up.
/// In order otherwise, `first` first.
pub(crate) fn at_once<A: Send, B>(
    parallel: bool,
    first: impl FnOnce() -> A + Send,
    second: impl FnOnce() -> B,
) -> io::Result<(A, B)> {
    if !parallel {
        let a = first();
        return Ok((a, second()));
    }
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        let b = second();
        let a = first
            .join()
            .map_err(|_| io::Error::other("a thread doing file operations panicked"))?;
        Ok((a, b))
    })
}

/// Runs `each` on every item: on threads of their own (and this one) when `parallel`, as
/// [`at_once`] does for two; in order otherwise.
pub(crate) fn each_at_once<I: Send, R: Send>(
    items: Vec<I>,
    parallel: bool,
    each: impl Fn(I) -> R + Sync,
) -> io::Result<Vec<R>> {
    if !parallel || items.len() < 2 {
        return Ok(items.into_iter().map(each).collect());
    }
    let each = &each;
    std::thread::scope(|scope| {
        let mut items = items;
        let mine = items.pop();
        let others: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || each(item)))
            .collect();
        let mine = mine.map(each);
        let mut results = others
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| io::Error::other("a thread doing file operations panicked"))
            })
            .collect::<io::Result<Vec<R>>>()?;
        results.extend(mine);
        Ok(results)
    })
}

/// Closes `file`, returning the error `close(2)` reports.
pub(crate) fn close(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `into_raw_fd` gave us sole ownership of an open descriptor, closed exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes `path`; a file that is already gone is not an error.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_new(&path, b"one", 0o644).unwrap();
        let err = write_new(&path, b"two", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        remove_if_present(&path).unwrap();
        remove_if_present(&path).unwrap();
        assert!(!path.exists());
    }
}

//! The `main` ref: read it, and move it by compare-and-swap under git's own lock protocol
//! (create `<ref>.lock` exclusively, check the current value, write, rename over the ref).
//!
//! libgit2 does the same with about 15 file operations (config and packed-refs freshness
//! checks, repeated stats, a link attempt before the rename); this does it with 3, and a read
//! with 1. It interoperates with git: a held `.lock` stops git and libgit2 writers alike, and
//! a ref that only exists in `packed-refs` (after `git gc`) is read from there and then
//! shadowed by the loose ref, as git does. This module must not decide when to retry.

use std::io;
use std::path::Path;

use git2::Oid;

use super::fs::{remove_if_present, write_new};

/// What a compare-and-swap did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Swap {
    Done,
    /// Another writer holds the lock.
    Locked,
    /// The ref no longer has the expected value.
    Moved,
}

/// The commit `name` points at, if the ref exists.
pub(crate) fn read(git_dir: &Path, name: &str) -> io::Result<Option<Oid>> {
    match read_small(&git_dir.join(name)) {
        Ok(content) => parse_loose(&content).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => read_packed(git_dir, name),
        Err(e) => Err(e),
    }
}

/// Reads a ref file with one open and no stat (`std::fs::read` stats for a size hint: one
/// more round trip on NFS). A valid loose ref is 41 bytes.
fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buffer = [0u8; 128];
    let mut file = std::fs::File::open(path)?;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(buffer[..filled].to_vec())
}

/// Points `name` at `new` if it still points at `expected` (`None`: must not exist).
pub(crate) fn compare_and_swap(
    git_dir: &Path,
    name: &str,
    expected: Option<Oid>,
    new: Oid,
) -> io::Result<Swap> {
    let path = git_dir.join(name);
    let lock = git_dir.join(format!("{name}.lock"));
    // The value is written with the lock's creation: one file operation. A failed create
    // leaves the path alone: the lock may be another writer's.
    match write_new(&lock, format!("{new}\n").as_bytes(), 0o644) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Swap::Locked),
        Err(e) => return Err(e),
    }
    let outcome = match read(git_dir, name) {
        Ok(current) if current == expected => std::fs::rename(&lock, &path).map(|()| Swap::Done),
        Ok(_) => Ok(Swap::Moved),
        Err(e) => Err(e),
    };
    if !matches!(outcome, Ok(Swap::Done)) {
        remove_if_present(&lock)?;
    }
    outcome
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

    const MAIN: &str = "refs/heads/main";

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn git_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("refs/heads")).unwrap();
        dir
    }

    #[test]
    fn swaps_only_from_the_expected_value() {
        let dir = git_dir();
        assert_eq!(read(dir.path(), MAIN).unwrap(), None);
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, None, oid(1)).unwrap(),
            Swap::Done
        );
        assert_eq!(read(dir.path(), MAIN).unwrap(), Some(oid(1)));
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, None, oid(2)).unwrap(),
            Swap::Moved
        );
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, Some(oid(9)), oid(2)).unwrap(),
            Swap::Moved
        );
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, Some(oid(1)), oid(2)).unwrap(),
            Swap::Done
        );
        assert_eq!(read(dir.path(), MAIN).unwrap(), Some(oid(2)));
        assert!(
            !dir.path().join("refs/heads/main.lock").exists(),
            "no lock left behind"
        );
    }

    #[test]
    fn a_held_lock_stops_the_swap_and_is_left_alone() {
        let dir = git_dir();
        compare_and_swap(dir.path(), MAIN, None, oid(1)).unwrap();
        let lock = dir.path().join("refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, Some(oid(1)), oid(2)).unwrap(),
            Swap::Locked
        );
        assert!(lock.exists());
        assert_eq!(read(dir.path(), MAIN).unwrap(), Some(oid(1)));
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
        assert_eq!(read(dir.path(), MAIN).unwrap(), Some(oid(1)));
        assert_eq!(
            compare_and_swap(dir.path(), MAIN, Some(oid(1)), oid(2)).unwrap(),
            Swap::Done
        );
        assert_eq!(read(dir.path(), MAIN).unwrap(), Some(oid(2)));
    }

    #[test]
    fn a_corrupt_ref_is_an_error_not_a_missing_ref() {
        let dir = git_dir();
        std::fs::write(dir.path().join(MAIN), "ref: refs/heads/elsewhere\n").unwrap();
        assert_eq!(
            read(dir.path(), MAIN).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}

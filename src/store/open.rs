//! Opening and creating a wiki's repository: libgit2's handle, the branch `HEAD` names, and
//! whether ref updates are logged.
//!
//! Everything here runs once per repository per process (a warm Lambda keeps the result), so
//! it may spend a few file operations that the hot paths may not. It refuses what the store
//! cannot serve — an object or ref format libgit2 does not support, a `HEAD` that names no
//! branch — with an error that says which. This module must not read or write pages.

use std::path::Path;

use git2::{Repository, RepositoryInitOptions};

use super::refs::{self, HeadBranch, Reflog};
use super::{DEFAULT_BRANCH, StoreError};

/// An open repository and what the store needs to know about it.
pub(crate) struct Opened {
    pub repo: Repository,
    /// The full name of the branch `HEAD` names, such as `refs/heads/main`.
    pub branch: String,
    pub reflog: Reflog,
}

/// Opens the bare repository at `path`; `None` if there is none (no `HEAD`).
pub(crate) fn open(path: &Path) -> Result<Option<Opened>, StoreError> {
    // A missing HEAD means no repository yet, or a half-initialised one that init repairs.
    let branch = match refs::head_branch(path) {
        Ok(branch) => branch,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::io(
                format!("reading {}/HEAD", path.display()),
                e,
            ));
        }
    };
    let repo = match Repository::open_bare(path) {
        Ok(repo) => repo,
        Err(e) => return Err(explain_open_failure(path, e)),
    };
    let config = repo.config()?;
    check_format(path, &config)?;
    let branch = match branch {
        HeadBranch::Branch(branch) => branch,
        HeadBranch::Detached => {
            return Err(StoreError::UnsupportedRepository {
                path: path.to_owned(),
                reason: "HEAD is detached (it holds a commit id, not a branch); point it at \
                         the wiki's branch with `git symbolic-ref HEAD refs/heads/<branch>`"
                    .into(),
            });
        }
        HeadBranch::Invalid(target) => {
            return Err(StoreError::UnsupportedRepository {
                path: path.to_owned(),
                reason: format!("HEAD names {target:?}, which is not a branch"),
            });
        }
    };
    let setting = config.get_string("core.logAllRefUpdates").ok();
    let reflog = Reflog::decide(path, &branch, setting.as_deref());
    Ok(Some(Opened {
        repo,
        branch,
        reflog,
    }))
}

/// Creates a bare repository at `path` with `HEAD` on the default branch.
pub(crate) fn init(path: &Path) -> Result<Repository, git2::Error> {
    let mut options = RepositoryInitOptions::new();
    options
        .bare(true)
        .mkpath(true)
        .initial_head(DEFAULT_BRANCH)
        .external_template(false);
    Repository::init_opts(path, &options)
}

/// Repository formats the store cannot serve, named the way git names them.
fn unsupported_format(config: &git2::Config) -> Option<String> {
    let value = |name: &str| {
        config
            .get_string(name)
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if let Some(format) = value("extensions.objectformat").filter(|f| f != "sha1") {
        return Some(format!(
            "it uses the {format} object format (extensions.objectformat); wikibot supports sha1 repositories"
        ));
    }
    if let Some(storage) = value("extensions.refstorage").filter(|s| s != "files") {
        return Some(format!(
            "its refs are stored as {storage} (extensions.refstorage); wikibot supports the files ref storage"
        ));
    }
    match config.get_i64("core.repositoryformatversion") {
        Ok(version) if version > 1 => Some(format!(
            "it has repository format version {version}; wikibot supports versions 0 and 1"
        )),
        _ => None,
    }
}

fn check_format(path: &Path, config: &git2::Config) -> Result<(), StoreError> {
    match unsupported_format(config) {
        Some(reason) => Err(StoreError::UnsupportedRepository {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// libgit2 refuses some formats itself; name the format rather than pass its message on.
fn explain_open_failure(path: &Path, error: git2::Error) -> StoreError {
    let reason = git2::Config::open(&path.join("config"))
        .ok()
        .and_then(|config| unsupported_format(&config));
    match reason {
        Some(reason) => StoreError::UnsupportedRepository {
            path: path.to_owned(),
            reason,
        },
        None => StoreError::Git(error),
    }
}

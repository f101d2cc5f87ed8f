//! The page store's error type, and the five kinds every edge maps it to.
//!
//! Messages are written for the person (or assistant) who sent the request: they say what
//! was wrong and what to do next. This module must not format errors for a particular edge
//! (JSON, MCP, CLI); edges use [`StoreError::kind`] and `Display`.

use std::path::PathBuf;
use std::time::Duration;

use super::{PagePath, PagePathError, Revision, WikiName, WikiNameError};

/// The coarse classes an edge reports (`invalid_input`, `not_found`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    Conflict,
    Busy,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    InvalidPage(#[from] PagePathError),
    #[error(transparent)]
    InvalidWiki(#[from] WikiNameError),
    #[error("{0}")]
    InvalidInput(String),
    #[error("wiki '{0}' does not exist; initialise it first")]
    WikiNotFound(WikiName),
    #[error("page '{0}' does not exist")]
    PageNotFound(PagePath),
    #[error("revision {0} is not a commit of this wiki")]
    RevisionNotFound(String),
    #[error(
        "page '{page}' changed since revision {base}; its current revision is {current}: read it again and reapply your change"
    )]
    Conflict {
        page: PagePath,
        base: Revision,
        current: Revision,
    },
    #[error("page '{page}' already exists at revision {current}; pass that revision to update it")]
    AlreadyExists { page: PagePath, current: Revision },
    #[error("the wiki is busy: {holder}; gave up after {} ms, retry shortly", waited.as_millis())]
    Busy { waited: Duration, holder: Holder },
    #[error(
        "page '{page}' is {what} in the repository, not a page; wikibot neither follows nor replaces it"
    )]
    NotAPage { page: PagePath, what: &'static str },
    #[error("page '{page}' cannot be written: '{blocker}' is a file in the wiki, not a directory")]
    PathTaken { page: PagePath, blocker: String },
    #[error("the repository {} cannot be served: {reason}", path.display())]
    UnsupportedRepository { path: PathBuf, reason: String },
    #[error("page '{0}' is not UTF-8 text")]
    NotText(PagePath),
    #[error("{}", snippet_count_message(page, *count))]
    SnippetCount { page: PagePath, count: usize },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn snippet_count_message(page: &PagePath, count: usize) -> String {
    match count {
        0 => format!(
            "the text to replace does not occur in '{page}'; read the page again and copy the \
             snippet exactly (whitespace and line breaks included)"
        ),
        n => format!(
            "the text to replace occurs {n} times in '{page}'; include more of the surrounding \
             text so that it occurs exactly once"
        ),
    }
}

/// Who kept a write waiting until its budget ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Another wikibot writer holds the writer mutex. It is alive: the mutex is released the
    /// moment its holder exits, so it is never orphaned.
    LiveWriter,
    /// Another program (such as a person's git) holds the branch's lock file.
    ForeignLock {
        lock: String,
        age: Duration,
        stale_after: Duration,
    },
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LiveWriter => f.write_str(
                "another wikibot writer is committing and still running (its lock is released \
                 the moment it exits, so it is not orphaned)",
            ),
            Self::ForeignLock {
                lock,
                age,
                stale_after,
            } => {
                let left = stale_after.saturating_sub(*age).as_secs();
                write!(
                    f,
                    "another program (such as git) holds {lock} and has for {} s; if it is still \
                     there in {left} s it will be taken as abandoned and removed \
                     (WIKIBOT_STALE_LOCK_SECS={})",
                    age.as_secs(),
                    stale_after.as_secs()
                )
            }
        }
    }
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidPage(_) | Self::InvalidWiki(_) | Self::InvalidInput(_) => {
                ErrorKind::InvalidInput
            }
            Self::WikiNotFound(_) | Self::PageNotFound(_) | Self::RevisionNotFound(_) => {
                ErrorKind::NotFound
            }
            Self::NotAPage { .. } | Self::SnippetCount { .. } => ErrorKind::InvalidInput,
            Self::Conflict { .. } | Self::AlreadyExists { .. } | Self::PathTaken { .. } => {
                ErrorKind::Conflict
            }
            Self::Busy { .. } => ErrorKind::Busy,
            Self::NotText(_)
            | Self::Git(_)
            | Self::Io { .. }
            | Self::UnsupportedRepository { .. } => ErrorKind::Internal,
        }
    }

    /// The page's current revision, when the error is a conflict.
    pub fn current_revision(&self) -> Option<&Revision> {
        match self {
            Self::Conflict { current, .. } | Self::AlreadyExists { current, .. } => Some(current),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

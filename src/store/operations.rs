//! Page operations beyond a whole-page write: delete, rename (optionally rewriting the links
//! that point at the old name, in the same commit), and targeted edits (replace a snippet
//! that occurs exactly once, append, prepend). Each is a plan for `commit.rs`, computed
//! against the tip it lands on, so an edit or a link rewrite always starts from the content
//! it replaces. Conflicts work as for writes: with a base revision, a page that changed since
//! is a conflict carrying the current revision.
//!
//! This module must not touch refs or objects itself (the commit machinery does).

use std::time::SystemTime;

use super::commit::{CommitRequest, FileChange};
use super::queries::linking_to;
use super::{
    Author, Expect, PagePath, StoreError, Wiki, WriteOutcome, commit_message, frontmatter, links,
};

/// Who changes the wiki, when, why, and against which revision.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub author: &'a Author,
    /// Commit message; empty means a default that names the operation.
    pub message: &'a str,
    pub time: SystemTime,
    /// What the page (the renamed or edited one) must be: usually `Unchanged(revision read)`.
    pub expect: Expect,
}

/// A targeted edit of one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEdit<'a> {
    /// Replace `old`, which must occur exactly once, with `new`.
    Replace { old: &'a str, new: &'a str },
    /// Add text at the end (on a new line if the page does not end with one).
    Append(&'a str),
    /// Add text at the start, after the frontmatter if there is any (followed by a newline
    /// if it does not end with one).
    Prepend(&'a str),
}

/// What a rename did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenameOutcome {
    #[serde(flatten)]
    pub outcome: WriteOutcome,
    /// The pages whose links were rewritten (the renamed page itself included, under its
    /// new name, if its own relative links had to change).
    pub rewritten: Vec<PagePath>,
}

impl<'a> Change<'a> {
    fn request<'m>(&self, message: &'m str) -> CommitRequest<'m>
    where
        'a: 'm,
    {
        CommitRequest {
            author: self.author,
            message,
            time: self.time,
        }
    }
}

impl Wiki {
    /// Removes a page.
    pub fn delete(&self, page: &PagePath, change: &Change<'_>) -> Result<WriteOutcome, StoreError> {
        let _span = tracing::info_span!("git.delete", wiki = %self.name, page = %page).entered();
        let message = commit_message(change.message, || format!("Delete {page}"))?;
        let request = change.request(&message);
        self.commit(&request, |planner| {
            let current = planner.check(page, change.expect, planner.entry(page)?)?;
            if current.is_none() {
                return Err(StoreError::PageNotFound(page.clone()));
            }
            Ok((vec![FileChange::Remove { page: page.clone() }], ()))
        })
        .map(|(outcome, ())| outcome)
    }

    /// Moves a page to a new name that is free. With `rewrite_links`, every link to the old
    /// name (in its own style: WikiLink, relative or root Markdown link) points at the new one
    /// afterwards, and the page's own relative links are adjusted to its new place, all in
    /// the same commit.
    pub fn rename(
        &self,
        from: &PagePath,
        to: &PagePath,
        rewrite_links: bool,
        change: &Change<'_>,
    ) -> Result<RenameOutcome, StoreError> {
        let _span =
            tracing::info_span!("git.rename", wiki = %self.name, page = %from, to = %to).entered();
        if from == to {
            return Err(StoreError::InvalidInput(format!(
                "'{from}' already has that name"
            )));
        }
        let message = commit_message(change.message, || format!("Rename {from} to {to}"))?;
        let request = change.request(&message);
        let (outcome, rewritten) = self.commit(&request, |planner| {
            planner.check(from, change.expect, planner.entry(from)?)?;
            let content = planner
                .content(from)?
                .ok_or_else(|| StoreError::PageNotFound(from.clone()))?;
            if let (Some(tip), Some(_)) = (planner.tip(), planner.slot(to)?) {
                return Err(StoreError::AlreadyExists {
                    page: to.clone(),
                    current: super::Revision(tip),
                });
            }
            let mut rewritten = Vec::new();
            let moved = if rewrite_links {
                match links::rewrite(&content, from, to, from, to) {
                    Some(text) => {
                        rewritten.push(to.clone());
                        text
                    }
                    None => content,
                }
            } else {
                content
            };
            let mut changes = vec![
                FileChange::Remove { page: from.clone() },
                FileChange::Put {
                    page: to.clone(),
                    content: moved,
                },
            ];
            if rewrite_links {
                for source in linking_to(planner, from)? {
                    if &source == to {
                        continue;
                    }
                    let Some(text) = planner.content(&source)? else {
                        continue;
                    };
                    if let Some(text) = links::rewrite(&text, &source, &source, from, to) {
                        rewritten.push(source.clone());
                        changes.push(FileChange::Put {
                            page: source,
                            content: text,
                        });
                    }
                }
            }
            rewritten.sort();
            Ok((changes, rewritten))
        })?;
        Ok(RenameOutcome { outcome, rewritten })
    }

    /// Applies a targeted edit to an existing page.
    pub fn edit(
        &self,
        page: &PagePath,
        edit: PageEdit<'_>,
        change: &Change<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let _span = tracing::info_span!("git.edit", wiki = %self.name, page = %page).entered();
        if let PageEdit::Replace { old: "", .. } = edit {
            return Err(StoreError::InvalidInput(
                "the text to replace is empty; give a snippet of the page (or append/prepend)"
                    .into(),
            ));
        }
        let message = commit_message(change.message, || format!("Edit {page}"))?;
        let request = change.request(&message);
        self.commit(&request, |planner| {
            planner.check(page, change.expect, planner.entry(page)?)?;
            let content = planner
                .content(page)?
                .ok_or_else(|| StoreError::PageNotFound(page.clone()))?;
            let edited = apply_edit(page, &content, edit)?;
            Ok((
                vec![FileChange::Put {
                    page: page.clone(),
                    content: edited,
                }],
                (),
            ))
        })
        .map(|(outcome, ())| outcome)
    }
}

/// The page's new text, or why the edit does not apply.
fn apply_edit(page: &PagePath, content: &str, edit: PageEdit<'_>) -> Result<String, StoreError> {
    Ok(match edit {
        PageEdit::Replace { old, new } => {
            let count = content.matches(old).count();
            if count != 1 {
                return Err(StoreError::SnippetCount {
                    page: page.clone(),
                    count,
                });
            }
            content.replacen(old, new, 1)
        }
        PageEdit::Append(text) => {
            let mut out = content.to_owned();
            if !out.is_empty() && !out.ends_with('\n') && !text.starts_with('\n') {
                out.push('\n');
            }
            out.push_str(text);
            out
        }
        PageEdit::Prepend(text) => {
            let at = frontmatter::block(content).map_or(0, |b| b.body_start);
            let mut out = String::with_capacity(content.len() + text.len() + 1);
            out.push_str(&content[..at]);
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&content[at..]);
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> PagePath {
        PagePath::parse("P").unwrap()
    }

    #[test]
    fn replace_needs_exactly_one_occurrence() {
        let text = "alpha beta alpha";
        let replaced = apply_edit(
            &page(),
            text,
            PageEdit::Replace {
                old: "beta",
                new: "B",
            },
        );
        assert_eq!(replaced.unwrap(), "alpha B alpha");
        for (old, count) in [("alpha", 2), ("gamma", 0)] {
            match apply_edit(&page(), text, PageEdit::Replace { old, new: "x" }) {
                Err(StoreError::SnippetCount { count: found, .. }) => assert_eq!(found, count),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn append_and_prepend_keep_lines_and_frontmatter() {
        assert_eq!(
            apply_edit(&page(), "a", PageEdit::Append("- b\n")).unwrap(),
            "a\n- b\n"
        );
        assert_eq!(
            apply_edit(&page(), "a\n", PageEdit::Append("b")).unwrap(),
            "a\nb"
        );
        assert_eq!(
            apply_edit(
                &page(),
                "---\ntags: [x]\n---\n# Title\n",
                PageEdit::Prepend("> Note")
            )
            .unwrap(),
            "---\ntags: [x]\n---\n> Note\n# Title\n"
        );
        assert_eq!(
            apply_edit(&page(), "# Title\n", PageEdit::Prepend("first\n")).unwrap(),
            "first\n# Title\n"
        );
    }
}

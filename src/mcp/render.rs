//! The tools' answers as an assistant reads them: short plain text, the revision to pass
//! back wherever one is needed, long lists cut with a count of what was left out and how to
//! narrow them. This module must not call the store; it formats what the tools got.

use std::fmt::Write as _;

use crate::store::{
    History, LinkTarget, Listing, Note, Orphans, PageLinks, PagePath, RenameOutcome, SearchResults,
    WriteOutcome, rfc3339,
};

/// Most names listed inline (links, backlinks) before "and N more".
const INLINE_NAMES: usize = 200;
/// A search answer stops adding matching lines past this many bytes (pages still listed).
const SEARCH_BYTES: usize = 8 * 1024;

/// A page read: header lines, a blank line, then the page as stored.
pub fn note(note: &Note) -> String {
    let version = &note.version;
    let mut text = format!("Path: {}\nRevision: {}\n", version.page, version.revision);
    match &note.frontmatter {
        Ok(Some(fields)) => {
            let json = serde_json::to_string(fields).unwrap_or_default();
            let _ = writeln!(text, "Frontmatter: {json}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(
                text,
                "Frontmatter error: {e}. The page is shown as stored; fix the YAML between the --- lines to use it."
            );
        }
    }
    if !note.links.is_empty() {
        let _ = writeln!(text, "Links: {}", targets(&note.links));
    }
    text.push('\n');
    text.push_str(&version.content);
    text
}

/// A write or edit.
pub fn saved(page: &PagePath, outcome: &WriteOutcome, verb: &str) -> String {
    if outcome.changed {
        format!("{verb} '{page}'. New revision: {}", outcome.revision)
    } else {
        format!(
            "'{page}' already had this content; nothing changed. Revision: {}",
            outcome.revision
        )
    }
}

pub fn renamed(from: &PagePath, to: &PagePath, rewrite: bool, outcome: &RenameOutcome) -> String {
    let mut text = format!(
        "Renamed '{from}' to '{to}'. New revision: {}\n",
        outcome.outcome.revision
    );
    let others: Vec<&PagePath> = outcome.rewritten.iter().filter(|p| *p != to).collect();
    if !rewrite {
        text.push_str("Links to the old name were left as they are (rewrite_links=false).\n");
    } else if others.is_empty() {
        text.push_str("No other page linked to the old name.\n");
    } else {
        let _ = writeln!(
            text,
            "Links rewritten in {} page(s): {}",
            others.len(),
            names(others.iter().copied())
        );
    }
    if rewrite && outcome.rewritten.contains(to) {
        text.push_str("Its own relative links were adjusted to its new place.\n");
    }
    text
}

/// The page list without filters (`list_notes` with a prefix only).
pub fn pages(pages: &[PagePath], prefix: &str, limit: usize) -> String {
    if pages.is_empty() {
        return if prefix.is_empty() {
            "No pages.".to_owned()
        } else {
            format!("No pages start with {prefix:?}.")
        };
    }
    let mut text = format!("{} page(s):\n", pages.len());
    for page in pages.iter().take(limit) {
        let _ = writeln!(text, "- {page}");
    }
    more(&mut text, pages.len(), limit, "narrow it with prefix");
    text
}

/// What a filtered listing asked for.
pub struct Filters<'a> {
    pub prefix: &'a str,
    pub category: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub updated_since: Option<i64>,
}

impl Filters<'_> {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.prefix.is_empty() {
            parts.push(format!("under {:?}", self.prefix));
        }
        if let Some(category) = self.category {
            parts.push(format!("in category {category:?}"));
        }
        if let Some(tag) = self.tag {
            parts.push(format!("tagged {tag:?}"));
        }
        if let Some(since) = self.updated_since {
            parts.push(format!("changed since {}", rfc3339(since)));
        }
        parts.join(", ")
    }
}

pub fn listing(listing: &Listing, filters: &Filters<'_>, limit: usize) -> String {
    let what = filters.describe();
    if listing.pages.is_empty() {
        return format!("No pages {what}.");
    }
    let mut text = format!("{} page(s) {what}:\n", listing.pages.len());
    for page in listing.pages.iter().take(limit) {
        let _ = write!(text, "- {}", page.page);
        if let Some(time) = page.updated {
            let _ = write!(text, " (changed {})", rfc3339(time));
        }
        text.push('\n');
    }
    more(
        &mut text,
        listing.pages.len(),
        limit,
        "narrow it with more filters",
    );
    text
}

pub fn search(results: &SearchResults, prefix: &str) -> String {
    let scope = if prefix.is_empty() {
        String::new()
    } else {
        format!(" under {prefix:?}")
    };
    if results.matches == 0 && results.complete {
        let mut text = format!("No page{scope} matches {}.", results.query);
        if results.pages_per_term.len() > 1 {
            let counts: Vec<String> = results
                .pages_per_term
                .iter()
                .map(|(term, n)| format!("{term}: {n}"))
                .collect();
            let _ = write!(
                text,
                " Pages with each term alone: {}. Drop a term or search for fewer words.",
                counts.join(", ")
            );
        }
        return text;
    }
    let revision = results
        .revision
        .map(|r| format!(" at revision {r}"))
        .unwrap_or_default();
    let count = if results.complete {
        results.matches.to_string()
    } else {
        format!(
            "At least {} (of {} with all the words)",
            results.matches, results.candidates
        )
    };
    let mut text = format!(
        "{count} page(s){scope} match {}{revision}; best first:\n",
        results.query
    );
    for (rank, hit) in results.hits.iter().enumerate() {
        let _ = writeln!(text, "{}. {}", rank + 1, hit.page);
        if text.len() > SEARCH_BYTES {
            continue;
        }
        if hit.lines.is_empty() {
            text.push_str("   (matches the page's name)\n");
        }
        for (line, snippet) in &hit.lines {
            let _ = writeln!(text, "   {line}: {snippet}");
        }
    }
    if results.complete && results.hits.len() < results.matches {
        let _ = writeln!(
            text,
            "{} more not shown: raise limit, add words, or give a prefix.",
            results.matches - results.hits.len()
        );
    }
    text
}

pub fn links(links: &PageLinks) -> String {
    let revision = links
        .revision
        .map(|r| format!(" (revision {r})"))
        .unwrap_or_default();
    let mut text = if links.exists {
        format!("Links of '{}'{revision}:\n", links.page)
    } else {
        format!("'{}' does not exist{revision}.\n", links.page)
    };
    if links.exists {
        if links.outgoing.is_empty() {
            text.push_str("Links to: none\n");
        } else {
            let missing = links.outgoing.iter().filter(|l| !l.exists).count();
            let _ = write!(text, "Links to ({}", links.outgoing.len());
            if missing > 0 {
                let _ = write!(text, ", {missing} missing");
            }
            let _ = writeln!(text, "): {}", targets(&links.outgoing));
        }
    }
    if links.incoming.is_empty() {
        text.push_str("Linked from: no other page\n");
    } else {
        let _ = writeln!(
            text,
            "Linked from ({}): {}",
            links.incoming.len(),
            names(links.incoming.iter())
        );
    }
    text
}

pub fn orphans(orphans: &Orphans, prefix: &str) -> String {
    let scope = if prefix.is_empty() {
        String::new()
    } else {
        format!(" under {prefix:?}")
    };
    if orphans.total == 0 {
        return format!("Every page{scope} is linked from another page.");
    }
    let mut text = format!(
        "{} page(s){scope} that no other page links to:\n",
        orphans.total
    );
    for page in &orphans.pages {
        let _ = writeln!(text, "- {page}");
    }
    more(
        &mut text,
        orphans.total,
        orphans.pages.len(),
        "narrow it with prefix",
    );
    text
}

pub fn history(history: &History, what: &str) -> String {
    let commits = &history.commits;
    let mut text = if commits.is_empty() {
        format!("No changes to {what} found.\n")
    } else {
        format!("{} change(s) to {what}, newest first:\n", commits.len())
    };
    for c in commits {
        let _ = writeln!(
            text,
            "- {} {} {} <{}>: {}",
            c.id, c.time, c.author, c.email, c.message
        );
    }
    if let Some(cursor) = &history.next_cursor {
        let why = if history.truncated {
            "The search stopped at its time limit"
        } else {
            "There may be older changes"
        };
        let _ = writeln!(
            text,
            "{why}; to continue, call again with cursor \"{cursor}\"."
        );
    }
    text
}

/// `A, B (missing), C`, cut at [`INLINE_NAMES`].
fn targets(targets: &[LinkTarget]) -> String {
    let mut shown: Vec<String> = targets
        .iter()
        .take(INLINE_NAMES)
        .map(|t| {
            if t.exists {
                t.page.to_string()
            } else {
                format!("{} (missing)", t.page)
            }
        })
        .collect();
    if targets.len() > INLINE_NAMES {
        shown.push(format!("and {} more", targets.len() - INLINE_NAMES));
    }
    shown.join(", ")
}

fn names<'a>(pages: impl ExactSizeIterator<Item = &'a PagePath>) -> String {
    let total = pages.len();
    let mut shown: Vec<String> = pages.take(INLINE_NAMES).map(ToString::to_string).collect();
    if total > INLINE_NAMES {
        shown.push(format!("and {} more", total - INLINE_NAMES));
    }
    shown.join(", ")
}

fn more(text: &mut String, total: usize, shown: usize, how: &str) {
    if total > shown {
        let _ = writeln!(
            text,
            "… and {} more ({how}, or raise limit).",
            total - shown
        );
    }
}

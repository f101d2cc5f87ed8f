//! Questions about the wiki as a whole, answered at the tip: full-text search, a page's links
//! and backlinks, pages nobody links to, listing by frontmatter and by recent change, and a
//! page read with its frontmatter and links.
//!
//! Each reads the branch, brings the page index (`page_index.rs`) to exactly that commit,
//! and answers from it, reading page text from git only for what it shows (the matching
//! lines of the results on screen). This module must not change the wiki.

use std::time::{Duration, Instant};

use git2::Oid;

use super::commit::Planner;
use super::frontmatter::{self, Fields, FrontmatterError};
use super::objects::Objects;
use super::page_index::{PageIndex, Refresh};
use super::search::Query;
use super::{
    PagePath, PageVersion, Revision, StoreError, Wiki, history, links, lock_ignoring_poison,
    page_entry,
};

/// Most matching lines shown per search result.
pub const LINES_PER_HIT: usize = 3;
/// Pages whose text is read to check a query's phrases before the count is given as "at
/// least": a phrase of common words must not read the whole wiki.
const MAX_PHRASE_CHECKS: usize = 2000;
/// How long a search may spend checking phrases.
const PHRASE_CHECK_BUDGET: Duration = Duration::from_millis(500);

/// A search.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// Words, `"phrases"` and `prefix*` (see `search.rs`).
    pub query: &'a str,
    /// Only pages whose path starts with this.
    pub prefix: &'a str,
    /// Most results to return.
    pub limit: usize,
}

/// One page that matched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    pub page: PagePath,
    pub score: f64,
    /// (1-based line number, the line or a snippet of it around the match).
    pub lines: Vec<(usize, String)>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResults {
    /// The query as understood (lowercased words, phrases, prefixes).
    pub query: String,
    /// The commit searched (`None`: the wiki has no pages yet).
    pub revision: Option<Revision>,
    /// How many pages match.
    pub matches: usize,
    /// False when checking phrases stopped early (the results were full, or the checks ran
    /// out of budget): `matches` is then a lower bound and `candidates` an upper one.
    pub complete: bool,
    /// Pages that have every word of the query (phrases not yet checked).
    pub candidates: usize,
    /// The best `limit` matches, best first.
    pub hits: Vec<SearchHit>,
    /// Each term, and how many pages have it, whatever the other terms.
    pub pages_per_term: Vec<(String, usize)>,
}

/// A page that a link points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkTarget {
    pub page: PagePath,
    pub exists: bool,
}

/// A page's links both ways, at the tip.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageLinks {
    pub page: PagePath,
    pub exists: bool,
    pub revision: Option<Revision>,
    /// The pages it links to, sorted.
    pub outgoing: Vec<LinkTarget>,
    /// The other pages that link to it, sorted.
    pub incoming: Vec<PagePath>,
}

/// Pages no other page links to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphans {
    pub revision: Option<Revision>,
    /// The first `limit`, in path order.
    pub pages: Vec<PagePath>,
    /// How many there are in all.
    pub total: usize,
}

/// Which pages to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListRequest<'a> {
    pub prefix: &'a str,
    /// Frontmatter `category`, compared without regard to case.
    pub category: Option<&'a str>,
    /// One of the frontmatter `tags`, compared without regard to case.
    pub tag: Option<&'a str>,
    /// Only pages a commit at or after this time (seconds since the epoch) changed.
    pub updated_since: Option<i64>,
}

/// A listed page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedPage {
    pub page: PagePath,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Time of the last commit that changed it, when `updated_since` was asked.
    pub updated: Option<i64>,
}

/// The pages that matched a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    pub revision: Option<Revision>,
    pub pages: Vec<ListedPage>,
}

/// A page read with what an assistant wants beside its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub version: PageVersion,
    /// Its frontmatter fields (`None`: it has none), or why they could not be read; the text
    /// in `version` is whole either way.
    pub frontmatter: Result<Option<Fields>, FrontmatterError>,
    /// The pages it links to, and whether each exists at the same revision.
    pub links: Vec<LinkTarget>,
}

impl Wiki {
    /// Runs `query` on the page index brought to `tip`. A saved index is loaded first if this
    /// process has none; one that had to be rebuilt from the whole tree is saved for the next
    /// fresh process (best effort).
    pub(crate) fn with_page_index<R>(
        &self,
        objects: &Objects<'_>,
        tip: Option<Oid>,
        query: impl FnOnce(&PageIndex) -> R,
    ) -> Result<R, StoreError> {
        let mut slot = lock_ignoring_poison(&self.pages);
        if slot.is_none() {
            let _span = tracing::info_span!("git.index_load", wiki = %self.name).entered();
            let started = Instant::now();
            match PageIndex::load(&self.path) {
                Ok(loaded) => *slot = loaded,
                Err(e) => tracing::warn!(error = %e, "could not read the saved page index"),
            }
            tracing::debug!(
                found = slot.is_some(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "loaded the saved page index"
            );
        }
        let index = slot.get_or_insert_with(PageIndex::default);
        let refresh = {
            let _span = tracing::info_span!("git.index", wiki = %self.name).entered();
            let started = Instant::now();
            let refresh = index.bring_to(objects, tip);
            tracing::debug!(
                ?refresh,
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "brought the page index to the tip"
            );
            refresh
        };
        let refresh = match refresh {
            Ok(refresh) => refresh,
            Err(e) => {
                // Half brought along: start over next time.
                *slot = None;
                return Err(e);
            }
        };
        if let Refresh::Rebuilt { pages } = refresh
            && pages > 0
            && let Err(e) = index.save(&self.path)
        {
            tracing::warn!(error = %e, "could not save the page index");
        }
        Ok(query(index))
    }

    /// Brings the saved page index to the tip if it is behind (maintenance does this).
    /// Returns whether it wrote one.
    pub(crate) fn save_page_index(&self) -> Result<bool, StoreError> {
        self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let tip = self.tip(repos)?;
            let saved = PageIndex::load(&self.path)
                .ok()
                .flatten()
                .is_some_and(|saved| saved.describes(tip));
            if saved || tip.is_none() {
                return Ok(false);
            }
            self.with_page_index(&objects, tip, |index| {
                // A rebuild has just saved it; otherwise save it now.
                match PageIndex::load(&self.path) {
                    Ok(Some(saved)) if saved.describes(tip) => Ok(()),
                    _ => index.save(&self.path),
                }
            })?
            .map_err(|e| StoreError::io("saving the page index", e))?;
            Ok(true)
        })
    }

    /// Runs `query` at the tip: the objects, the tip, and the page index brought to it.
    fn at_tip<R>(
        &self,
        mut query: impl FnMut(&Objects<'_>, Option<Oid>, &PageIndex) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            let tip = self.tip(repos)?;
            self.with_page_index(&objects, tip, |index| query(&objects, tip, index))?
        })
    }

    /// Full-text search of the pages at the tip.
    pub fn search(&self, request: SearchRequest<'_>) -> Result<SearchResults, StoreError> {
        let _span = tracing::info_span!("git.search", wiki = %self.name).entered();
        let query =
            Query::parse(request.query).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        self.at_tip(|objects, tip, index| {
            let candidates = index.candidates(&query, request.prefix);
            let needs_check = query.terms.iter().any(|t| t.required_words().len() > 1);
            let read = |blob: Oid| -> Result<Option<String>, StoreError> {
                let blob = objects.blob(blob)?;
                Ok(std::str::from_utf8(blob.content()).ok().map(str::to_owned))
            };
            let hit = |page: &PagePath, score: f64, text: Option<&str>| SearchHit {
                page: page.clone(),
                score,
                lines: text
                    .map(|t| query.matching_lines(t, LINES_PER_HIT))
                    .unwrap_or_default(),
            };
            let mut hits = Vec::new();
            let mut matches = 0;
            let mut complete = true;
            if needs_check {
                // Phrases are checked on the text, best candidates first, until the results
                // are full: counting every match of a phrase of common words would read the
                // whole wiki.
                let started = Instant::now();
                for (checked, (page, blob, score)) in candidates.ranked.iter().enumerate() {
                    if hits.len() >= request.limit
                        || checked >= MAX_PHRASE_CHECKS
                        || started.elapsed() >= PHRASE_CHECK_BUDGET
                    {
                        complete = false;
                        break;
                    }
                    let text = read(*blob)?;
                    if text.as_deref().is_some_and(|t| query.phrases_match(t)) {
                        matches += 1;
                        hits.push(hit(page, *score, text.as_deref()));
                    }
                }
            } else {
                matches = candidates.ranked.len();
                for (page, blob, score) in candidates.ranked.iter().take(request.limit) {
                    let text = read(*blob)?;
                    hits.push(hit(page, *score, text.as_deref()));
                }
            }
            Ok(SearchResults {
                query: query.describe(),
                revision: tip.map(Revision),
                matches,
                complete,
                candidates: candidates.ranked.len(),
                hits,
                pages_per_term: query
                    .terms
                    .iter()
                    .map(|t| t.describe())
                    .zip(candidates.pages_per_term)
                    .collect(),
            })
        })
    }

    /// A page's outgoing links and the pages linking to it, at the tip. A page that does not
    /// exist has no outgoing links but may have incoming ones.
    pub fn links(&self, page: &PagePath) -> Result<PageLinks, StoreError> {
        let _span = tracing::info_span!("git.links", wiki = %self.name, page = %page).entered();
        self.at_tip(|_, tip, index| {
            let indexed = index.page(page);
            let outgoing = indexed
                .map(|p| {
                    p.links
                        .iter()
                        .map(|target| LinkTarget {
                            page: target.clone(),
                            exists: index.page(target).is_some(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(PageLinks {
                page: page.clone(),
                exists: indexed.is_some(),
                revision: tip.map(Revision),
                outgoing,
                incoming: index.linking_to(page).into_iter().cloned().collect(),
            })
        })
    }

    /// Pages under `prefix` that no other page links to.
    pub fn orphans(&self, prefix: &str, limit: usize) -> Result<Orphans, StoreError> {
        let _span = tracing::info_span!("git.orphans", wiki = %self.name).entered();
        self.at_tip(|_, tip, index| {
            let mut pages = Vec::new();
            let mut total = 0;
            for page in index.orphans().filter(|p| p.as_str().starts_with(prefix)) {
                total += 1;
                if pages.len() < limit {
                    pages.push(page.clone());
                }
            }
            Ok(Orphans {
                revision: tip.map(Revision),
                pages,
                total,
            })
        })
    }

    /// Pages at the tip matching a prefix and frontmatter and recent-change filters, sorted.
    pub fn list_pages(&self, request: ListRequest<'_>) -> Result<Listing, StoreError> {
        let _span = tracing::info_span!("git.list", wiki = %self.name).entered();
        let change_index = match request.updated_since {
            Some(_) => self.change_index()?,
            None => None,
        };
        let matches = |wanted: Option<&str>, have: Option<&str>| match wanted {
            None => true,
            Some(wanted) => have.is_some_and(|have| have.eq_ignore_ascii_case(wanted.trim())),
        };
        self.at_tip(|objects, tip, index| {
            let updated = match (request.updated_since, tip) {
                (Some(since), Some(tip)) => Some(history::changed_since(
                    objects,
                    change_index.as_deref(),
                    tip,
                    since,
                )?),
                (Some(_), None) => Some(Default::default()),
                (None, _) => None,
            };
            let mut pages = Vec::new();
            for page in index.with_prefix(request.prefix) {
                if !matches(request.category, page.category.as_deref()) {
                    continue;
                }
                if let Some(tag) = request.tag
                    && !page.tags.iter().any(|t| matches(Some(tag), Some(t)))
                {
                    continue;
                }
                let changed = match &updated {
                    Some(times) => match times.get(&page.page.tree_path()) {
                        Some(time) => Some(*time),
                        None => continue,
                    },
                    None => None,
                };
                pages.push(ListedPage {
                    page: page.page.clone(),
                    category: page.category.clone(),
                    tags: page.tags.clone(),
                    updated: changed,
                });
            }
            Ok(Listing {
                revision: tip.map(Revision),
                pages,
            })
        })
    }

    /// A page (at the tip, or as of `revision`) with its frontmatter parsed and its links,
    /// each marked with whether that page exists at the same revision.
    pub fn read_note(
        &self,
        page: &PagePath,
        revision: Option<Revision>,
    ) -> Result<Note, StoreError> {
        let version = self.read_at(page, revision)?;
        let commit = version.revision.0;
        let targets = links::targets(&version.content, page);
        let links = self.with_repos(|repos| {
            let objects = Objects::new(&repos.disk, &repos.scratch);
            targets
                .iter()
                .map(|target| {
                    let exists = match page_entry(&objects, commit, target) {
                        Ok(entry) => entry.is_some(),
                        Err(StoreError::NotAPage { .. }) => false,
                        Err(e) => return Err(e),
                    };
                    Ok(LinkTarget {
                        page: target.clone(),
                        exists,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok(Note {
            frontmatter: frontmatter::parse(&version.content),
            version,
            links,
        })
    }
}

/// The pages linking to `target` at the planner's tip (for rewriting links on a rename).
pub(crate) fn linking_to(
    planner: &Planner<'_>,
    target: &PagePath,
) -> Result<Vec<PagePath>, StoreError> {
    planner.with_index(|index| index.linking_to(target).into_iter().cloned().collect())
}

//! The page index: what search, links, backlinks, orphans and frontmatter filters need to
//! know about every page at one commit, without reading every page for every question.
//!
//! For each page at the commit it holds the page's blob id, its frontmatter `category` and
//! `tags`, the pages it links to, and its words with their counts; across pages, the word
//! postings (which pages contain a word) and the incoming links. It describes exactly one
//! commit (and its root tree), and is only ever answered from after being brought to the tip
//! the caller just read: by nothing (same commit), by diffing the tree it describes against
//! the tip's tree (git trees are content-addressed, so the diff is exact whoever made the
//! commits: wikibot, `git push`, a rebase), or by rebuilding from the tip's tree when the old
//! tree is gone. A wikibot commit moves the in-memory index along from the changes in hand.
//! Why this never answers from a stale state: `docs/decisions/0006-page-index.md`.
//!
//! It is derived data, kept in memory across warm invocations and saved to
//! `<git dir>/wikibot/page-index` (written whole under a temporary name and renamed, so a
//! reader sees an old index or a new one) for fresh processes, which load it and bring it to
//! the tip like any other. A file that does not parse or whose checksum does not match is
//! ignored. This module must not decide what a tool shows (`queries.rs` does), and must not
//! write anything but its own file.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use git2::{FileMode, Oid};

use super::fs::{read_if_present, replace_file};
use super::lock::WIKIBOT_DIR;
use super::objects::{Entry, Objects};
use super::search::{self, Query, Term};
use super::{PagePath, StoreError, frontmatter, links};

const FILE_NAME: &str = "page-index";
/// Prefix of the temporary files the index is written to (maintenance removes leftovers).
pub(crate) const TEMPORARY_PREFIX: &str = "tmp_page-index_";
const MAGIC: &[u8; 8] = b"WBPAGE2\n";
/// A word of the page's path counts this many times: a page named after a word is about it.
const PATH_WEIGHT: u32 = 5;
/// Postings pack a page's slot and its word count (capped) into one `u32`.
const TF_BITS: u32 = 8;
const MAX_TF: u32 = (1 << TF_BITS) - 1;
const MAX_SLOTS: usize = 1 << (32 - TF_BITS);

/// One page, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedPage {
    pub page: PagePath,
    pub blob: Oid,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Why the frontmatter could not be read, if it could not.
    pub frontmatter_error: Option<String>,
    /// The pages it links to, sorted, each once.
    pub links: Vec<PagePath>,
    /// Word ids and how often each occurs, by id.
    terms: Vec<(u32, u32)>,
    /// Words in the page (path words included), for ranking.
    pub words: u32,
    /// UTF-8 text (else nothing but its name is indexed).
    pub text: bool,
}

/// How a page index was brought to a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    Current,
    Updated { pages: usize },
    Rebuilt { pages: usize },
}

/// Pages that match a query, best first, before phrases are checked.
pub(crate) struct Candidates {
    pub ranked: Vec<(PagePath, Oid, f64)>,
    /// For each term of the query, how many pages have it (whatever the other terms).
    pub pages_per_term: Vec<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct PageIndex {
    /// `Some(commit)`: describes that commit; `Some(None)`: a wiki without commits; `None`:
    /// describes nothing yet.
    described: Option<Option<Oid>>,
    tree: Option<Oid>,
    slots: Vec<Option<IndexedPage>>,
    free: Vec<u32>,
    by_path: BTreeMap<PagePath, u32>,
    term_ids: HashMap<Box<str>, u32>,
    terms: Vec<Box<str>>,
    /// For each word id: `slot << TF_BITS | count`.
    postings: Vec<Vec<u32>>,
    /// For each linked page: the slots of the pages linking to it.
    incoming: HashMap<PagePath, Vec<u32>>,
    total_words: u64,
}

impl PageIndex {
    pub(crate) fn path(git_dir: &Path) -> PathBuf {
        git_dir.join(WIKIBOT_DIR).join(FILE_NAME)
    }

    /// Whether this index describes `commit` (`None`: a wiki without commits).
    pub(crate) fn describes(&self, commit: Option<Oid>) -> bool {
        self.described == Some(commit)
    }

    /// The commit it describes.
    pub(crate) fn commit(&self) -> Option<Oid> {
        self.described.flatten()
    }

    /// Records that the pages now are those of `commit` with root `tree`.
    pub(crate) fn moved_to(&mut self, commit: Oid, tree: Oid) {
        self.described = Some(Some(commit));
        self.tree = Some(tree);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_path.len()
    }

    pub(crate) fn page(&self, page: &PagePath) -> Option<&IndexedPage> {
        self.by_path.get(page).and_then(|slot| self.slot(*slot))
    }

    fn slot(&self, slot: u32) -> Option<&IndexedPage> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Pages whose path starts with `prefix`, in path order.
    pub(crate) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a IndexedPage> + 'a {
        self.by_path
            .iter()
            .skip_while(move |(page, _)| page.as_str() < prefix)
            .take_while(move |(page, _)| page.as_str().starts_with(prefix))
            .filter_map(|(_, slot)| self.slot(*slot))
    }

    /// The other pages that link to `target`, sorted.
    pub(crate) fn linking_to(&self, target: &PagePath) -> Vec<&PagePath> {
        let mut sources: Vec<&PagePath> = self
            .incoming
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|slot| self.slot(*slot))
            .map(|page| &page.page)
            .filter(|page| *page != target)
            .collect();
        sources.sort();
        sources
    }

    /// Pages no other page links to, in path order.
    pub(crate) fn orphans(&self) -> impl Iterator<Item = &PagePath> + '_ {
        self.by_path.iter().filter_map(|(page, slot)| {
            let linked = self
                .incoming
                .get(page)
                .is_some_and(|sources| sources.iter().any(|s| s != slot));
            (!linked).then_some(page)
        })
    }

    /// Adds or replaces a page (`text` is `None` when the blob is not UTF-8).
    pub(crate) fn set_page(&mut self, page: PagePath, blob: Oid, text: Option<&str>) {
        if self.page(&page).is_some_and(|p| p.blob == blob) {
            return;
        }
        self.insert(analyse(&page, blob, text));
    }

    fn insert(&mut self, analysed: Analysed) {
        let Analysed { mut page, words } = analysed;
        page.terms = words
            .into_iter()
            .map(|(word, count)| (self.term_id(&word), count))
            .collect();
        page.terms.sort_unstable();
        self.insert_indexed(page);
    }

    /// Adds a page whose word ids are known (replacing one of the same name).
    fn insert_indexed(&mut self, page: IndexedPage) {
        if self.by_path.contains_key(&page.page) {
            self.remove_page(&page.page);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
            // Sixteen million pages: the rest are not indexed rather than mis-indexed.
            None => return,
        };
        self.post(slot, &page);
        self.by_path.insert(page.page.clone(), slot);
        self.slots[slot as usize] = Some(page);
    }

    fn term_id(&mut self, word: &str) -> u32 {
        if let Some(id) = self.term_ids.get(word) {
            return *id;
        }
        let id = u32::try_from(self.terms.len()).unwrap_or(u32::MAX);
        self.terms.push(word.into());
        self.term_ids.insert(word.into(), id);
        self.postings.push(Vec::new());
        id
    }

    pub(crate) fn remove_page(&mut self, page: &PagePath) {
        let Some(slot) = self.by_path.remove(page) else {
            return;
        };
        let Some(removed) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        for (term, _) in &removed.terms {
            if let Some(list) = self.postings.get_mut(*term as usize) {
                list.retain(|p| p >> TF_BITS != slot);
            }
        }
        for target in &removed.links {
            if let Some(sources) = self.incoming.get_mut(target) {
                sources.retain(|s| *s != slot);
                if sources.is_empty() {
                    self.incoming.remove(target);
                }
            }
        }
        self.total_words = self.total_words.saturating_sub(u64::from(removed.words));
        self.free.push(slot);
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    /// Brings the index to `tip` (the branch's commit, just read): nothing to do, a diff of
    /// the tree it describes against the tip's, or a rebuild from the tip's tree.
    pub(crate) fn bring_to(
        &mut self,
        objects: &Objects<'_>,
        tip: Option<Oid>,
    ) -> Result<Refresh, StoreError> {
        if self.describes(tip) {
            return Ok(Refresh::Current);
        }
        let Some(tip) = tip else {
            self.clear();
            self.described = Some(None);
            return Ok(Refresh::Rebuilt { pages: 0 });
        };
        let new_tree = objects.commit(tip)?.tree_id();
        let old_tree = if self.described.is_some() {
            self.tree
        } else {
            None
        };
        let refresh = match old_tree {
            Some(old) if old == new_tree => Refresh::Updated { pages: 0 },
            Some(old) => match changed_pages(objects, old, new_tree) {
                Ok(changed) => {
                    let pages = changed.len();
                    self.apply(objects, changed)?;
                    Refresh::Updated { pages }
                }
                // The tree it describes is gone (history rewritten and pruned): start over.
                Err(StoreError::Git(e)) if e.code() == git2::ErrorCode::NotFound => {
                    self.rebuild(objects, new_tree)?
                }
                Err(e) => return Err(e),
            },
            None => self.rebuild(objects, new_tree)?,
        };
        self.moved_to(tip, new_tree);
        Ok(refresh)
    }

    fn rebuild(&mut self, objects: &Objects<'_>, tree: Oid) -> Result<Refresh, StoreError> {
        self.clear();
        let mut pages = Vec::new();
        walk_files(objects, tree, "", &mut |path, entry| {
            pages.push((path, Some(entry)));
        })?;
        let count = pages.len();
        self.apply(objects, pages)?;
        Ok(Refresh::Rebuilt { pages: count })
    }

    /// Applies changed tree paths (their new entry, or `None` if gone).
    fn apply(
        &mut self,
        objects: &Objects<'_>,
        changed: Vec<(String, Option<Entry>)>,
    ) -> Result<(), StoreError> {
        for (path, entry) in changed {
            let Some(page) = PagePath::from_tree_path(&path) else {
                continue;
            };
            match entry.filter(Entry::is_file) {
                Some(entry) => {
                    if self.page(&page).is_some_and(|p| p.blob == entry.id) {
                        continue;
                    }
                    let blob = objects.blob(entry.id)?;
                    let text = std::str::from_utf8(blob.content()).ok();
                    self.insert(analyse(&page, entry.id, text));
                }
                None => self.remove_page(&page),
            }
        }
        Ok(())
    }

    /// Pages that have every term of `query`, ranked by BM25 (phrases are checked against
    /// the text by the caller).
    pub(crate) fn candidates(&self, query: &Query, prefix: &str) -> Candidates {
        let total = self.by_path.len().max(1);
        let average = self.total_words as f64 / total as f64;
        // Per term: page slot → count.
        let mut per_term: Vec<HashMap<u32, u32>> = Vec::with_capacity(query.terms.len());
        for term in &query.terms {
            per_term.push(self.term_pages(term));
        }
        let pages_per_term = per_term.iter().map(HashMap::len).collect();
        let Some(smallest) = (0..per_term.len()).min_by_key(|i| per_term[*i].len()) else {
            return Candidates {
                ranked: Vec::new(),
                pages_per_term,
            };
        };
        let idfs: Vec<f64> = per_term
            .iter()
            .map(|pages| search::idf(pages.len(), total))
            .collect();
        let mut ranked = Vec::new();
        for slot in per_term[smallest].keys() {
            let Some(page) = self.slot(*slot) else {
                continue;
            };
            if !page.page.as_str().starts_with(prefix) {
                continue;
            }
            let mut score = 0.0;
            let mut all = true;
            for (pages, idf) in per_term.iter().zip(&idfs) {
                match pages.get(slot) {
                    Some(count) => score += search::bm25(*count, page.words, average, *idf),
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                ranked.push((page.page.clone(), page.blob, score));
            }
        }
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        Candidates {
            ranked,
            pages_per_term,
        }
    }

    /// The pages a term occurs in, with its count in each.
    fn term_pages(&self, term: &Term) -> HashMap<u32, u32> {
        let postings = |word: &str| -> HashMap<u32, u32> {
            self.term_ids
                .get(word)
                .map(|id| {
                    self.postings[*id as usize]
                        .iter()
                        .map(|p| (p >> TF_BITS, p & MAX_TF))
                        .collect()
                })
                .unwrap_or_default()
        };
        match term {
            Term::Word(word) => postings(word),
            Term::Prefix(prefix) => {
                let mut pages: HashMap<u32, u32> = HashMap::new();
                for (id, word) in self.terms.iter().enumerate() {
                    if word.starts_with(prefix.as_str()) {
                        for p in &self.postings[id] {
                            *pages.entry(p >> TF_BITS).or_default() += p & MAX_TF;
                        }
                    }
                }
                pages
            }
            Term::Phrase(words) => {
                // A page has the phrase only if it has every word; its count is bounded by
                // the rarest word's.
                let mut lists: Vec<HashMap<u32, u32>> = words.iter().map(|w| postings(w)).collect();
                lists.sort_by_key(HashMap::len);
                let mut iter = lists.into_iter();
                let Some(mut pages) = iter.next() else {
                    return HashMap::new();
                };
                for other in iter {
                    pages.retain(|slot, count| match other.get(slot) {
                        Some(c) => {
                            *count = (*count).min(*c);
                            true
                        }
                        None => false,
                    });
                }
                pages
            }
        }
    }

    /// Reads the saved index of the repository at `git_dir`; `None` if there is none or it
    /// cannot be trusted (the caller builds one from git instead).
    pub(crate) fn load(git_dir: &Path) -> io::Result<Option<Self>> {
        Ok(read_if_present(&Self::path(git_dir))?.and_then(|bytes| Self::decode(&bytes)))
    }

    /// Saves the index next to the repository, atomically.
    pub(crate) fn save(&self, git_dir: &Path) -> io::Result<()> {
        replace_file(&Self::path(git_dir), TEMPORARY_PREFIX, &self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024 + self.by_path.len() * 512);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.commit().unwrap_or(Oid::ZERO_SHA1).as_bytes());
        out.extend_from_slice(self.tree.unwrap_or(Oid::ZERO_SHA1).as_bytes());
        put_varint(&mut out, self.terms.len() as u64);
        for term in &self.terms {
            put_str(&mut out, term);
        }
        put_varint(&mut out, self.by_path.len() as u64);
        for slot in self.by_path.values() {
            let Some(page) = self.slot(*slot) else {
                continue;
            };
            put_str(&mut out, page.page.as_str());
            out.extend_from_slice(page.blob.as_bytes());
            out.push(u8::from(page.text));
            put_str(&mut out, page.category.as_deref().unwrap_or_default());
            put_str(
                &mut out,
                page.frontmatter_error.as_deref().unwrap_or_default(),
            );
            put_varint(&mut out, page.tags.len() as u64);
            for tag in &page.tags {
                put_str(&mut out, tag);
            }
            put_varint(&mut out, page.links.len() as u64);
            for link in &page.links {
                put_str(&mut out, link.as_str());
            }
            put_varint(&mut out, u64::from(page.words));
            put_varint(&mut out, page.terms.len() as u64);
            let mut previous = 0;
            for (term, count) in &page.terms {
                put_varint(&mut out, u64::from(term - previous));
                put_varint(&mut out, u64::from(*count));
                previous = *term;
            }
        }
        let checksum = crc32(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32(body).to_le_bytes() != checksum {
            return None;
        }
        let mut reader = Reader(body);
        if reader.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let commit = Oid::from_bytes(reader.take(20)?).ok()?;
        let tree = Oid::from_bytes(reader.take(20)?).ok()?;
        let mut index = Self {
            described: Some((!commit.is_zero()).then_some(commit)),
            tree: (!tree.is_zero()).then_some(tree),
            ..Self::default()
        };
        let term_count = reader.count()?;
        for _ in 0..term_count {
            let term = reader.str()?;
            index.term_id(term);
        }
        // Pages link to the same pages over and over: validate each name once.
        let mut names: HashMap<&str, PagePath> = HashMap::new();
        let count = reader.count()?;
        let mut pages = Vec::with_capacity(count);
        let mut postings_len = vec![0usize; term_count];
        for _ in 0..count {
            let page = intern(&mut names, reader.str()?)?;
            let blob = Oid::from_bytes(reader.take(20)?).ok()?;
            let text = reader.take(1)?[0] == 1;
            let category = Some(reader.str()?.to_owned()).filter(|c| !c.is_empty());
            let frontmatter_error = Some(reader.str()?.to_owned()).filter(|e| !e.is_empty());
            let tags = (0..reader.count()?)
                .map(|_| reader.str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            let links = (0..reader.count()?)
                .map(|_| reader.str().and_then(|raw| intern(&mut names, raw)))
                .collect::<Option<Vec<_>>>()?;
            let words = u32::try_from(reader.varint()?).ok()?;
            let term_total = reader.count()?;
            let mut terms = Vec::with_capacity(term_total);
            let mut previous = 0u32;
            for _ in 0..term_total {
                let term = previous.checked_add(u32::try_from(reader.varint()?).ok()?)?;
                *postings_len.get_mut(term as usize)? += 1;
                terms.push((term, u32::try_from(reader.varint()?).ok()?));
                previous = term;
            }
            pages.push(IndexedPage {
                page,
                blob,
                category,
                tags,
                frontmatter_error,
                links,
                terms,
                words,
                text,
            });
        }
        if !reader.0.is_empty() || pages.windows(2).any(|w| w[0].page >= w[1].page) {
            return None;
        }
        index.fill(pages, &postings_len);
        Some(index)
    }

    /// Enters `page`, held in `slot`, into the postings, the backlinks and the word count.
    fn post(&mut self, slot: u32, page: &IndexedPage) {
        for (term, count) in &page.terms {
            if let Some(list) = self.postings.get_mut(*term as usize) {
                list.push(slot << TF_BITS | (*count).min(MAX_TF));
            }
        }
        for target in &page.links {
            match self.incoming.get_mut(target) {
                Some(sources) => sources.push(slot),
                None => {
                    self.incoming.insert(target.clone(), vec![slot]);
                }
            }
        }
        self.total_words += u64::from(page.words);
    }

    /// Fills an empty index with distinct pages in path order, postings sized up front.
    fn fill(&mut self, pages: Vec<IndexedPage>, postings_len: &[usize]) {
        for (list, len) in self.postings.iter_mut().zip(postings_len) {
            list.reserve_exact(*len);
        }
        let mut by_path = Vec::with_capacity(pages.len());
        for (slot, page) in pages.into_iter().enumerate() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            self.post(slot, &page);
            by_path.push((page.page.clone(), slot));
            self.slots.push(Some(page));
        }
        // Already sorted: the map is built in one pass.
        self.by_path = by_path.into_iter().collect();
    }
}

/// CRC-32 (zlib's): catches a torn or corrupted file; the index is derived data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// The page named `raw`, validated once per distinct name.
fn intern<'a>(names: &mut HashMap<&'a str, PagePath>, raw: &'a str) -> Option<PagePath> {
    if let Some(page) = names.get(raw) {
        return Some(page.clone());
    }
    let page = PagePath::parse(raw).ok()?;
    names.insert(raw, page.clone());
    Some(page)
}

/// A page analysed, before its words have ids.
struct Analysed<'t> {
    page: IndexedPage,
    words: HashMap<Cow<'t, str>, u32>,
}

fn analyse<'t>(page: &'t PagePath, blob: Oid, text: Option<&'t str>) -> Analysed<'t> {
    let mut words: HashMap<Cow<'t, str>, u32> = HashMap::new();
    let mut total = 0u32;
    for (word, _) in search::words(page.as_str()) {
        *words.entry(word).or_default() += PATH_WEIGHT;
        total += PATH_WEIGHT;
    }
    let (mut category, mut tags, mut frontmatter_error, mut targets) =
        (None, Vec::new(), None, Vec::new());
    if let Some(text) = text {
        for (word, _) in search::words(text) {
            *words.entry(word).or_default() += 1;
            total = total.saturating_add(1);
        }
        match frontmatter::parse(text) {
            Ok(Some(fields)) => {
                category = frontmatter::category(&fields);
                tags = frontmatter::tags(&fields);
            }
            Ok(None) => {}
            Err(e) => frontmatter_error = Some(e.to_string()),
        }
        targets = links::targets(text, page);
    }
    Analysed {
        page: IndexedPage {
            page: page.clone(),
            blob,
            category,
            tags,
            frontmatter_error,
            links: targets,
            terms: Vec::new(),
            words: total,
            text: text.is_some(),
        },
        words,
    }
}

/// Every regular file below `tree`, with its path.
fn walk_files(
    objects: &Objects<'_>,
    tree: Oid,
    prefix: &str,
    found: &mut impl FnMut(String, Entry),
) -> Result<(), StoreError> {
    let mut pending = vec![(prefix.to_owned(), tree)];
    while let Some((dir, id)) = pending.pop() {
        for item in objects.tree(id)?.iter() {
            let Ok(name) = item.name() else { continue };
            let entry = Entry {
                id: item.id(),
                mode: item.filemode(),
            };
            if entry.mode == i32::from(FileMode::Tree) {
                pending.push((format!("{dir}{name}/"), entry.id));
            } else if entry.is_file() {
                found(format!("{dir}{name}"), entry);
            }
        }
    }
    Ok(())
}

/// The file paths that differ between two trees, with their entry in `new` (`None`: gone).
/// Subtrees with the same id are skipped whole: a one-page commit reads only its path.
fn changed_pages(
    objects: &Objects<'_>,
    old: Oid,
    new: Oid,
) -> Result<Vec<(String, Option<Entry>)>, StoreError> {
    changed_files(objects, Some(old), Some(new))
}

/// Like [`changed_pages`], from or to no tree at all (`None`: the empty tree).
pub(crate) fn changed_files(
    objects: &Objects<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
) -> Result<Vec<(String, Option<Entry>)>, StoreError> {
    let mut changed = Vec::new();
    diff_trees(objects, old, new, "", &mut changed)?;
    Ok(changed)
}

fn diff_trees(
    objects: &Objects<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
    prefix: &str,
    changed: &mut Vec<(String, Option<Entry>)>,
) -> Result<(), StoreError> {
    if old == new {
        return Ok(());
    }
    let entries = |id: Option<Oid>| -> Result<BTreeMap<String, Entry>, StoreError> {
        let mut map = BTreeMap::new();
        if let Some(id) = id {
            for item in objects.tree(id)?.iter() {
                if let Ok(name) = item.name() {
                    map.insert(
                        name.to_owned(),
                        Entry {
                            id: item.id(),
                            mode: item.filemode(),
                        },
                    );
                }
            }
        }
        Ok(map)
    };
    let old_entries = entries(old)?;
    let new_entries = entries(new)?;
    let tree_mode = i32::from(FileMode::Tree);
    let names: std::collections::BTreeSet<&String> =
        old_entries.keys().chain(new_entries.keys()).collect();
    for name in names {
        let before = old_entries.get(name).copied();
        let after = new_entries.get(name).copied();
        if before == after {
            continue;
        }
        let path = format!("{prefix}{name}");
        let before_tree = before.filter(|e| e.mode == tree_mode).map(|e| e.id);
        let after_tree = after.filter(|e| e.mode == tree_mode).map(|e| e.id);
        if before_tree.is_some() || after_tree.is_some() {
            diff_trees(
                objects,
                before_tree,
                after_tree,
                &format!("{path}/"),
                changed,
            )?;
        }
        let before_file = before.filter(Entry::is_file);
        let after_file = after.filter(Entry::is_file);
        if before_file != after_file {
            changed.push((path, after_file));
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A count of things that each take at least a byte: never more than the bytes left.
    fn count(&mut self) -> Option<usize> {
        let count = usize::try_from(self.varint()?).ok()?;
        (count <= self.0.len()).then_some(count)
    }

    fn str(&mut self) -> Option<&'a str> {
        let length = self.count()?;
        std::str::from_utf8(self.take(length)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(raw: &str) -> PagePath {
        PagePath::parse(raw).unwrap()
    }

    fn blob(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn sample() -> PageIndex {
        let mut index = PageIndex::default();
        index.set_page(
            page("Home"),
            blob(1),
            Some("---\ncategory: Hub\ntags: [start]\n---\nSee [[Dev/Plan]] and [[Missing]]."),
        );
        index.set_page(
            page("Dev/Plan"),
            blob(2),
            Some("The plan: cold start numbers. [home](../Home.md)"),
        );
        index.set_page(
            page("Dev/Lonely"),
            blob(3),
            Some("cold cold cold, nobody links here"),
        );
        index.set_page(page("Bad"), blob(4), Some("---\ntags: [x\n---\nbody"));
        index.moved_to(blob(9), blob(8));
        index
    }

    #[test]
    fn links_backlinks_and_orphans() {
        let index = sample();
        assert_eq!(index.linking_to(&page("Dev/Plan")), [&page("Home")]);
        assert_eq!(index.linking_to(&page("Home")), [&page("Dev/Plan")]);
        assert_eq!(index.linking_to(&page("Missing")), [&page("Home")]);
        let orphans: Vec<&PagePath> = index.orphans().collect();
        assert_eq!(orphans, [&page("Bad"), &page("Dev/Lonely")]);
        let home = index.page(&page("Home")).unwrap();
        assert_eq!(home.category.as_deref(), Some("Hub"));
        assert_eq!(home.tags, ["start"]);
        assert!(
            index
                .page(&page("Bad"))
                .unwrap()
                .frontmatter_error
                .is_some()
        );
    }

    #[test]
    fn candidates_need_every_term_and_rank_by_density() {
        let index = sample();
        let query = Query::parse("cold").unwrap();
        let found = index.candidates(&query, "");
        let names: Vec<&str> = found.ranked.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(names, ["Dev/Lonely", "Dev/Plan"]);
        let both = index.candidates(&Query::parse("cold plan").unwrap(), "");
        assert_eq!(both.ranked.len(), 1);
        assert_eq!(
            both.pages_per_term,
            [2, 2],
            "Home links to Dev/Plan: it has the word"
        );
        assert!(
            index
                .candidates(&Query::parse("co*").unwrap(), "Dev/Plan")
                .ranked
                .len()
                == 1
        );
        assert!(
            index
                .candidates(&Query::parse("nothing").unwrap(), "")
                .ranked
                .is_empty()
        );
    }

    #[test]
    fn replacing_and_removing_pages_updates_postings_and_links() {
        let mut index = sample();
        index.set_page(page("Dev/Plan"), blob(5), Some("now about warm starts"));
        assert!(
            index
                .candidates(&Query::parse("numbers").unwrap(), "")
                .ranked
                .is_empty()
        );
        assert_eq!(
            index
                .candidates(&Query::parse("warm").unwrap(), "")
                .ranked
                .len(),
            1
        );
        assert!(index.linking_to(&page("Home")).is_empty());
        index.remove_page(&page("Home"));
        assert!(index.linking_to(&page("Dev/Plan")).is_empty());
        assert_eq!(index.len(), 3);
        index.set_page(page("New"), blob(6), Some("[[Dev/Plan]]"));
        assert_eq!(index.linking_to(&page("Dev/Plan")), [&page("New")]);
    }

    #[test]
    fn the_saved_form_round_trips_and_corruption_is_refused() {
        let index = sample();
        let bytes = index.encode();
        let decoded = PageIndex::decode(&bytes).expect("round trip");
        assert!(decoded.describes(Some(blob(9))));
        assert_eq!(decoded.tree, Some(blob(8)));
        for name in ["Home", "Dev/Plan", "Dev/Lonely", "Bad"] {
            let (a, b) = (
                index.page(&page(name)).unwrap(),
                decoded.page(&page(name)).unwrap(),
            );
            assert_eq!(
                (&a.page, a.blob, &a.links, &a.tags, a.words),
                (&b.page, b.blob, &b.links, &b.tags, b.words)
            );
        }
        let query = Query::parse("cold").unwrap();
        assert_eq!(
            decoded.candidates(&query, "").ranked,
            index.candidates(&query, "").ranked
        );
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(PageIndex::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(PageIndex::decode(&flipped).is_none());
    }
}

//! Full-text search over page text: the tokenizer the page index is built with, the query
//! language, and the matching lines shown with each result.
//!
//! Words are runs of letters and digits (Unicode), lowercased; everything else separates
//! them, so `EFS-based` is `efs` `based` and matching ignores case. A query is words (all
//! must occur in a page, in any order), `"quoted phrases"` (the words in that order), and
//! `prefix*` (any word starting with it). This module must not read git; it works on text the
//! caller hands it.

use std::borrow::Cow;
use std::ops::Range;

/// Longest word indexed; longer runs (hashes, base64) are not words anyone searches for.
pub const MAX_WORD_CHARS: usize = 64;
/// Most terms in one query.
pub const MAX_QUERY_TERMS: usize = 16;
/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Shortest prefix for `prefix*`.
pub const MIN_PREFIX_CHARS: usize = 2;
/// Longest snippet of a matching line, in characters.
pub const SNIPPET_CHARS: usize = 160;

/// The words of `text` with their byte ranges, lowercased (borrowed from `text` when they
/// already are: most words are, and indexing a wiki tokenizes all of it).
pub fn words(text: &str) -> impl Iterator<Item = (Cow<'_, str>, Range<usize>)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (start, first) = chars.next()?;
            if !first.is_alphanumeric() {
                continue;
            }
            let mut end = start + first.len_utf8();
            let mut count = 1;
            while let Some(&(at, c)) = chars.peek() {
                if !c.is_alphanumeric() {
                    break;
                }
                end = at + c.len_utf8();
                count += 1;
                chars.next();
            }
            if count > MAX_WORD_CHARS {
                continue;
            }
            let word = &text[start..end];
            let lowered = if word
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
            {
                Cow::Borrowed(word)
            } else {
                Cow::Owned(word.chars().flat_map(char::to_lowercase).collect())
            };
            return Some((lowered, start..end));
        }
    })
}

/// One part of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word that must occur.
    Word(String),
    /// Any word starting with this.
    Prefix(String),
    /// Words that must occur one after the other (also a bare `snake_case` or `EFS-based`,
    /// which the tokenizer splits).
    Phrase(Vec<String>),
}

impl Term {
    /// The words a page must contain for this term to match (a prefix has none exactly).
    pub fn required_words(&self) -> &[String] {
        match self {
            Term::Word(word) => std::slice::from_ref(word),
            Term::Phrase(words) => words,
            Term::Prefix(_) => &[],
        }
    }

    /// The term as the query says it.
    pub fn describe(&self) -> String {
        match self {
            Term::Word(word) => word.clone(),
            Term::Prefix(prefix) => format!("{prefix}*"),
            Term::Phrase(words) => format!("\"{}\"", words.join(" ")),
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query has no words to search for (letters or digits)")]
    Empty,
    #[error("the query is {0} bytes; at most {MAX_QUERY_BYTES} are accepted")]
    TooLong(usize),
    #[error("the query has {0} terms; at most {MAX_QUERY_TERMS} are used")]
    TooManyTerms(usize),
    #[error("'{0}*' is too short a prefix: give at least {MIN_PREFIX_CHARS} letters before '*'")]
    ShortPrefix(String),
}

impl Query {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong(raw.len()));
        }
        let mut terms = Vec::new();
        // Quotes alternate between outside and inside a phrase; an unclosed quote closes at
        // the end.
        for (i, part) in raw.split('"').enumerate() {
            if i % 2 == 1 {
                let phrase: Vec<String> = words(part).map(|(w, _)| w.into_owned()).collect();
                push_words(&mut terms, phrase);
                continue;
            }
            for chunk in part.split_whitespace() {
                let (body, prefix) = match chunk.strip_suffix('*') {
                    Some(body) => (body, true),
                    None => (chunk, false),
                };
                let found: Vec<String> = words(body).map(|(w, _)| w.into_owned()).collect();
                if prefix && found.len() == 1 {
                    let stem = found.into_iter().next().unwrap_or_default();
                    if stem.chars().count() < MIN_PREFIX_CHARS {
                        return Err(QueryError::ShortPrefix(stem));
                    }
                    terms.push(Term::Prefix(stem));
                } else {
                    push_words(&mut terms, found);
                }
            }
        }
        terms.dedup();
        if terms.is_empty() {
            return Err(QueryError::Empty);
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(QueryError::TooManyTerms(terms.len()));
        }
        Ok(Self { terms })
    }

    /// The query as it was understood, for messages.
    pub fn describe(&self) -> String {
        self.terms
            .iter()
            .map(Term::describe)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `text` has every phrase of the query (words and prefixes are settled by the
    /// index).
    pub fn phrases_match(&self, text: &str) -> bool {
        let phrases: Vec<&[String]> = self
            .terms
            .iter()
            .filter_map(|t| match t {
                Term::Phrase(words) => Some(words.as_slice()),
                _ => None,
            })
            .collect();
        if phrases.is_empty() {
            return true;
        }
        let tokens: Vec<Cow<'_, str>> = words(text).map(|(w, _)| w).collect();
        phrases
            .iter()
            .all(|phrase| contains_sequence(&tokens, phrase))
    }

    /// Lines of `text` where a term matches, first to last: (1-based line number, snippet).
    pub fn matching_lines(&self, text: &str, max: usize) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if found.len() >= max {
                break;
            }
            if let Some(hit) = self.first_hit(line) {
                found.push((number + 1, snippet(line, hit)));
            }
        }
        found
    }

    /// The byte range of the first term that matches in `line`.
    fn first_hit(&self, line: &str) -> Option<Range<usize>> {
        let tokens: Vec<(Cow<'_, str>, Range<usize>)> = words(line).collect();
        let mut best: Option<Range<usize>> = None;
        for term in &self.terms {
            let hit = match term {
                Term::Word(word) => tokens
                    .iter()
                    .find(|(w, _)| w.as_ref() == word.as_str())
                    .map(|t| t.1.clone()),
                Term::Prefix(prefix) => tokens
                    .iter()
                    .find(|(w, _)| w.starts_with(prefix.as_str()))
                    .map(|t| t.1.clone()),
                Term::Phrase(phrase) => tokens
                    .windows(phrase.len().max(1))
                    .find(|window| {
                        window
                            .iter()
                            .map(|t| t.0.as_ref())
                            .eq(phrase.iter().map(String::as_str))
                    })
                    .and_then(|window| Some(window.first()?.1.start..window.last()?.1.end)),
            };
            if let Some(hit) = hit
                && best.as_ref().is_none_or(|b| hit.start < b.start)
            {
                best = Some(hit);
            }
        }
        best
    }
}

fn push_words(terms: &mut Vec<Term>, mut found: Vec<String>) {
    match found.len() {
        0 => {}
        1 => terms.push(Term::Word(found.remove(0))),
        _ => terms.push(Term::Phrase(found)),
    }
}

fn contains_sequence(tokens: &[Cow<'_, str>], phrase: &[String]) -> bool {
    !phrase.is_empty()
        && tokens.windows(phrase.len()).any(|window| {
            window
                .iter()
                .map(AsRef::as_ref)
                .eq(phrase.iter().map(String::as_str))
        })
}

/// `line`, trimmed, cut to [`SNIPPET_CHARS`] around `hit` with `…` where it was cut.
fn snippet(line: &str, hit: Range<usize>) -> String {
    let trimmed_start = line.len() - line.trim_start().len();
    let line_trimmed = line.trim();
    let hit = hit.start.saturating_sub(trimmed_start)..hit.end.saturating_sub(trimmed_start);
    let chars: Vec<(usize, char)> = line_trimmed.char_indices().collect();
    if chars.len() <= SNIPPET_CHARS {
        return line_trimmed.to_owned();
    }
    let hit_char = chars
        .iter()
        .position(|(at, _)| *at >= hit.start)
        .unwrap_or(0);
    let start = hit_char.saturating_sub(SNIPPET_CHARS / 3);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let start = end.saturating_sub(SNIPPET_CHARS);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(chars[start..end].iter().map(|(_, c)| c));
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Okapi BM25's weight of one term in one page.
pub fn bm25(term_frequency: u32, page_words: u32, average_words: f64, idf: f64) -> f64 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let tf = f64::from(term_frequency);
    let norm = 1.0 - B + B * f64::from(page_words) / average_words.max(1.0);
    idf * tf * (K1 + 1.0) / (tf + K1 * norm)
}

/// BM25's inverse document frequency of a term in `matching` of `total` pages.
pub fn idf(matching: usize, total: usize) -> f64 {
    let n = matching as f64;
    ((total as f64 - n + 0.5) / (n + 0.5) + 1.0).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word_list(text: &str) -> Vec<String> {
        words(text).map(|(w, _)| w.into_owned()).collect()
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        assert_eq!(
            word_list("EFS-based Lambda's p50: 1.5ms, Ünïcode_OK"),
            [
                "efs",
                "based",
                "lambda",
                "s",
                "p50",
                "1",
                "5ms",
                "ünïcode",
                "ok"
            ]
        );
        let long = "x".repeat(MAX_WORD_CHARS + 1);
        assert_eq!(word_list(&format!("a {long} b")), ["a", "b"]);
    }

    #[test]
    fn queries_have_words_phrases_and_prefixes() {
        let query = Query::parse(r#"Deploy "EFS  latency" bench* snake_case"#).unwrap();
        assert_eq!(
            query.terms,
            [
                Term::Word("deploy".into()),
                Term::Phrase(vec!["efs".into(), "latency".into()]),
                Term::Prefix("bench".into()),
                Term::Phrase(vec!["snake".into(), "case".into()]),
            ]
        );
        assert_eq!(Query::parse("  ...  "), Err(QueryError::Empty));
        assert_eq!(Query::parse("a*"), Err(QueryError::ShortPrefix("a".into())));
        assert_eq!(
            Query::parse(r#""unclosed phrase"#).unwrap().terms,
            [Term::Phrase(vec!["unclosed".into(), "phrase".into()])]
        );
    }

    #[test]
    fn matching_lines_report_numbers_and_snippets() {
        let query = Query::parse(r#""cold start" lambda"#).unwrap();
        let text = "# Notes\nNothing here\nA cold start of the Lambda\nLAMBDA again\ncold\nstart";
        assert_eq!(
            query.matching_lines(text, 10),
            [
                (3, "A cold start of the Lambda".to_owned()),
                (4, "LAMBDA again".to_owned())
            ]
        );
        assert!(query.phrases_match(text));
        assert!(!query.phrases_match("start cold lambda"));
        let long = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let lines = Query::parse("needle").unwrap().matching_lines(&long, 1);
        let (_, snippet) = &lines[0];
        assert!(snippet.contains("needle") && snippet.starts_with('…') && snippet.ends_with('…'));
        assert!(snippet.chars().count() <= SNIPPET_CHARS + 2);
    }

    #[test]
    fn bm25_prefers_rarer_terms_and_denser_pages() {
        assert!(idf(1, 1000) > idf(500, 1000));
        assert!(bm25(3, 100, 200.0, 1.0) > bm25(1, 100, 200.0, 1.0));
        assert!(bm25(1, 50, 200.0, 1.0) > bm25(1, 800, 200.0, 1.0));
    }
}

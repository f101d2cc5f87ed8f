//! YAML frontmatter: the block between a page's first line `---` and the next line `---` (or
//! `...`), as Jekyll, Hugo, Obsidian and Otter Wiki write it. It is parsed into JSON values
//! (what an assistant reads) and its `category` and `tags` are picked out for listing filters.
//!
//! Frontmatter that is not valid YAML, or not a mapping, is reported as a [`FrontmatterError`]
//! with the page line it points at; the page itself stays readable and writable as text. The
//! parser runs with a small budget (events, aliases, nesting), so a hostile page cannot make
//! it expand aliases into gigabytes. This module must not read or write git; it reads text.

use std::fmt;

use serde_json::{Map, Value};

/// Largest frontmatter block that is parsed, in bytes: a page of metadata is plenty.
pub const MAX_FRONTMATTER_BYTES: usize = 64 * 1024;

/// The fields of a page's frontmatter, as JSON.
pub type Fields = Map<String, Value>;

/// Why a page's frontmatter could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FrontmatterError {
    /// The line of the page the problem is on, when the parser knows it (1-based).
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for FrontmatterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "frontmatter is not valid (line {line}): {}",
                self.message
            ),
            None => write!(f, "frontmatter is not valid: {}", self.message),
        }
    }
}

/// Where a page's frontmatter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// The YAML between the delimiter lines.
    pub yaml: &'a str,
    /// Byte offset of the body: the first byte after the closing delimiter's line.
    pub body_start: usize,
}

/// The frontmatter block of `text`, if it opens with one: a first line `---` and a later
/// line `---` or `...` that closes it. Without the closing line there is none.
pub fn block(text: &str) -> Option<Block<'_>> {
    let text_start = text
        .strip_prefix('\u{feff}')
        .map_or(0, |_| '\u{feff}'.len_utf8());
    let mut lines = LineSpans::new(text, text_start);
    let (_, first) = lines.next()?;
    if first.trim_end() != "---" {
        return None;
    }
    let yaml_start = lines.offset;
    for (start, line) in lines {
        let delimiter = line.trim_end();
        if delimiter == "---" || delimiter == "..." {
            let body_start = (start + line.len()).min(text.len());
            let body_start = if text[body_start..].starts_with('\n') {
                body_start + 1
            } else {
                body_start
            };
            return Some(Block {
                yaml: &text[yaml_start..start],
                body_start,
            });
        }
    }
    None
}

/// Lines with their byte offsets, without their `\n`.
struct LineSpans<'a> {
    text: &'a str,
    offset: usize,
}

impl<'a> LineSpans<'a> {
    fn new(text: &'a str, offset: usize) -> Self {
        Self { text, offset }
    }
}

impl<'a> Iterator for LineSpans<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.offset..];
        let start = self.offset;
        let line = match rest.find('\n') {
            Some(end) => {
                self.offset += end + 1;
                &rest[..end]
            }
            None => {
                self.offset = self.text.len();
                rest
            }
        };
        Some((start, line))
    }
}

/// The page's frontmatter fields: `Ok(None)` when it has none, an error when it has a block
/// that is not a YAML mapping.
pub fn parse(text: &str) -> Result<Option<Fields>, FrontmatterError> {
    let Some(block) = block(text) else {
        return Ok(None);
    };
    if block.yaml.len() > MAX_FRONTMATTER_BYTES {
        return Err(FrontmatterError {
            line: Some(2),
            message: format!(
                "it is {} bytes; frontmatter of at most {MAX_FRONTMATTER_BYTES} bytes is read",
                block.yaml.len()
            ),
        });
    }
    if block.yaml.trim().is_empty() {
        return Ok(Some(Fields::new()));
    }
    let value: Value = serde_saphyr::from_str_with_options(block.yaml, options()).map_err(|e| {
        let e = e.without_snippet();
        // The YAML starts on the page's second line.
        let line = e.location().map(|l| l.line() + 1);
        FrontmatterError {
            line,
            message: first_line(&e.to_string()),
        }
    })?;
    match value {
        Value::Object(fields) => Ok(Some(fields)),
        Value::Null => Ok(Some(Fields::new())),
        other => Err(FrontmatterError {
            line: Some(2),
            message: format!(
                "it is {}, not a mapping of names to values (such as `tags: [a, b]`)",
                kind(&other)
            ),
        }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null | Value::Object(_) => "empty",
    }
}

/// The parser's message without its "error: line L column C:" prefix, on one line.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.split_once(": ") {
        Some((position, rest)) if position.starts_with("line ") => rest,
        _ => line,
    };
    line.chars().take(300).collect()
}

/// A budget far below the parser's defaults: frontmatter is a few dozen values.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000;
    budget.max_aliases = 200;
    budget.max_anchors = 200;
    budget.max_depth = 32;
    budget.max_nodes = 20_000;
    budget.max_total_scalar_bytes = 2 * MAX_FRONTMATTER_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The page's category: the `category` field when it is a string (or a number).
pub fn category(fields: &Fields) -> Option<String> {
    match fields.get("category")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The page's tags: the `tags` field as a list, or a comma-separated string; a leading `#`
/// (Obsidian's spelling) is dropped. In order, without repeats.
pub fn tags(fields: &Fields) -> Vec<String> {
    let raw: Vec<String> = match fields.get("tags") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let tag = tag.trim().trim_start_matches('#').trim();
        if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_block_between_delimiter_lines() {
        let text = "---\ntitle: A\n---\n# Body\n";
        let found = block(text).unwrap();
        assert_eq!(found.yaml, "title: A\n");
        assert_eq!(&text[found.body_start..], "# Body\n");
        let crlf = "---\r\ntags: [x]\r\n...\r\nbody";
        let found = block(crlf).unwrap();
        assert_eq!(found.yaml, "tags: [x]\r\n");
        assert_eq!(&crlf[found.body_start..], "body");
        assert_eq!(block("# No frontmatter\n---\nx: 1\n---\n"), None);
        assert_eq!(
            block("---\nnever closed\n"),
            None,
            "no closing line: no block"
        );
        let at_end = block("---\na: 1\n---").unwrap();
        assert_eq!(at_end.yaml, "a: 1\n");
        assert_eq!(at_end.body_start, "---\na: 1\n---".len());
    }

    #[test]
    fn parses_fields_category_and_tags() {
        let text = "---\ncategory: Projects\ntags: [alpha, '#beta', alpha]\nowner: ada\n---\nbody";
        let fields = parse(text).unwrap().unwrap();
        assert_eq!(category(&fields).as_deref(), Some("Projects"));
        assert_eq!(tags(&fields), ["alpha", "beta"]);
        assert_eq!(fields["owner"], "ada");
        let comma = parse("---\ntags: one, two ,three\n---\n").unwrap().unwrap();
        assert_eq!(tags(&comma), ["one", "two", "three"]);
        assert_eq!(parse("no frontmatter").unwrap(), None);
        assert_eq!(parse("---\n---\nbody").unwrap(), Some(Fields::new()));
    }

    #[test]
    fn invalid_yaml_is_an_error_that_names_the_page_line() {
        let error = parse("---\ntitle: ok\ntags: [unclosed\n---\nbody").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.to_string().contains("line 3"), "{error}");
        assert!(!error.message.contains('\n'));
        let list = parse("---\n- a\n- b\n---\n").unwrap_err();
        assert!(list.message.contains("a list"), "{list}");
    }

    #[test]
    fn alias_bombs_stop_at_the_budget() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = format!("*a{}", level - 1);
            yaml.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let text = format!("---\n{yaml}---\n");
        assert!(parse(&text).is_err());
    }
}

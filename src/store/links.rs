//! Links between pages: `[[WikiLinks]]` (with `|label` and `#section`) and Markdown links
//! `[text](dest)` whose destination is a page of this wiki, found outside code, resolved to
//! page paths, and rewritten when a page is renamed.
//!
//! Resolution: a WikiLink names a page from the wiki's root (`[[Dev/Plan]]`, a leading `/`
//! allowed); a Markdown destination is relative to the linking page's directory
//! (`[x](Notes.md)` on `Dev/Plan` is `Dev/Notes`, `../Home` goes up), or from the root when it
//! starts with `/`; it is percent-decoded, and a `.md` suffix, `#fragment` and `?query` are
//! dropped. External URLs (`https:`, `mailto:`…), bare `#anchors`, images and anything that
//! is not a valid page path are not page links. Names are matched exactly (case included).
//!
//! This module must not read or write git; it reads and rewrites text.

use std::ops::Range;

use super::{PAGE_FILE_SUFFIX, PagePath};

/// How a link is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Wiki,
    Markdown,
}

/// One link to a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    /// The page it points at.
    pub target: PagePath,
    /// Where the page part of the link is in the text (without label, section, fragment).
    pub span: Range<usize>,
    /// A Markdown destination that starts at the root (`/Dev/Plan`).
    pub from_root: bool,
    /// A Markdown destination written with the `.md` suffix.
    pub with_suffix: bool,
}

/// The page links in `text`, a page at `from`, in order of appearance.
pub fn links(text: &str, from: &PagePath) -> Vec<Link> {
    let mut found = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if let Some(marker) = fence_marker(line) {
            match fence {
                None => {
                    fence = Some(marker);
                    continue;
                }
                Some((c, n)) if marker.0 == c && marker.1 >= n && is_closing(line) => {
                    fence = None;
                    continue;
                }
                Some(_) => {}
            }
        }
        if fence.is_some() {
            continue;
        }
        scan_line(line, start, from, &mut found);
    }
    found
}

/// The distinct pages `text` links to, sorted.
pub fn targets(text: &str, from: &PagePath) -> Vec<PagePath> {
    let mut targets: Vec<PagePath> = links(text, from).into_iter().map(|l| l.target).collect();
    targets.sort();
    targets.dedup();
    targets
}

/// A code fence opening or closing line: up to three spaces, then ``` or ~~~ (or longer).
fn fence_marker(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = rest.chars().take_while(|x| *x == c).count();
    (n >= 3).then_some((c, n))
}

/// A closing fence has nothing after its marker but whitespace.
fn is_closing(line: &str) -> bool {
    let t = line.trim();
    let c = t.chars().next().unwrap_or(' ');
    t.chars().all(|x| x == c)
}

/// Finds the links in one line, skipping inline code spans.
fn scan_line(line: &str, line_start: usize, from: &PagePath, found: &mut Vec<Link>) {
    let code = code_spans(line);
    let in_code = |at: usize| code.iter().any(|r| r.contains(&at));
    let bytes = line.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if in_code(i) {
            i += 1;
            continue;
        }
        if bytes[i] == b'[' && bytes[i + 1] == b'[' {
            if let Some(end) = line[i + 2..].find("]]") {
                let inner_start = i + 2;
                let inner = &line[inner_start..inner_start + end];
                if let Some(link) = wiki_link(inner, line_start + inner_start) {
                    found.push(link);
                }
                i = inner_start + end + 2;
                continue;
            }
        } else if bytes[i] == b']'
            && bytes[i + 1] == b'('
            && let Some(open) = line[..i].rfind('[')
            && !line[..open].ends_with('!')
            && let Some(link) = markdown_link(&line[i + 2..], line_start + i + 2, from)
        {
            found.push(link);
        }
        i += 1;
    }
}

/// Byte ranges of inline code spans (backtick runs closed by a run of the same length).
fn code_spans(line: &str) -> Vec<Range<usize>> {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
        let mut j = i + run;
        let mut closed = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let other = bytes[j..].iter().take_while(|b| **b == b'`').count();
                if other == run {
                    closed = Some(j + other);
                    break;
                }
                j += other;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                spans.push(i..end);
                i = end;
            }
            None => i += run,
        }
    }
    spans
}

/// `Target`, `Target|label`, `Target#section`, `/Target#section|label`.
fn wiki_link(inner: &str, inner_start: usize) -> Option<Link> {
    let target_part = inner.split('|').next().unwrap_or_default();
    let page_part = target_part.split('#').next().unwrap_or_default();
    let lead = page_part.len() - page_part.trim_start().len();
    let trimmed = page_part.trim();
    let (slash, name) = match trimmed.strip_prefix('/') {
        Some(rest) => (1, rest),
        None => (0, trimmed),
    };
    let target = PagePath::parse(name).ok()?;
    let start = inner_start + lead + slash;
    Some(Link {
        kind: LinkKind::Wiki,
        target,
        span: start..start + name.len(),
        from_root: slash == 1,
        with_suffix: false,
    })
}

/// The destination after `](`: `dest)`, `dest "title")` or `<dest>)`.
fn markdown_link(rest: &str, rest_start: usize, from: &PagePath) -> Option<Link> {
    let (dest, dest_start) = if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        (&inner[..end], rest_start + 1)
    } else {
        let lead = rest.len() - rest.trim_start_matches(' ').len();
        let body = &rest[lead..];
        let end = body.find([' ', ')', '\t'])?;
        (&body[..end], rest_start + lead)
    };
    if dest.is_empty() || has_scheme(dest) || dest.starts_with('#') || dest.starts_with("//") {
        return None;
    }
    let path_len = dest.find(['#', '?']).unwrap_or(dest.len());
    let raw_path = &dest[..path_len];
    let decoded = percent_decode(raw_path)?;
    let (from_root, relative) = match decoded.strip_prefix('/') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, decoded),
    };
    let with_suffix = relative.ends_with(PAGE_FILE_SUFFIX);
    let relative = relative
        .strip_suffix(PAGE_FILE_SUFFIX)
        .unwrap_or(&relative)
        .to_owned();
    let base: Vec<&str> = if from_root {
        Vec::new()
    } else {
        directory(from)
    };
    let target = resolve(&base, &relative)?;
    Some(Link {
        kind: LinkKind::Markdown,
        target,
        span: dest_start..dest_start + path_len,
        from_root,
        with_suffix,
    })
}

/// `https:`, `mailto:`, `C:`…: a URL scheme (RFC 3986: a letter, then letters, digits,
/// `+`, `-`, `.`), which makes a destination external.
fn has_scheme(dest: &str) -> bool {
    let Some((scheme, _)) = dest.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The directory components of a page (`Dev/Plan` → `["Dev"]`).
fn directory(page: &PagePath) -> Vec<&str> {
    let mut parts: Vec<&str> = page.as_str().split('/').collect();
    parts.pop();
    parts
}

/// `relative` (with `.` and `..`) from directory `base`, as a page path.
fn resolve(base: &[&str], relative: &str) -> Option<PagePath> {
    let mut parts: Vec<&str> = base.to_vec();
    for component in relative.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    if relative.ends_with('/') || parts.is_empty() {
        return None;
    }
    PagePath::parse(&parts.join("/")).ok()
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Characters a Markdown destination cannot carry as they are.
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '%' => out.push_str("%25"),
            '#' => out.push_str("%23"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            c => out.push(c),
        }
    }
    out
}

/// How to write a link to `target` from a page in directory `from_dir`, relatively.
fn relative_path(from_dir: &[&str], target: &PagePath) -> String {
    let target_parts: Vec<&str> = target.as_str().split('/').collect();
    let common = from_dir
        .iter()
        .zip(&target_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let common = common.min(target_parts.len() - 1);
    let mut parts: Vec<&str> = vec![".."; from_dir.len() - common];
    parts.extend(&target_parts[common..]);
    parts.join("/")
}

/// `text` of the page `old_self`, now to be stored as `new_self`, with every link to `from`
/// pointing at `to` instead, and its relative Markdown links adjusted so they still reach
/// the same pages from the new place. `None` when nothing changes.
pub fn rewrite(
    text: &str,
    old_self: &PagePath,
    new_self: &PagePath,
    from: &PagePath,
    to: &PagePath,
) -> Option<String> {
    let new_dir = directory(new_self);
    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    for link in links(text, old_self) {
        let target = if &link.target == from {
            to
        } else {
            &link.target
        };
        let replacement = match link.kind {
            LinkKind::Wiki if &link.target == from => to.as_str().to_owned(),
            LinkKind::Wiki => continue,
            LinkKind::Markdown if link.from_root && &link.target == from => {
                format!("/{}", percent_encode(&with_suffix(to, link.with_suffix)))
            }
            LinkKind::Markdown if link.from_root => continue,
            LinkKind::Markdown if &link.target == from || old_self != new_self => {
                let path = relative_path(&new_dir, target);
                percent_encode(&with_suffix_str(&path, link.with_suffix))
            }
            LinkKind::Markdown => continue,
        };
        if text[link.span.clone()] != replacement {
            replacements.push((link.span, replacement));
        }
    }
    if replacements.is_empty() {
        return None;
    }
    let mut out = text.to_owned();
    for (span, replacement) in replacements.into_iter().rev() {
        out.replace_range(span, &replacement);
    }
    Some(out)
}

fn with_suffix(page: &PagePath, suffix: bool) -> String {
    with_suffix_str(page.as_str(), suffix)
}

fn with_suffix_str(path: &str, suffix: bool) -> String {
    if suffix {
        format!("{path}{PAGE_FILE_SUFFIX}")
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(raw: &str) -> PagePath {
        PagePath::parse(raw).unwrap()
    }

    fn names(text: &str, from: &str) -> Vec<String> {
        links(text, &page(from))
            .into_iter()
            .map(|l| l.target.to_string())
            .collect()
    }

    #[test]
    fn finds_wiki_links_with_labels_and_sections() {
        let text = "See [[Home]], [[Dev/Plan|the plan]], [[ Dev/Notes #Intro | notes ]] and \
                    [[/Root Page]]. [[#local]] and [[]] are not page links.";
        assert_eq!(
            names(text, "Dev/Here"),
            ["Home", "Dev/Plan", "Dev/Notes", "Root Page"]
        );
    }

    #[test]
    fn resolves_markdown_links_relative_to_the_page() {
        let text = "[a](Notes.md) [b](../Home) [c](/Dev/Plan#x) [d](Sub/Deep%20Page.md?v=1) \
                    [e](<With Space.md>) [f](https://example.com/x.md) [g](mailto:a@b) \
                    [h](#anchor) ![img](Picture.md) [i](../../outside) [j](./Same \"title\")";
        assert_eq!(
            names(text, "Dev/Here"),
            [
                "Dev/Notes",
                "Home",
                "Dev/Plan",
                "Dev/Sub/Deep Page",
                "Dev/With Space",
                "Dev/Same"
            ]
        );
    }

    #[test]
    fn ignores_links_in_code() {
        let text = "[[Real]] `[[InCode]]` ``[x](Code.md)``\n```\n[[Fenced]]\n```\n~~~~\n[[Tilde]]\n~~~~\n[[After]]";
        assert_eq!(names(text, "P"), ["Real", "After"]);
    }

    #[test]
    fn spans_point_at_the_page_part() {
        let text = "x [[Dev/Plan#s|label]] y [t](../Dev/Plan.md#f)";
        for link in links(text, &page("Other/P")) {
            let written = &text[link.span.clone()];
            assert!(
                written == "Dev/Plan" || written == "../Dev/Plan.md",
                "{written}"
            );
        }
    }

    #[test]
    fn rewrite_points_links_at_the_new_name_in_their_own_style() {
        let text = "[[Old]] [[Old#s|label]] [[Other]] [x](Old.md#f) [y](/Old) [z](Dir/Old)";
        let rewritten = rewrite(
            text,
            &page("Home"),
            &page("Home"),
            &page("Old"),
            &page("Area/New Name"),
        )
        .unwrap();
        assert_eq!(
            rewritten,
            "[[Area/New Name]] [[Area/New Name#s|label]] [[Other]] \
             [x](Area/New%20Name.md#f) [y](/Area/New%20Name) [z](Dir/Old)"
        );
        assert_eq!(
            rewrite(
                "[[Other]]",
                &page("Home"),
                &page("Home"),
                &page("Old"),
                &page("New")
            ),
            None
        );
    }

    #[test]
    fn a_moved_page_keeps_its_relative_links_pointing_at_the_same_pages() {
        let text = "[n](Notes) [h](../Home.md) [[Dev/Notes]] [s](Plan)";
        let rewritten = rewrite(
            text,
            &page("Dev/Plan"),
            &page("Archive/2026/Plan"),
            &page("Dev/Plan"),
            &page("Archive/2026/Plan"),
        )
        .unwrap();
        assert_eq!(
            rewritten,
            "[n](../../Dev/Notes) [h](../../Home.md) [[Dev/Notes]] [s](Plan)"
        );
        assert_eq!(
            targets(&rewritten, &page("Archive/2026/Plan")),
            [page("Archive/2026/Plan"), page("Dev/Notes"), page("Home")]
        );
    }
}

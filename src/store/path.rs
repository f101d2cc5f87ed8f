//! Names: [`PagePath`] is the only way to name a page, [`WikiName`] the only way to name a wiki.
//!
//! Both are validated once, at the edge, so nothing behind them can be handed a path that
//! escapes the wiki, touches git's own files, or smuggles control characters into a tree.
//! This module must not touch the file system or git.
//!
//! # Page path rules
//!
//! A page path is a `/`-separated, relative, UTF-8 string such as `Dev/Phase 0 — EFS Benchmarks`:
//!
//! - at most [`MAX_PAGE_PATH_BYTES`] bytes in all and [`MAX_COMPONENT_BYTES`] per component;
//! - no leading `/`, no trailing `/`, no empty component (`a//b`);
//! - no component starting with `.` (this rules out `.`, `..`, `.git` in any case, and hidden
//!   files), and none that is an NTFS short name of `.git` or `.gitmodules` (`git~1`,
//!   `GITMOD~1`, …);
//! - no control characters (U+0000–U+001F, U+007F–U+009F), no `\`, and none of the invisible
//!   characters HFS+ ignores in names (U+200C–U+200F, U+202A–U+202E, U+206A–U+206F, U+FEFF),
//!   which would let `\u{200c}.git` pass for `.git` on a Mac;
//! - no component with leading or trailing whitespace, and none ending in `.` (Windows drops a
//!   trailing dot or space, so `a.` and `a` would be one file there);
//! - no directory component ending in `.md` (so a page file and a directory never collide);
//! - none of `: * ? | < > "` anywhere (Windows refuses them in names; `:` also names an NTFS
//!   stream and was the path separator of classic macOS);
//! - no component that Windows reserves for a device, in any case and with any extension:
//!   `CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9` (and their superscript-digit
//!   forms), `CONIN$`, `CONOUT$` — so `con`, `Aux.txt` and `com1.backup` are refused too
//!   (a page `CON` would be the file `CON.md`, which Windows also reserves).
//!
//! The first rules are git's own `fsck` rules for tree entries, so every tree the store writes
//! passes `git fsck --strict`; with the rest every page checks out on Linux, macOS and Windows.
//!
//! # How a page maps to the git tree
//!
//! Page `A/B/C` is the blob at tree path `A/B/C.md` in the commit at `refs/heads/main`:
//! directories are trees, the last component gets the [`PAGE_FILE_SUFFIX`]. Tree entries that
//! are not `*.md` blobs, or whose names break the rules above, are not pages and are ignored.

use std::fmt;

/// Longest page path, in bytes.
pub const MAX_PAGE_PATH_BYTES: usize = 512;
/// Longest single component, in bytes (well under the usual 255-byte file-name limit,
/// leaving room for the suffix and for git's temporary names).
pub const MAX_COMPONENT_BYTES: usize = 200;
/// Suffix of the file that holds a page in the tree.
pub const PAGE_FILE_SUFFIX: &str = ".md";
/// Longest wiki name, in bytes.
pub const MAX_WIKI_NAME_BYTES: usize = 64;

/// Why a page path was refused. Each message names the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagePathError {
    #[error("page path is empty")]
    Empty,
    #[error("page path is {0} bytes long; the limit is {MAX_PAGE_PATH_BYTES}")]
    TooLong(usize),
    #[error("page path must be relative: remove the leading '/'")]
    Absolute,
    #[error("page path has an empty component (a trailing or doubled '/')")]
    EmptyComponent,
    #[error("page path may not contain '..': pages cannot point outside the wiki")]
    ParentComponent,
    #[error(
        "page path component {0:?} starts with '.'; hidden and git-reserved names are not pages"
    )]
    HiddenComponent(String),
    #[error("page path component {0:?} is reserved by git")]
    GitReserved(String),
    #[error("page path contains the control character U+{0:04X}")]
    ControlCharacter(u32),
    #[error("page path contains the invisible character U+{0:04X}")]
    InvisibleCharacter(u32),
    #[error("page path component {0:?} ends with '.', which Windows drops")]
    DirectoryTrailingDot(String),
    #[error("page path contains {0:?}, which Windows does not allow in names (: * ? | < > \")")]
    WindowsCharacter(char),
    #[error(
        "page path component {0:?} is a device name Windows reserves (CON, PRN, AUX, NUL, COM1, LPT1, …)"
    )]
    WindowsReserved(String),
    #[error("page path contains '\\'; separate components with '/'")]
    Backslash,
    #[error("page path component {0:?} starts or ends with whitespace")]
    EdgeWhitespace(String),
    #[error("page path component is {0} bytes long; the limit is {MAX_COMPONENT_BYTES}")]
    ComponentTooLong(usize),
    #[error(
        "page path directory {0:?} ends with '{PAGE_FILE_SUFFIX}', which is reserved for page files"
    )]
    DirectoryWithPageSuffix(String),
}

/// A validated page name. See the module documentation for the rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PagePath(String);

impl PagePath {
    /// Validates `raw` against the page path rules.
    pub fn parse(raw: &str) -> Result<Self, PagePathError> {
        if raw.is_empty() {
            return Err(PagePathError::Empty);
        }
        if raw.len() > MAX_PAGE_PATH_BYTES {
            return Err(PagePathError::TooLong(raw.len()));
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(PagePathError::ControlCharacter(u32::from(c)));
        }
        if let Some(c) = raw.chars().find(|c| is_hfs_ignorable(*c)) {
            return Err(PagePathError::InvisibleCharacter(u32::from(c)));
        }
        if raw.contains('\\') {
            return Err(PagePathError::Backslash);
        }
        if let Some(c) = raw.chars().find(|c| WINDOWS_FORBIDDEN.contains(c)) {
            return Err(PagePathError::WindowsCharacter(c));
        }
        if raw.starts_with('/') {
            return Err(PagePathError::Absolute);
        }
        let components: Vec<&str> = raw.split('/').collect();
        let last = components.len() - 1;
        for (index, component) in components.iter().enumerate() {
            check_component(component)?;
            if index != last && component.ends_with(PAGE_FILE_SUFFIX) {
                return Err(PagePathError::DirectoryWithPageSuffix(
                    (*component).to_owned(),
                ));
            }
            if component.ends_with('.') {
                return Err(PagePathError::DirectoryTrailingDot((*component).to_owned()));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The page's name as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the page lives in the git tree: `A/B` → `A/B.md`.
    pub fn tree_path(&self) -> String {
        format!("{}{PAGE_FILE_SUFFIX}", self.0)
    }

    /// The page stored at `tree_path`, if that tree path is a page file with a valid name.
    pub fn from_tree_path(tree_path: &str) -> Option<Self> {
        let name = tree_path.strip_suffix(PAGE_FILE_SUFFIX)?;
        Self::parse(name).ok()
    }
}

impl fmt::Display for PagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_component(component: &str) -> Result<(), PagePathError> {
    if component.is_empty() {
        return Err(PagePathError::EmptyComponent);
    }
    if component == ".." {
        return Err(PagePathError::ParentComponent);
    }
    if component.starts_with('.') {
        return Err(PagePathError::HiddenComponent(component.to_owned()));
    }
    if is_ntfs_short_git_name(component) {
        return Err(PagePathError::GitReserved(component.to_owned()));
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PagePathError::ComponentTooLong(component.len()));
    }
    if component.trim() != component {
        return Err(PagePathError::EdgeWhitespace(component.to_owned()));
    }
    if is_windows_device_name(component) {
        return Err(PagePathError::WindowsReserved(component.to_owned()));
    }
    Ok(())
}

/// Characters Windows refuses in file names (besides `/`, `\` and control characters, which
/// other rules refuse).
const WINDOWS_FORBIDDEN: [char; 7] = [':', '*', '?', '|', '<', '>', '"'];

/// `CON`, `aux.txt`, `Com1.md`, `LPT¹`…: Windows treats the name before the first dot (and
/// without trailing spaces) as a device, whatever follows.
fn is_windows_device_name(component: &str) -> bool {
    let stem = component
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_ascii_lowercase();
    if matches!(
        stem.as_str(),
        "con" | "prn" | "aux" | "nul" | "conin$" | "conout$"
    ) {
        return true;
    }
    let mut chars = stem.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest: String = chars.collect();
    matches!(prefix.as_str(), "com" | "lpt")
        && matches!(
            rest.as_str(),
            "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
        )
}

/// `git~1`, `GITMOD~2.`, `git~1:stream`…: NTFS 8.3 aliases of `.git` and `.gitmodules`.
fn is_ntfs_short_git_name(component: &str) -> bool {
    let lower = component.to_ascii_lowercase();
    ["git~", "gitmod~"].iter().any(|prefix| {
        lower
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Code points HFS+ ignores when comparing names (git's `is_hfs_dotgit` list).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// Why a wiki name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "wiki name {0:?} is not valid: use 1 to {MAX_WIKI_NAME_BYTES} ASCII letters, digits, '-' or '_', starting with a letter or digit"
)]
pub struct WikiNameError(pub String);

/// A validated wiki name; wiki `demo` is the bare repository `<root>/demo.git`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct WikiName(String);

impl WikiName {
    pub fn parse(raw: &str) -> Result<Self, WikiNameError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_WIKI_NAME_BYTES
            && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            // Keep the echoed name short: it may be hostile.
            Err(WikiNameError(raw.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Directory name of the wiki's bare repository under the store root.
    pub fn repository_dir_name(&self) -> String {
        format!("{}.git", self.0)
    }
}

impl fmt::Display for WikiName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for ok in [
            "Home",
            "Dev/Phase 0 — EFS Benchmarks",
            "a/b/c",
            "Notes on Mr. Smith",
            "日本語/ページ",
            "x.md",
            "emoji 🦀",
            "Meeting 2026-11-23",
            "Console",
            "com10",
            "lpt",
            "auxiliary/x",
            "a.b.c",
            "v1.2/notes",
            "git/config",
            "Agit~1",
        ] {
            let page = PagePath::parse(ok).unwrap_or_else(|e| panic!("{ok:?} refused: {e}"));
            assert_eq!(page.as_str(), ok);
        }
    }

    #[test]
    fn maps_pages_to_md_files_and_back() {
        let page = PagePath::parse("Dev/Phase 0 — EFS Benchmarks").unwrap();
        assert_eq!(page.tree_path(), "Dev/Phase 0 — EFS Benchmarks.md");
        assert_eq!(PagePath::from_tree_path(&page.tree_path()), Some(page));
        assert_eq!(PagePath::from_tree_path("README"), None);
        assert_eq!(PagePath::from_tree_path(".git/config.md"), None);
    }

    #[test]
    fn refuses_hostile_paths_with_the_rule_they_break() {
        use PagePathError::*;
        let long = "a".repeat(MAX_PAGE_PATH_BYTES + 1);
        let long_component = "b".repeat(MAX_COMPONENT_BYTES + 1);
        let cases: Vec<(&str, PagePathError)> = vec![
            ("", Empty),
            (&long, TooLong(MAX_PAGE_PATH_BYTES + 1)),
            (&long_component, ComponentTooLong(MAX_COMPONENT_BYTES + 1)),
            ("/etc/passwd", Absolute),
            ("a//b", EmptyComponent),
            ("a/", EmptyComponent),
            ("..", ParentComponent),
            ("../x", ParentComponent),
            ("a/../../b", ParentComponent),
            (".", HiddenComponent(".".into())),
            ("./a", HiddenComponent(".".into())),
            (".git", HiddenComponent(".git".into())),
            ("a/.GIT/config", HiddenComponent(".GIT".into())),
            (".git.", HiddenComponent(".git.".into())),
            ("GIT~1/HEAD", GitReserved("GIT~1".into())),
            ("gitmod~1/x", GitReserved("gitmod~1".into())),
            ("git~1./x", GitReserved("git~1.".into())),
            ("GIT~1:s/x", WindowsCharacter(':')),
            ("\u{200c}.git/x", InvisibleCharacter(0x200c)),
            ("a\u{feff}b", InvisibleCharacter(0xfeff)),
            ("Dir./x", DirectoryTrailingDot("Dir.".into())),
            ("trailing.", DirectoryTrailingDot("trailing.".into())),
            ("a/b.", DirectoryTrailingDot("b.".into())),
            ("a:b", WindowsCharacter(':')),
            ("what?", WindowsCharacter('?')),
            ("star*", WindowsCharacter('*')),
            ("x|y", WindowsCharacter('|')),
            ("<tag>", WindowsCharacter('<')),
            ("say \"hi\"", WindowsCharacter('"')),
            ("CON", WindowsReserved("CON".into())),
            ("aux", WindowsReserved("aux".into())),
            ("COM1", WindowsReserved("COM1".into())),
            ("lpt9/x", WindowsReserved("lpt9".into())),
            ("Nul.txt", WindowsReserved("Nul.txt".into())),
            ("a/con.md.bak", WindowsReserved("con.md.bak".into())),
            ("com¹", WindowsReserved("com¹".into())),
            ("CONIN$", WindowsReserved("CONIN$".into())),
            ("prn .x", WindowsReserved("prn .x".into())),
            ("a\0b", ControlCharacter(0)),
            ("a\nb", ControlCharacter(10)),
            ("a\u{7f}", ControlCharacter(0x7f)),
            ("a\u{85}b", ControlCharacter(0x85)),
            ("a\\b", Backslash),
            ("C:\\Windows", Backslash),
            (" lead", EdgeWhitespace(" lead".into())),
            ("trail /x", EdgeWhitespace("trail ".into())),
            ("Home.md/x", DirectoryWithPageSuffix("Home.md".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(PagePath::parse(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn wiki_names_are_plain_identifiers() {
        for ok in ["demo", "Team-1", "a_b", "x"] {
            assert_eq!(
                WikiName::parse(ok).unwrap().repository_dir_name(),
                format!("{ok}.git")
            );
        }
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-flag",
            "a b",
            "é",
            &"n".repeat(65),
        ] {
            assert!(WikiName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

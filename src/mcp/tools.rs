//! The MCP tools: `echo` (P0-7's test tool) and the wiki tools, named and shaped like
//! otterwiki-mcp's (`read_note`, `write_note`, `edit_note`, `delete_note`, `rename_note`,
//! `list_notes`, `search_notes`, `get_links`, `find_orphaned_notes`, `get_history`,
//! `get_recent_changes`) so its users feel at home.
//!
//! Each tool validates its arguments, runs the store call off the async runtime, and turns a
//! store error into a tool error (`isError: true`) whose text tells the assistant what to do
//! next; `render.rs` shapes the answers. Input schemas are made portable
//! ([`portable_schema`]). Commits are authored by the authenticated principal, with the name
//! and e-mail WorkOS has for them (looked up lazily, only for writes, see `auth::directory`).
//!
//! Read-only callers (the access policy's `=ro`) are refused in one place, before any tool
//! runs: [`WikiTools::changes_the_wiki`] counts every tool as a write tool unless its
//! `#[tool]` declares `annotations(read_only_hint = true)` (which clients see too), so a new
//! tool is refused to read-only callers until it says it only reads. This module must not
//! authenticate (the middleware did) or touch git except through the store.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig as McpServerInfo,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

use super::render;
use crate::auth::{Directory, Principal};
use crate::store::{
    Author, Change, Expect, HistoryCursor, HistoryRequest, ListRequest, PageEdit, PagePath,
    Revision, SearchRequest, Store, StoreError, Wiki, WikiName, WriteRequest,
};

pub const MAX_LIMIT: u32 = 200;
pub const DEFAULT_LIMIT: u32 = 20;
pub const DEFAULT_SEARCH_LIMIT: u32 = 10;
pub const MAX_SEARCH_LIMIT: u32 = 50;
pub const DEFAULT_LIST_LIMIT: u32 = 500;
pub const DEFAULT_ORPHANS_LIMIT: u32 = 200;
pub const MAX_LIST_LIMIT: u32 = 5000;
const MAX_ECHO_BYTES: usize = 64 * 1024;

/// The wiki one server serves.
pub struct WikiAccess {
    store: Store,
    wiki: WikiName,
    /// Where authors' names and e-mails come from when their tokens do not carry them.
    directory: Option<Arc<Directory>>,
}

impl WikiAccess {
    pub fn new(store: Store, wiki: WikiName) -> Self {
        Self {
            store,
            wiki,
            directory: None,
        }
    }

    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> Self {
        self.directory = directory;
        self
    }

    /// The wiki, created on first use (idempotent and cached after the first call).
    fn open(&self) -> Result<Arc<Wiki>, StoreError> {
        self.store.init(&self.wiki).map(|(wiki, _)| wiki)
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct EchoArgs {
    /// Text to send back unchanged.
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct ReadNoteArgs {
    /// Page path, e.g. "Home" or "Dev/Phase 0 — EFS Benchmarks".
    pub path: String,
    /// Read the page as of this revision (a commit id from get_history); default: latest.
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct WriteNoteArgs {
    /// Page path, e.g. "Home" or "Projects/Plan".
    pub path: String,
    /// The complete new Markdown content of the page (optional YAML frontmatter between
    /// "---" lines first).
    pub content: String,
    /// Required to update an existing page: the revision read_note returned. Omit it only to
    /// create a new page.
    #[serde(default)]
    pub revision: Option<String>,
    /// Commit message; default "Update <path>".
    #[serde(default)]
    pub commit_message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct EditNoteArgs {
    /// Page path.
    pub path: String,
    /// Exact text to replace; it must occur exactly once in the page (copy it from
    /// read_note, whitespace included). Give new_string with it.
    #[serde(default)]
    pub old_string: Option<String>,
    /// The text that replaces old_string (empty to delete it).
    #[serde(default)]
    pub new_string: Option<String>,
    /// Text to add at the end of the page instead (starts on a new line).
    #[serde(default)]
    pub append: Option<String>,
    /// Text to add at the start of the page instead (after the frontmatter).
    #[serde(default)]
    pub prepend: Option<String>,
    /// The revision read_note returned: if the page changed since, the edit is refused as a
    /// conflict. Without it the edit applies to the page as it is now.
    #[serde(default)]
    pub revision: Option<String>,
    /// Commit message; default "Edit <path>".
    #[serde(default)]
    pub commit_message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct DeleteNoteArgs {
    /// Page path.
    pub path: String,
    /// The revision read_note returned; if the page changed since, nothing is deleted.
    pub revision: String,
    /// Commit message; default "Delete <path>".
    #[serde(default)]
    pub commit_message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct RenameNoteArgs {
    /// The page's current path.
    pub path: String,
    /// The new path; no page may have it yet.
    pub new_path: String,
    /// The revision read_note returned; if the page changed since, nothing is renamed.
    pub revision: String,
    /// Rewrite links to the old name in other pages (and the page's own relative links) in
    /// the same commit; default true.
    #[serde(default)]
    pub rewrite_links: Option<bool>,
    /// Commit message; default "Rename <path> to <new_path>".
    #[serde(default)]
    pub commit_message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct ListNotesArgs {
    /// Only pages whose path starts with this, e.g. "Projects/".
    #[serde(default)]
    pub prefix: Option<String>,
    /// Only pages whose frontmatter category is this (any case).
    #[serde(default)]
    pub category: Option<String>,
    /// Only pages whose frontmatter tags include this (any case).
    #[serde(default)]
    pub tag: Option<String>,
    /// Only pages changed by a commit at or after this date or time (ISO 8601, e.g.
    /// "2026-03-08" or "2026-03-08T14:00:00Z").
    #[serde(default)]
    pub updated_since: Option<String>,
    /// Most pages to list, 1–5000; default 500.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct SearchNotesArgs {
    /// Words (all must occur, any case), "quoted phrases" and prefix* terms, e.g.
    /// `deploy "cold start" bench*`.
    pub query: String,
    /// Only pages whose path starts with this, e.g. "Projects/".
    #[serde(default)]
    pub prefix: Option<String>,
    /// Most pages to return, 1–50; default 10.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct GetLinksArgs {
    /// Page path.
    pub path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct OrphansArgs {
    /// Only pages whose path starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Most pages to list, 1–5000; default 200.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct HistoryArgs {
    /// Page path.
    pub path: String,
    /// Most recent changes to return, 1–200; default 20.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Continue an earlier call: the cursor its answer ended with.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = portable_schema)]
pub struct RecentChangesArgs {
    /// Most recent changes to return, 1–200; default 20.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Makes a tool's input schema one that every client can map: an optional field is
/// `{"type": "string"}` left out of `required`, not `{"type": ["string", "null"]}`, which
/// single-type dialects (the OpenAPI subset behind Gemini's function declarations) reject.
/// Absent and null mean the same to every tool here, so nothing is lost.
pub fn portable_schema(schema: &mut schemars::Schema) {
    use serde_json::{Map, Value};
    fn visit_object(object: &mut Map<String, Value>) {
        if let Some(Value::Array(types)) = object.get("type") {
            let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            if let [single] = non_null.as_slice()
                && types.len() > 1
            {
                object.insert("type".into(), single.clone());
            }
        }
        // `#[serde(default)]` on an optional field renders as `"default": null`, which a
        // string-typed field cannot hold.
        if object.get("default") == Some(&Value::Null) {
            object.remove("default");
        }
        object.values_mut().for_each(visit);
    }
    fn visit(value: &mut Value) {
        match value {
            Value::Object(object) => visit_object(object),
            Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    if let Some(object) = schema.as_object_mut() {
        visit_object(object);
    }
}

/// The MCP server handler; one is made per request (stateless), so it holds only an `Arc`.
#[derive(Clone)]
pub struct WikiTools {
    access: Arc<WikiAccess>,
}

impl WikiTools {
    pub fn new(access: Arc<WikiAccess>) -> Self {
        Self { access }
    }

    /// The tool table, built once: building it renders every tool's JSON schema.
    fn tools() -> &'static ToolRouter<Self> {
        static TOOLS: std::sync::OnceLock<ToolRouter<WikiTools>> = std::sync::OnceLock::new();
        TOOLS.get_or_init(Self::tool_router)
    }

    /// Runs a store call on the blocking pool and renders its outcome.
    async fn run(
        &self,
        tool: &'static str,
        work: impl FnOnce(&WikiAccess) -> Result<String, ToolError> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let access = Arc::clone(&self.access);
        // The store's spans nest under the tool's, and it under the request's (X-Ray).
        let span = tracing::info_span!("tool", op = tool);
        let outcome = tokio::task::spawn_blocking(move || span.in_scope(|| work(&access)))
            .await
            .unwrap_or_else(|e| Err(ToolError(format!("the wiki operation failed: {e}"))));
        Ok(match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(error) => error.into_result(),
        })
    }

    /// Whether `tool` may change the wiki: every tool that does not declare
    /// `read_only_hint = true`. Unknown tools are left to the router's own error.
    fn changes_the_wiki(tool: &str) -> bool {
        Self::tools().get(tool).is_some_and(|tool| {
            tool.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true)
        })
    }

    /// A tool error when the caller may not run `tool` (a write tool, read-only access).
    fn refusal(tool: &str, parts: Option<&Parts>) -> Option<ToolError> {
        if !Self::changes_the_wiki(tool) {
            return None;
        }
        let principal = match parts.map(principal) {
            Some(Ok(principal)) => principal,
            Some(Err(e)) => return Some(e),
            None => return Some(ToolError("not authenticated".into())),
        };
        (!principal.may_write()).then(|| {
            ToolError(format!(
                "{tool} refused: you have read-only access to this wiki (granted by {}). Reading works; ask the wiki's operator for write access.",
                principal.granted_by
            ))
        })
    }

    /// The author of a write by the caller: the name and e-mail WorkOS has for them when
    /// their token did not carry both (the user id if WorkOS cannot be reached).
    async fn author(&self, parts: &Parts) -> Result<Author, ToolError> {
        let principal = principal(parts)?;
        let author = match &self.access.directory {
            Some(directory) => directory.author(&principal).await,
            None => principal,
        };
        Ok(Author::new(&author.name, &author.email)?)
    }

    /// Runs a tool that commits: the caller, resolved as the commit's author, and the
    /// message they gave are handed to `work` with the wiki.
    async fn run_change(
        &self,
        tool: &'static str,
        parts: &Parts,
        commit_message: Option<String>,
        work: impl FnOnce(&WikiAccess, &Committer) -> Result<String, ToolError> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let author = match self.author(parts).await {
            Ok(author) => author,
            Err(e) => return Ok(e.into_result()),
        };
        let committer = Committer {
            author,
            message: commit_message.unwrap_or_default(),
        };
        self.run(tool, move |access| work(access, &committer)).await
    }
}

/// Who commits a tool's change, and with what message (empty: the store's default).
struct Committer {
    author: Author,
    message: String,
}

impl Committer {
    fn change(&self, expect: Expect) -> Change<'_> {
        Change {
            author: &self.author,
            message: &self.message,
            time: SystemTime::now(),
            expect,
        }
    }
}

/// A failure the assistant should read.
struct ToolError(String);

impl ToolError {
    fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.0)])
    }
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        Self(match &e {
            StoreError::AlreadyExists { page, current } => format!(
                "Conflict: '{page}' already exists (revision {current}). Read it with read_note and pass its revision to write_note to update it."
            ),
            StoreError::Conflict { page, current, .. } => format!(
                "Conflict: '{page}' was changed by someone else; its current revision is {current}. Read the page again with read_note, reapply your change, and write with the new revision."
            ),
            StoreError::Busy { .. } => format!("{e}. Try the same call again in a moment."),
            _ => e.to_string(),
        })
    }
}

fn page_path(raw: &str) -> Result<PagePath, ToolError> {
    PagePath::parse(raw).map_err(|e| ToolError(format!("Invalid path {raw:?}: {e}")))
}

fn revision(raw: Option<&str>) -> Result<Option<Revision>, ToolError> {
    raw.map(str::trim)
        .filter(|r| !r.is_empty())
        .map(Revision::parse)
        .transpose()
        .map_err(ToolError::from)
}

/// A revision the tool requires (read_note's), as what the page must still be.
fn required_revision(raw: &str, tool: &str) -> Result<Expect, ToolError> {
    match revision(Some(raw))? {
        Some(base) => Ok(Expect::Unchanged(base)),
        None => Err(ToolError(format!(
            "{tool} needs the page's revision: read it with read_note first and pass the revision it returns"
        ))),
    }
}

fn bounded(raw: Option<u32>, default: u32, max: u32) -> Result<usize, ToolError> {
    match raw.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n as usize),
        n => Err(ToolError(format!(
            "limit must be between 1 and {max}, got {n}"
        ))),
    }
}

fn limit(raw: Option<u32>) -> Result<usize, ToolError> {
    bounded(raw, DEFAULT_LIMIT, MAX_LIMIT)
}

/// A path prefix: any string a page path could start with.
fn prefix(raw: Option<String>) -> Result<String, ToolError> {
    let prefix = raw.unwrap_or_default();
    if prefix.len() > crate::store::MAX_PAGE_PATH_BYTES || prefix.chars().any(char::is_control) {
        return Err(ToolError(
            "prefix must be a page path prefix (no control characters, at most 512 bytes)".into(),
        ));
    }
    Ok(prefix)
}

/// A frontmatter value to filter by: short text, or nothing when empty.
fn filter_value(raw: Option<String>, what: &str) -> Result<Option<String>, ToolError> {
    let value = raw.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match value {
        Some(v) if v.len() > 256 || v.chars().any(char::is_control) => Err(ToolError(format!(
            "{what} must be at most 256 bytes without control characters"
        ))),
        other => Ok(other),
    }
}

/// `2026-03-08` (midnight UTC) or an RFC 3339 time, as seconds since the epoch.
fn since(raw: Option<String>) -> Result<Option<i64>, ToolError> {
    let Some(raw) = raw.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let full = if raw.len() == 10 {
        format!("{raw}T00:00:00Z")
    } else {
        raw.clone()
    };
    let time = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        ToolError(format!(
            "updated_since {:?} is not a date (2026-03-08) or a time (2026-03-08T14:00:00Z)",
            raw.chars().take(40).collect::<String>()
        ))
    })?;
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(Some(seconds))
}

fn principal(parts: &Parts) -> Result<Principal, ToolError> {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ToolError("not authenticated".into()))
}

#[tool_router]
impl WikiTools {
    #[tool(
        description = "Echo the given text back unchanged (a connectivity test).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn echo(
        &self,
        Parameters(args): Parameters<EchoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(if args.text.len() > MAX_ECHO_BYTES {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "text is {} bytes; echo accepts at most {MAX_ECHO_BYTES}",
                args.text.len()
            ))])
        } else {
            CallToolResult::success(vec![ContentBlock::text(args.text)])
        })
    }

    #[tool(
        description = "Read a wiki page: its revision (pass it to write_note, edit_note, rename_note or delete_note to change the page), its frontmatter parsed (category, tags, ...), the pages it links to (marked if missing), then its whole Markdown text as stored (frontmatter included). Use search_notes or list_notes first if you do not know the path.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_note(
        &self,
        Parameters(args): Parameters<ReadNoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("read_note", move |access| {
            let page = page_path(&args.path)?;
            let at = revision(args.revision.as_deref())?;
            let note = access.open()?.read_note(&page, at)?;
            Ok(render::note(&note))
        })
        .await
    }

    #[tool(
        description = "Create a wiki page, or replace a whole page with new Markdown content. To update an existing page pass the revision from read_note; if the page changed since, you get a conflict with the current revision instead of overwriting someone else's work. For a small change to a long page, edit_note is cheaper.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn write_note(
        &self,
        Parameters(mut args): Parameters<WriteNoteArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let message = args.commit_message.take();
        self.run_change("write_note", &parts, message, move |access, by| {
            let page = page_path(&args.path)?;
            let expect = match revision(args.revision.as_deref())? {
                Some(base) => Expect::Unchanged(base),
                None => Expect::Absent,
            };
            let outcome = access.open()?.write(&WriteRequest {
                page: &page,
                content: &args.content,
                author: &by.author,
                message: &by.message,
                time: SystemTime::now(),
                expect,
            })?;
            Ok(render::saved(&page, &outcome, "Saved"))
        })
        .await
    }

    #[tool(
        description = "Change part of a wiki page without resending it: replace old_string (which must occur exactly once; the error says how often it occurs otherwise) with new_string, or append text at the end, or prepend text at the start (after the frontmatter). Give exactly one of old_string, append, prepend. Pass the revision from read_note to be refused if the page changed since.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn edit_note(
        &self,
        Parameters(mut args): Parameters<EditNoteArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let message = args.commit_message.take();
        self.run_change("edit_note", &parts, message, move |access, by| {
            let page = page_path(&args.path)?;
            let edit = match (&args.old_string, &args.append, &args.prepend) {
                (Some(old), None, None) => PageEdit::Replace {
                    old,
                    new: args.new_string.as_deref().ok_or_else(|| {
                        ToolError("old_string needs new_string (empty to delete the text)".into())
                    })?,
                },
                (None, Some(text), None) => PageEdit::Append(text),
                (None, None, Some(text)) => PageEdit::Prepend(text),
                _ => {
                    return Err(ToolError(
                        "give exactly one of old_string (with new_string), append or prepend"
                            .into(),
                    ));
                }
            };
            let expect = match revision(args.revision.as_deref())? {
                Some(base) => Expect::Unchanged(base),
                None => Expect::Anything,
            };
            let outcome = access.open()?.edit(&page, edit, &by.change(expect))?;
            Ok(render::saved(&page, &outcome, "Edited"))
        })
        .await
    }

    #[tool(
        description = "Delete a wiki page (it stays in the git history). Needs the revision from read_note: if the page changed since, nothing is deleted. Confirm with the user first; get_links shows which pages link to it.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn delete_note(
        &self,
        Parameters(mut args): Parameters<DeleteNoteArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let message = args.commit_message.take();
        self.run_change("delete_note", &parts, message, move |access, by| {
            let page = page_path(&args.path)?;
            let expect = required_revision(&args.revision, "delete_note")?;
            let outcome = access.open()?.delete(&page, &by.change(expect))?;
            Ok(format!(
                "Deleted '{page}'. New revision: {}",
                outcome.revision
            ))
        })
        .await
    }

    #[tool(
        description = "Rename (move) a wiki page to a new path, keeping its history in git. Needs the revision from read_note. By default every link to the old name ([[WikiLinks]] and Markdown links) is rewritten to the new one in the same commit, and the page's own relative links are adjusted; rewrite_links=false leaves other pages untouched.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn rename_note(
        &self,
        Parameters(mut args): Parameters<RenameNoteArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let message = args.commit_message.take();
        self.run_change("rename_note", &parts, message, move |access, by| {
            let from = page_path(&args.path)?;
            let to = page_path(&args.new_path)?;
            let expect = required_revision(&args.revision, "rename_note")?;
            let rewrite = args.rewrite_links.unwrap_or(true);
            match access.open()?.rename(&from, &to, rewrite, &by.change(expect)) {
                Ok(outcome) => Ok(render::renamed(&from, &to, rewrite, &outcome)),
                Err(StoreError::AlreadyExists { page, current }) => Err(ToolError(format!(
                    "'{page}' already exists (revision {current}); choose another new_path, or delete that page first"
                ))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    #[tool(
        description = "List the wiki's pages, optionally only those under a path prefix, with a frontmatter category, with a tag, or changed since a date; the filters combine. Use search_notes to find pages by their text.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_notes(
        &self,
        Parameters(args): Parameters<ListNotesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("list_notes", move |access| {
            let prefix = prefix(args.prefix)?;
            let category = filter_value(args.category, "category")?;
            let tag = filter_value(args.tag, "tag")?;
            let updated_since = since(args.updated_since)?;
            let limit = bounded(args.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
            let wiki = access.open()?;
            if category.is_none() && tag.is_none() && updated_since.is_none() {
                return Ok(render::pages(&wiki.list(&prefix)?, &prefix, limit));
            }
            let listing = wiki.list_pages(ListRequest {
                prefix: &prefix,
                category: category.as_deref(),
                tag: tag.as_deref(),
                updated_since,
            })?;
            let filters = render::Filters {
                prefix: &prefix,
                category: category.as_deref(),
                tag: tag.as_deref(),
                updated_since,
            };
            Ok(render::listing(&listing, &filters, limit))
        })
        .await
    }

    #[tool(
        description = "Full-text search of the wiki's pages (current versions): words (all must occur, any case), \"quoted phrases\" (words in that order) and prefix* terms, optionally under a path prefix. Returns the best-matching pages first, each with its matching lines (line numbers and snippets), and the revision searched; read_note gives a whole page.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_notes(
        &self,
        Parameters(args): Parameters<SearchNotesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("search_notes", move |access| {
            let prefix = prefix(args.prefix)?;
            let limit = bounded(args.limit, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)?;
            let results = access.open()?.search(SearchRequest {
                query: &args.query,
                prefix: &prefix,
                limit,
            })?;
            Ok(render::search(&results, &prefix))
        })
        .await
    }

    #[tool(
        description = "A page's links both ways: the pages it links to ([[WikiLinks]] and Markdown links, marked if the target does not exist) and the pages that link to it (backlinks). Works for a missing page too: who links to it.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_links(
        &self,
        Parameters(args): Parameters<GetLinksArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("get_links", move |access| {
            let page = page_path(&args.path)?;
            let links = access.open()?.links(&page)?;
            Ok(render::links(&links))
        })
        .await
    }

    #[tool(
        description = "Pages that no other page links to (orphans), optionally under a path prefix: candidates to link from an index page, merge or delete.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn find_orphaned_notes(
        &self,
        Parameters(args): Parameters<OrphansArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("find_orphaned_notes", move |access| {
            let prefix = prefix(args.prefix)?;
            let limit = bounded(args.limit, DEFAULT_ORPHANS_LIMIT, MAX_LIST_LIMIT)?;
            let orphans = access.open()?.orphans(&prefix, limit)?;
            Ok(render::orphans(&orphans, &prefix))
        })
        .await
    }

    #[tool(
        description = "The change history of one wiki page, newest first: revision, time, author, message. Pass a revision to read_note to see an old version.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_history(
        &self,
        Parameters(args): Parameters<HistoryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("get_history", move |access| {
            let page = page_path(&args.path)?;
            let cursor = args
                .cursor
                .as_deref()
                .map(HistoryCursor::parse)
                .transpose()?;
            let history = access.open()?.history_page(HistoryRequest {
                page: Some(&page),
                limit: limit(args.limit)?,
                cursor: cursor.as_ref(),
            })?;
            Ok(render::history(&history, &format!("'{page}'")))
        })
        .await
    }

    #[tool(
        description = "The most recent changes anywhere in the wiki, newest first.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_recent_changes(
        &self,
        Parameters(args): Parameters<RecentChangesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("get_recent_changes", move |access| {
            let history = access.open()?.history_page(HistoryRequest {
                page: None,
                limit: limit(args.limit)?,
                cursor: None,
            })?;
            Ok(render::history(&history, "the wiki"))
        })
        .await
    }
}

#[tool_handler(router = Self::tools())]
impl ServerHandler for WikiTools {
    /// The router's dispatch, after the one access check every tool passes.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(refused) = Self::refusal(&request.name, context.extensions.get::<Parts>()) {
            return Ok(refused.into_result().into());
        }
        Self::tools()
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_info(&self) -> McpServerInfo {
        McpServerInfo::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wikibot", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "A git-backed wiki of Markdown pages (optional YAML frontmatter, [[WikiLinks]]). \
                 Find pages with search_notes (full text) or list_notes (by path prefix, \
                 category, tag, recent change); read one with read_note, which returns the \
                 revision every change needs; change it with edit_note (a snippet, append, \
                 prepend) or write_note (the whole page); rename_note rewrites links to it. \
                 get_links, find_orphaned_notes, get_history and get_recent_changes show how \
                 pages connect and who changed what.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tools_declared_read_only_escape_the_write_check() {
        for write in ["write_note", "edit_note", "delete_note", "rename_note"] {
            assert!(WikiTools::changes_the_wiki(write), "{write}");
        }
        for read in [
            "echo",
            "read_note",
            "list_notes",
            "search_notes",
            "get_links",
            "find_orphaned_notes",
            "get_history",
            "get_recent_changes",
        ] {
            assert!(!WikiTools::changes_the_wiki(read), "{read}");
        }
        assert!(
            !WikiTools::changes_the_wiki("no_such_tool"),
            "the router reports unknown tools"
        );
    }

    #[test]
    fn read_only_callers_are_refused_write_tools_with_the_reason() {
        let mut request = axum::http::Request::new(());
        let reader = Principal::new(crate::auth::AuthMethod::AuthKit, "user_1", None, None)
            .granted(crate::auth::Access::ReadOnly, "org:org_1=ro");
        request.extensions_mut().insert(reader);
        let (parts, ()) = request.into_parts();
        let refused = WikiTools::refusal("write_note", Some(&parts)).map(|e| e.0);
        assert!(
            refused.as_deref().is_some_and(
                |text| text.starts_with("write_note refused") && text.contains("org:org_1=ro")
            ),
            "{refused:?}"
        );
        assert!(WikiTools::refusal("read_note", Some(&parts)).is_none());
        assert!(
            WikiTools::refusal("write_note", None).is_some(),
            "no caller"
        );
        let mut request = axum::http::Request::new(());
        request.extensions_mut().insert(Principal::static_token());
        let (parts, ()) = request.into_parts();
        assert!(WikiTools::refusal("write_note", Some(&parts)).is_none());
    }

    #[test]
    fn every_tool_is_annotated_and_only_the_four_write_tools_change_the_wiki() {
        let mut writes: Vec<String> = WikiTools::tools()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .filter(|name| WikiTools::changes_the_wiki(name))
            .collect();
        writes.sort();
        assert_eq!(
            writes,
            ["delete_note", "edit_note", "rename_note", "write_note"]
        );
        for tool in WikiTools::tools().list_all() {
            assert!(
                tool.annotations.is_some(),
                "{} has no annotations",
                tool.name
            );
        }
    }

    #[test]
    fn input_schemas_have_no_type_arrays() {
        for tool in WikiTools::tools().list_all() {
            let schema = serde_json::Value::Object((*tool.input_schema).clone());
            let text = schema.to_string();
            assert!(!text.contains("\"type\":["), "{}: {text}", tool.name);
            assert!(!text.contains("null"), "{}: {text}", tool.name);
        }
    }
}

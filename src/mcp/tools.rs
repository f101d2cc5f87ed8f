//! The MCP tools: `echo` (P0-7's test tool) and the wiki tools, named and shaped like
//! otterwiki-mcp's (`read_note`, `write_note`, `list_notes`, `get_history`,
//! `get_recent_changes`) so its users feel at home.
//!
//! Each tool validates its arguments, runs the store call off the async runtime, and turns a
//! store error into a tool error (`isError: true`) whose text tells the assistant what to do
//! next. Commits are authored by the authenticated principal, with the name and e-mail
//! WorkOS has for them (looked up lazily, only for writes, see `auth::directory`).
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

use crate::auth::{Directory, Principal};
use crate::store::{
    Author, Expect, History, HistoryCursor, HistoryRequest, PagePath, Revision, Store, StoreError,
    Wiki, WikiName, WriteRequest,
};

pub const MAX_LIMIT: u32 = 200;
pub const DEFAULT_LIMIT: u32 = 20;
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
pub struct EchoArgs {
    /// Text to send back unchanged.
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadNoteArgs {
    /// Page path, e.g. "Home" or "Dev/Phase 0 — EFS Benchmarks".
    pub path: String,
    /// Read the page as of this revision (a commit id from get_history); default: latest.
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteNoteArgs {
    /// Page path, e.g. "Home" or "Projects/Plan".
    pub path: String,
    /// The complete new Markdown content of the page.
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
pub struct ListNotesArgs {
    /// Only pages whose path starts with this, e.g. "Projects/".
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
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
pub struct RecentChangesArgs {
    /// Most recent changes to return, 1–200; default 20.
    #[serde(default)]
    pub limit: Option<u32>,
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

fn limit(raw: Option<u32>) -> Result<usize, ToolError> {
    match raw.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        n => Err(ToolError(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {n}"
        ))),
    }
}

fn principal(parts: &Parts) -> Result<Principal, ToolError> {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ToolError("not authenticated".into()))
}

fn render_history(history: &History, what: &str) -> String {
    let commits = &history.commits;
    let mut text = if commits.is_empty() {
        format!("No changes to {what} found.\n")
    } else {
        format!("{} change(s) to {what}, newest first:\n", commits.len())
    };
    for c in commits {
        text.push_str(&format!(
            "- {} {} {} <{}>: {}\n",
            c.id, c.time, c.author, c.email, c.message
        ));
    }
    if let Some(cursor) = &history.next_cursor {
        let why = if history.truncated {
            "The search stopped at its time limit"
        } else {
            "There may be older changes"
        };
        text.push_str(&format!(
            "{why}; to continue, call again with cursor \"{cursor}\".\n"
        ));
    }
    text
}

#[tool_router]
impl WikiTools {
    #[tool(
        description = "Echo the given text back unchanged (a connectivity test).",
        annotations(read_only_hint = true)
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
        description = "Read a wiki page. Returns its revision (needed to update it with write_note) and its Markdown content.",
        annotations(read_only_hint = true)
    )]
    async fn read_note(
        &self,
        Parameters(args): Parameters<ReadNoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("read_note", move |access| {
            let page = page_path(&args.path)?;
            let at = revision(args.revision.as_deref())?;
            let version = access.open()?.read_at(&page, at)?;
            Ok(format!(
                "Path: {}\nRevision: {}\n\n{}",
                version.page, version.revision, version.content
            ))
        })
        .await
    }

    #[tool(
        description = "Create or replace a wiki page with new Markdown content. To update an existing page pass the revision from read_note; if the page changed since, you get a conflict with the current revision instead of overwriting someone else's work."
    )]
    async fn write_note(
        &self,
        Parameters(args): Parameters<WriteNoteArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let author = match self.author(&parts).await {
            Ok(author) => author,
            Err(refused) => return Ok(refused.into_result()),
        };
        self.run("write_note", move |access| {
            let page = page_path(&args.path)?;
            let expect = match revision(args.revision.as_deref())? {
                Some(base) => Expect::Unchanged(base),
                None => Expect::Absent,
            };
            let message = args.commit_message.unwrap_or_default();
            let outcome = access.open()?.write(&WriteRequest {
                page: &page,
                content: &args.content,
                author: &author,
                message: &message,
                time: SystemTime::now(),
                expect,
            })?;
            Ok(if outcome.changed {
                format!("Saved '{page}'. New revision: {}", outcome.revision)
            } else {
                format!(
                    "'{page}' already had this content; nothing changed. Revision: {}",
                    outcome.revision
                )
            })
        })
        .await
    }

    #[tool(
        description = "List the wiki's pages, optionally only those whose path starts with a prefix.",
        annotations(read_only_hint = true)
    )]
    async fn list_notes(
        &self,
        Parameters(args): Parameters<ListNotesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("list_notes", move |access| {
            let prefix = args.prefix.unwrap_or_default();
            if prefix.len() > crate::store::MAX_PAGE_PATH_BYTES
                || prefix.chars().any(char::is_control)
            {
                return Err(ToolError(
                    "prefix must be a page path prefix (no control characters, at most 512 bytes)"
                        .into(),
                ));
            }
            let pages = access.open()?.list(&prefix)?;
            Ok(if pages.is_empty() {
                format!(
                    "No pages{}.",
                    if prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" start with {prefix:?}")
                    }
                )
            } else {
                let mut text = format!("{} page(s):\n", pages.len());
                for page in pages {
                    text.push_str(&format!("- {page}\n"));
                }
                text
            })
        })
        .await
    }

    #[tool(
        description = "The change history of one wiki page, newest first: revision, time, author, message.",
        annotations(read_only_hint = true)
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
            Ok(render_history(&history, &format!("'{page}'")))
        })
        .await
    }

    #[tool(
        description = "The most recent changes anywhere in the wiki, newest first.",
        annotations(read_only_hint = true)
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
            Ok(render_history(&history, "the wiki"))
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
                "A git-backed wiki. Read a page with read_note before changing it and pass the \
                 revision it returns to write_note; list_notes shows what exists, get_history and \
                 get_recent_changes show who changed what.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tools_declared_read_only_escape_the_write_check() {
        assert!(WikiTools::changes_the_wiki("write_note"));
        for read in [
            "echo",
            "read_note",
            "list_notes",
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
}

//! `git-probe` (P0-3): init, write, read, history and the whole lifecycle of a wiki's git
//! repository, driven by JSON events. The event and response schemas are in
//! `docs/git-probe.md`; they are a contract, so change them only with that document.
//!
//! This module validates every field before touching the store, so a bad event writes
//! nothing; it must not bypass [`crate::store`] to reach git.

use std::path::Path;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::{ProbeError, Timings, parse_event, respond};
use crate::lambda::Instance;
use crate::store::{
    Author, Expect, HistoryCursor, HistoryRequest, PagePath, Revision, Store, StoreConfig,
    WikiName, WriteRequest,
};

pub const DEFAULT_HISTORY_LIMIT: usize = 10;
pub const MAX_HISTORY_LIMIT: usize = 200;
const LIFECYCLE_PAGE: &str = "Home";
const PROBE_AUTHOR: (&str, &str) = ("git-probe", "git-probe@wikibot.invalid");

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorField {
    name: String,
    email: String,
}

#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum GitEvent {
    Init {
        repo: String,
    },
    Write {
        repo: String,
        page: String,
        content: String,
        author: AuthorField,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        base: Option<String>,
    },
    Read {
        repo: String,
        page: String,
    },
    History {
        repo: String,
        #[serde(default)]
        page: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default)]
        cursor: Option<String>,
    },
    Maintain {
        repo: String,
    },
    Lifecycle {
        repo: String,
        #[serde(default)]
        page: Option<String>,
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        author: Option<AuthorField>,
    },
}

pub struct GitProbe {
    store: Store,
    instance: Instance,
}

impl GitProbe {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            store: Store::new(config),
            instance: Instance::new(),
        }
    }

    /// Store settings from the environment (`WIKIBOT_ROOT` defaults to `/mnt/efs`).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self::new(StoreConfig::from_env(Path::new("/mnt/efs"))?))
    }

    pub fn handle(&self, event: Value) -> Value {
        let started = Instant::now();
        let invocation = self.instance.next_invocation();
        let op = event.get("op").and_then(Value::as_str).map(str::to_owned);
        if let Some(op) = &op {
            tracing::Span::current().record("op", op.as_str());
        }
        let mut timings = Timings::default();
        let outcome = parse_event(event).and_then(|event| self.run(event, &mut timings));
        let mut response = respond(&self.instance, invocation, started, &timings, outcome);
        if let (Some(op), Some(body)) = (op, response.as_object_mut()) {
            body.insert("op".into(), json!(op));
        }
        tracing::info!(timings = %response["timings_ms"], "git probe done");
        response
    }

    fn run(
        &self,
        event: GitEvent,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let (repo, result) = match event {
            GitEvent::Init { repo } => {
                let name = wiki_name(&repo)?;
                (repo, self.init(&name, timings)?)
            }
            GitEvent::Write {
                repo,
                page,
                content,
                author,
                message,
                base,
            } => {
                let name = wiki_name(&repo)?;
                let page = page_path(&page)?;
                let author = Author::new(&author.name, &author.email)?;
                let expect = match base.as_deref() {
                    Some(base) => Expect::Unchanged(Revision::parse(base)?),
                    None => Expect::Anything,
                };
                let message = message.unwrap_or_default();
                let request = write_request(&page, &content, &author, &message, expect);
                (repo, self.write(&name, &request, timings)?)
            }
            GitEvent::Read { repo, page } => {
                let name = wiki_name(&repo)?;
                let page = page_path(&page)?;
                (repo, self.read(&name, &page, timings)?)
            }
            GitEvent::History {
                repo,
                page,
                limit,
                cursor,
            } => {
                let name = wiki_name(&repo)?;
                let page = page.as_deref().map(page_path).transpose()?;
                let limit = history_limit(limit)?;
                let cursor = cursor
                    .as_deref()
                    .map(HistoryCursor::parse)
                    .transpose()
                    .map_err(|e| ProbeError::invalid(format!("cursor: {e}")))?;
                let request = HistoryRequest {
                    page: page.as_ref(),
                    limit,
                    cursor: cursor.as_ref(),
                };
                (repo, self.history(&name, request, timings)?)
            }
            GitEvent::Maintain { repo } => {
                let name = wiki_name(&repo)?;
                let wiki = timings.time("open", || self.store.open(&name))?;
                let report = timings.time("maintain", || wiki.maintain())?;
                (repo, object(json!(report)))
            }
            GitEvent::Lifecycle {
                repo,
                page,
                content,
                author,
            } => {
                let name = wiki_name(&repo)?;
                let page = page_path(page.as_deref().unwrap_or(LIFECYCLE_PAGE))?;
                let author = match author {
                    Some(a) => Author::new(&a.name, &a.email)?,
                    None => Author::new(PROBE_AUTHOR.0, PROBE_AUTHOR.1)?,
                };
                let content = content.unwrap_or_else(|| self.generated_content(&page));
                (
                    repo,
                    self.lifecycle(&name, &page, &content, &author, timings)?,
                )
            }
        };
        let mut fields = Map::new();
        fields.insert("repo".into(), json!(repo));
        fields.insert("result".into(), Value::Object(result));
        Ok(fields)
    }

    fn init(
        &self,
        name: &WikiName,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let (wiki, created) = timings.time("init", || self.store.init(name))?;
        Ok(object(
            json!({ "created": created, "path": wiki.path().display().to_string() }),
        ))
    }

    fn write(
        &self,
        name: &WikiName,
        request: &WriteRequest<'_>,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let wiki = timings.time("open", || self.store.open(name))?;
        let outcome = timings.time("write", || wiki.write(request))?;
        Ok(object(json!({
            "page": request.page,
            "revision": outcome.revision,
            "changed": outcome.changed,
            "attempts": outcome.attempts,
        })))
    }

    fn read(
        &self,
        name: &WikiName,
        page: &PagePath,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let wiki = timings.time("open", || self.store.open(name))?;
        let version = timings.time("read", || wiki.read(page))?;
        Ok(object(json!(version)))
    }

    fn history(
        &self,
        name: &WikiName,
        request: HistoryRequest<'_>,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let wiki = timings.time("open", || self.store.open(name))?;
        let history = timings.time("history", || wiki.history_page(request))?;
        Ok(object(json!({
            "page": request.page,
            "commits": history.commits,
            "next_cursor": history.next_cursor.map(|c| c.to_string()),
            "truncated": history.truncated,
        })))
    }

    /// init → write → read → history, checking that each step sees the one before.
    fn lifecycle(
        &self,
        name: &WikiName,
        page: &PagePath,
        content: &str,
        author: &Author,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let init = self.init(name, timings)?;
        let message = format!("git-probe lifecycle: update {page}");
        let request = write_request(page, content, author, &message, Expect::Anything);
        let write = self.write(name, &request, timings)?;
        let read = self.read(name, page, timings)?;
        let request = HistoryRequest {
            page: Some(page),
            limit: DEFAULT_HISTORY_LIMIT,
            cursor: None,
        };
        let history = self.history(name, request, timings)?;

        if read.get("content").and_then(Value::as_str) != Some(content) {
            return Err(ProbeError::internal(
                "lifecycle: the page read back differs from the page written",
            ));
        }
        let newest = history
            .get("commits")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("id"));
        if write.get("changed") == Some(&json!(true)) && newest != write.get("revision") {
            return Err(ProbeError::internal(
                "lifecycle: history does not start with the commit just written",
            ));
        }
        Ok(object(
            json!({ "init": init, "write": write, "read": read, "history": history }),
        ))
    }

    fn generated_content(&self, page: &PagePath) -> String {
        format!(
            "# {page}\n\nWritten by git-probe (instance {}) at {}.\n",
            self.instance.id(),
            humantime::format_rfc3339_micros(SystemTime::now())
        )
    }
}

fn write_request<'a>(
    page: &'a PagePath,
    content: &'a str,
    author: &'a Author,
    message: &'a str,
    expect: Expect,
) -> WriteRequest<'a> {
    WriteRequest {
        page,
        content,
        author,
        message,
        time: SystemTime::now(),
        expect,
    }
}

fn wiki_name(raw: &str) -> Result<WikiName, ProbeError> {
    WikiName::parse(raw).map_err(|e| ProbeError::invalid(format!("repo: {e}")))
}

fn page_path(raw: &str) -> Result<PagePath, ProbeError> {
    PagePath::parse(raw).map_err(|e| ProbeError::invalid(format!("page: {e}")))
}

fn history_limit(limit: Option<usize>) -> Result<usize, ProbeError> {
    match limit.unwrap_or(DEFAULT_HISTORY_LIMIT) {
        limit @ 1..=MAX_HISTORY_LIMIT => Ok(limit),
        other => Err(ProbeError::invalid(format!(
            "limit must be between 1 and {MAX_HISTORY_LIMIT}, got {other}"
        ))),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => Map::from_iter([("value".to_owned(), other)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> (tempfile::TempDir, GitProbe) {
        let dir = tempfile::tempdir().unwrap();
        let probe = GitProbe::new(StoreConfig::new(dir.path()));
        (dir, probe)
    }

    #[test]
    fn lifecycle_reports_every_step_and_its_timing() {
        let (_dir, probe) = probe();
        let response = probe.handle(json!({"op": "lifecycle", "repo": "demo"}));
        assert!(response.get("error").is_none(), "{response}");
        assert_eq!(response["op"], "lifecycle");
        assert_eq!(response["result"]["init"]["created"], true);
        assert_eq!(response["result"]["write"]["changed"], true);
        assert_eq!(
            response["result"]["history"]["commits"][0]["id"],
            response["result"]["write"]["revision"]
        );
        for step in ["init", "open", "write", "read", "history", "total"] {
            assert!(
                response["timings_ms"][step].is_number(),
                "{step} missing: {response}"
            );
        }
        assert_eq!(response["cold_start"], true);
    }

    #[test]
    fn write_with_a_stale_base_is_a_conflict_with_the_current_revision() {
        let (_dir, probe) = probe();
        probe.handle(json!({"op": "init", "repo": "demo"}));
        let write = |content: &str, base: Option<&Value>| {
            let mut event = json!({"op": "write", "repo": "demo", "page": "Home", "content": content,
                                   "author": {"name": "Ada", "email": "ada@example.com"}});
            if let Some(base) = base {
                event["base"] = base.clone();
            }
            probe.handle(event)
        };
        let v1 = write("v1", None);
        let v2 = write("v2", Some(&v1["result"]["revision"]));
        assert_eq!(v2["result"]["changed"], true, "{v2}");
        let stale = write("v3", Some(&v1["result"]["revision"]));
        assert_eq!(stale["error"]["kind"], "conflict", "{stale}");
        assert_eq!(stale["error"]["current_revision"], v2["result"]["revision"]);
    }

    #[test]
    fn operations_on_a_missing_wiki_are_not_found_and_create_nothing() {
        let (dir, probe) = probe();
        let response = probe.handle(json!({"op": "read", "repo": "ghost", "page": "Home"}));
        assert_eq!(response["error"]["kind"], "not_found", "{response}");
        assert!(!dir.path().join("ghost.git").exists());
    }

    #[test]
    fn malformed_events_are_invalid_input() {
        let (_dir, probe) = probe();
        for event in [
            json!({}),
            json!([]),
            json!({"op": "explode", "repo": "demo"}),
            json!({"op": "read", "repo": "demo"}),
            json!({"op": "read", "repo": "demo", "page": "Home", "extra": 1}),
            json!({"op": "history", "repo": "demo", "limit": 0}),
            json!({"op": "history", "repo": "demo", "limit": -1}),
            json!({"op": "history", "repo": "demo", "limit": 100000}),
            json!({"op": "write", "repo": "demo", "page": "Home", "content": "x",
                   "author": {"name": "a", "email": "b"}, "base": "nope"}),
        ] {
            let response = probe.handle(event.clone());
            assert_eq!(
                response["error"]["kind"], "invalid_input",
                "{event} → {response}"
            );
        }
    }
}

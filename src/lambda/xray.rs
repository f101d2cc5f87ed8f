//! X-Ray export: each invocation's `tracing` spans become X-Ray subsegments under the Lambda
//! function's segment, nested as the spans nest (handler → `git.open` → `git.commit` …), sent
//! as UDP datagrams to the daemon at `AWS_XRAY_DAEMON_ADDRESS`.
//!
//! An invocation is traced when its handler runs inside [`invocation_span`] with the trace
//! header Lambda gave it (`Root=…;Parent=…;Sampled=1`): the header's root is the trace id and
//! its parent the function segment the handler's subsegment hangs from. [`finish`] sends every
//! subsegment before the handler returns, because Lambda freezes the environment right after
//! the response. The fields `op` and `wiki` of any span, and `cold_start` of the handler's,
//! become annotations of the handler's subsegment; a warning or error event with a `kind`
//! (and an `error` message) marks it failed (`error` for the caller's mistakes, `fault` for
//! ours) with a cause.
//!
//! This module must not delay or fail an invocation: it sends nothing when the header is
//! absent or says `Sampled=0`, or when no daemon address is set, and a send that fails
//! (nothing listening, a full buffer) is dropped. It must not log or export event payloads:
//! only span names, timings and the annotation fields above leave the process.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The header line of every datagram the X-Ray daemon accepts.
pub const DAEMON_HEADER: &str = r#"{"format": "json", "version": 1}"#;
/// The daemon drops larger documents.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Fields copied into the handler subsegment's annotations.
const ANNOTATED: [&str; 3] = ["op", "wiki", "cold_start"];
/// The field of the handler's span that carries the trace header.
const TRACE_FIELD: &str = "xray_trace";
/// Spans whose target starts with this (our crate's) become subsegments.
const OUR_TARGET: &str = "wikibot";

/// A parsed `X-Amzn-Trace-Id` / `Lambda-Runtime-Trace-Id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
    pub sampled: bool,
}

impl TraceHeader {
    /// Parses `Root=1-…;Parent=…;Sampled=0|1[;Lineage=…]` (any order); `None` unless root and
    /// parent are well formed.
    pub fn parse(raw: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in raw.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) if is_trace_id(value) => root = Some(value.to_owned()),
                Some(("Parent", value)) if is_hex(value, 16) => parent = Some(value.to_owned()),
                Some(("Sampled", value)) => sampled = value == "1",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent: parent?,
            sampled,
        })
    }
}

fn is_hex(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `1-<8 hex>-<24 hex>`.
fn is_trace_id(value: &str) -> bool {
    let mut parts = value.split('-');
    parts.next() == Some("1")
        && parts.next().is_some_and(|p| is_hex(p, 8))
        && parts.next().is_some_and(|p| is_hex(p, 24))
        && parts.next().is_none()
}

/// The handler span of one invocation, carrying its trace header; run the handler in it and
/// call [`finish`] before returning the response. `op` and `wiki` may be recorded later.
pub fn invocation_span(trace_header: Option<&str>, cold_start: bool) -> tracing::Span {
    tracing::info_span!(
        "handler",
        xray_trace = trace_header.unwrap_or_default(),
        cold_start,
        op = tracing::field::Empty,
        wiki = tracing::field::Empty,
    )
}

/// Sends the subsegments of the invocation `span` heads (the handler's last, ended now), if it
/// is traced. Spans still open are not sent. Returns how many documents were sent.
pub fn finish(span: &tracing::Span) -> usize {
    let mut sent = 0;
    span.with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(data) = registry.span(id) else {
            return;
        };
        let extensions = data.extensions();
        let Some(record) = extensions.get::<SpanRecord>() else {
            return;
        };
        let invocation = &record.invocation;
        let mut documents = std::mem::take(&mut *lock(&invocation.finished));
        documents.push(invocation.handler_document(record, data.name()));
        sent = documents
            .iter()
            .filter(|doc| invocation.sender.send(doc))
            .count();
    });
    sent
}

/// Where documents go.
struct Sender {
    socket: UdpSocket,
    daemon: SocketAddr,
}

impl Sender {
    /// From `AWS_XRAY_DAEMON_ADDRESS` (`host:port`, or the SDKs' `udp:host:port tcp:…` form);
    /// `None` when it is unset or unusable.
    fn from_env() -> Option<Self> {
        let raw = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        let udp = raw
            .split_whitespace()
            .find_map(|part| part.strip_prefix("udp:"))
            .unwrap_or(raw.trim());
        Self::to(udp.to_socket_addrs().ok()?.next()?)
    }

    fn to(daemon: SocketAddr) -> Option<Self> {
        let bind: SocketAddr = if daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(bind).ok()?;
        // A daemon that is slow or gone must never hold up an invocation.
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket, daemon })
    }

    fn send(&self, document: &Value) -> bool {
        let datagram = format!("{DAEMON_HEADER}\n{document}");
        datagram.len() <= MAX_DOCUMENT_BYTES
            && self
                .socket
                .send_to(datagram.as_bytes(), self.daemon)
                .is_ok()
    }
}

/// One traced invocation.
struct Invocation {
    trace_id: String,
    parent: String,
    sender: Arc<Sender>,
    annotations: Mutex<Map<String, Value>>,
    /// A failure seen during the invocation: (fault, kind, message).
    failure: Mutex<Option<(bool, String, String)>>,
    /// Documents of the spans that closed, waiting for [`finish`].
    finished: Mutex<Vec<Value>>,
}

impl Invocation {
    fn annotate(&self, name: &str, value: Value) {
        lock(&self.annotations).entry(name).or_insert(value);
    }

    fn handler_document(&self, record: &SpanRecord, name: &str) -> Value {
        let mut document = record.document(&self.trace_id, name, now());
        let annotations = lock(&self.annotations).clone();
        if !annotations.is_empty() {
            document["annotations"] = Value::Object(annotations);
        }
        if let Some((fault, kind, message)) = lock(&self.failure).clone() {
            document[if fault { "fault" } else { "error" }] = json!(true);
            document["cause"] = json!({"exceptions": [{
                "id": span_id(), "type": kind, "message": message,
            }]});
        }
        document
    }
}

/// What the layer keeps in a traced span's extensions.
struct SpanRecord {
    /// The subsegment id; for a span that is not exported, its nearest exported ancestor's.
    id: String,
    parent_id: String,
    start: f64,
    invocation: Arc<Invocation>,
    /// Our own spans become subsegments; other crates' spans (the HTTP and MCP frameworks')
    /// are transparent: their children hang from the nearest exported ancestor.
    exported: bool,
}

impl SpanRecord {
    fn document(&self, trace_id: &str, name: &str, end: f64) -> Value {
        json!({
            "name": name,
            "id": self.id,
            "trace_id": trace_id,
            "parent_id": self.parent_id,
            "type": "subsegment",
            "start_time": self.start,
            "end_time": end,
        })
    }
}

/// The `tracing` layer that records traced invocations' spans.
pub struct XrayLayer {
    sender: Option<Arc<Sender>>,
}

impl XrayLayer {
    /// Sends to `AWS_XRAY_DAEMON_ADDRESS`; records nothing at all when it is not set.
    pub fn from_env() -> Self {
        Self {
            sender: Sender::from_env().map(Arc::new),
        }
    }

    /// Sends to `daemon` (benchmarks and tests).
    pub fn sending_to(daemon: SocketAddr) -> Self {
        Self {
            sender: Sender::to(daemon).map(Arc::new),
        }
    }
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(sender) = &self.sender else { return };
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let record = if let Some(header) = fields.trace.as_deref() {
            let Some(header) = TraceHeader::parse(header).filter(|h| h.sampled) else {
                return;
            };
            SpanRecord {
                id: span_id(),
                parent_id: header.parent.clone(),
                start: now(),
                exported: true,
                invocation: Arc::new(Invocation {
                    trace_id: header.root,
                    parent: header.parent,
                    sender: Arc::clone(sender),
                    annotations: Mutex::new(Map::new()),
                    failure: Mutex::new(None),
                    finished: Mutex::new(Vec::new()),
                }),
            }
        } else {
            let Some(parent) = span.parent() else { return };
            let extensions = parent.extensions();
            let Some(parent) = extensions.get::<SpanRecord>() else {
                return;
            };
            let exported = attrs.metadata().target().starts_with(OUR_TARGET);
            SpanRecord {
                id: if exported {
                    span_id()
                } else {
                    parent.id.clone()
                },
                parent_id: if exported {
                    parent.id.clone()
                } else {
                    parent.parent_id.clone()
                },
                start: now(),
                exported,
                invocation: Arc::clone(&parent.invocation),
            }
        };
        for (name, value) in fields.annotations {
            record.invocation.annotate(name, value);
        }
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(record) = extensions.get::<SpanRecord>() else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        for (name, value) in fields.annotations {
            record.invocation.annotate(name, value);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level != Level::WARN && level != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let extensions = span.extensions();
        let Some(record) = extensions.get::<SpanRecord>() else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(kind) = fields.kind else { return };
        // The caller's mistakes are errors (4xx); everything else is our fault (5xx).
        let fault = !matches!(kind.as_str(), "invalid_input" | "not_found" | "conflict");
        let message: String = fields
            .error
            .or(fields.message)
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        lock(&record.invocation.failure).get_or_insert((fault, kind, message));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(record) = extensions.get::<SpanRecord>() else {
            return;
        };
        let invocation = &record.invocation;
        if !record.exported || record.parent_id == invocation.parent {
            // Not ours, or the handler itself (`finish` sends that).
            return;
        }
        let document = record.document(&invocation.trace_id, span.name(), now());
        lock(&invocation.finished).push(document);
    }
}

/// The fields of a span or event that this module reads.
#[derive(Default)]
struct Fields {
    trace: Option<String>,
    annotations: Vec<(&'static str, Value)>,
    kind: Option<String>,
    /// The failure's own message (`error = …`), else the event's.
    error: Option<String>,
    message: Option<String>,
}

impl Fields {
    fn take(&mut self, field: &Field, value: Value) {
        match field.name() {
            TRACE_FIELD => self.trace = value.as_str().map(str::to_owned),
            "kind" => self.kind = value.as_str().map(str::to_owned),
            "error" => self.error = value.as_str().map(str::to_owned),
            "message" => self.message = value.as_str().map(str::to_owned),
            name => {
                if let Some(annotated) = ANNOTATED.iter().find(|a| **a == name) {
                    // X-Ray keeps annotation strings up to 1,000 characters.
                    let value = match value {
                        Value::String(text) => json!(text.chars().take(250).collect::<String>()),
                        other => other,
                    };
                    self.annotations.push((annotated, value));
                }
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.take(field, json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.take(field, json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.take(field, json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.take(field, json!(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Display-formatted fields (`%value`) arrive here; annotation values are strings.
        let text = format!("{value:?}");
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(&text)
            .to_owned();
        self.take(field, json!(text));
    }
}

/// A new 16-hex-digit segment id.
fn span_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Seconds since the epoch, with microseconds, as X-Ray wants times.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A local stand-in for the X-Ray daemon: a UDP socket that collects documents, as
/// `wikibot invoke --xray` and the tests use it.
pub struct LocalDaemon {
    socket: UdpSocket,
}

impl LocalDaemon {
    /// Listens on a free port on 127.0.0.1.
    pub fn bind() -> std::io::Result<Self> {
        let socket = UdpSocket::bind(("127.0.0.1", 0))?;
        Ok(Self { socket })
    }

    /// What to set `AWS_XRAY_DAEMON_ADDRESS` to.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The documents received until nothing more arrives for `quiet` (datagrams are sent
    /// before a function answers, so a short wait collects them all).
    pub fn drain(&self, quiet: std::time::Duration) -> std::io::Result<Vec<Value>> {
        self.socket.set_read_timeout(Some(quiet))?;
        let mut buffer = vec![0u8; MAX_DOCUMENT_BYTES + 64];
        let mut documents = Vec::new();
        loop {
            match self.socket.recv(&mut buffer) {
                Ok(n) => documents.extend(parse_datagram(&buffer[..n])),
                // A receive with a timeout is never restarted after a signal handler runs,
                // even under SA_RESTART (signal(7)); tokio's SIGCHLD handler is one, whenever
                // the same process runs a child (a function under the emulator).
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(documents);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses one datagram as the daemon would: the header line, then one JSON document.
pub fn parse_datagram(datagram: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (header, document) = text.split_once('\n')?;
    (header == DAEMON_HEADER)
        .then(|| serde_json::from_str(document).ok())
        .flatten()
}

/// Draws the subsegments of one trace as a tree with durations, as the X-Ray console's
/// timeline lists them: children under their parents, in start order.
pub fn render_tree(documents: &[Value]) -> String {
    let ids: std::collections::HashSet<&str> =
        documents.iter().filter_map(|d| d["id"].as_str()).collect();
    let mut roots: Vec<&Value> = documents
        .iter()
        .filter(|d| !d["parent_id"].as_str().is_some_and(|p| ids.contains(p)))
        .collect();
    roots.sort_by(|a, b| {
        a["start_time"]
            .as_f64()
            .partial_cmp(&b["start_time"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = String::new();
    for root in roots {
        draw(root, documents, "", true, true, &mut out);
    }
    out
}

fn draw(node: &Value, all: &[Value], prefix: &str, last: bool, top: bool, out: &mut String) {
    let millis = (node["end_time"].as_f64().unwrap_or(0.0)
        - node["start_time"].as_f64().unwrap_or(0.0))
        * 1000.0;
    let branch = if top {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let mut line = format!(
        "{prefix}{branch}{}  {millis:.3} ms",
        node["name"].as_str().unwrap_or("?")
    );
    if let Some(annotations) = node["annotations"].as_object() {
        let shown: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!("  [{}]", shown.join(" ")));
    }
    if node["fault"] == json!(true) || node["error"] == json!(true) {
        let what = if node["fault"] == json!(true) {
            "fault"
        } else {
            "error"
        };
        line.push_str(&format!(
            "  {what}: {}",
            node["cause"]["exceptions"][0]["message"]
                .as_str()
                .unwrap_or("")
        ));
    }
    out.push_str(&line);
    out.push('\n');
    let id = node["id"].as_str().unwrap_or_default();
    let mut children: Vec<&Value> = all
        .iter()
        .filter(|d| d["parent_id"].as_str() == Some(id))
        .collect();
    children.sort_by(|a, b| {
        a["start_time"]
            .as_f64()
            .partial_cmp(&b["start_time"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let child_prefix = if top {
        prefix.to_owned()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    let count = children.len();
    for (i, child) in children.into_iter().enumerate() {
        draw(child, all, &child_prefix, i + 1 == count, false, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_parse_in_any_order_and_refuse_malformed_ids() {
        let header = TraceHeader::parse(
            "Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Lineage=a:1",
        )
        .unwrap();
        assert_eq!(header.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(header.parent, "53995c3f42cd8ad8");
        assert!(header.sampled);
        let unsampled = TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        );
        assert!(!unsampled.unwrap().sampled);
        for bad in [
            "",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8adZ",
        ] {
            assert!(TraceHeader::parse(bad).is_none(), "{bad:?}");
        }
    }

    extern "C" fn ignore_signal(_: libc::c_int) {}

    /// A signal that lands while the daemon waits (tokio's SIGCHLD when a function exits)
    /// does not end the drain: the documents sent after it still arrive.
    #[test]
    fn a_signal_during_a_drain_does_not_lose_the_documents() {
        let daemon = LocalDaemon::bind().unwrap();
        let address = daemon.address().unwrap();
        // SAFETY: a handler that does nothing is async-signal-safe, and SIGUSR1 is not used
        // by anything else in the unit-test process.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
        let (thread_id, drained) = std::sync::mpsc::channel();
        let drainer = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            thread_id.send(unsafe { libc::pthread_self() }).unwrap();
            daemon.drain(std::time::Duration::from_millis(500))
        });
        let drainer_thread = drained.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        // SAFETY: the drainer is still running: it waits at least 500 ms before it returns.
        assert_eq!(
            unsafe { libc::pthread_kill(drainer_thread, libc::SIGUSR1) },
            0
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let sender = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let datagram = format!("{DAEMON_HEADER}\n{}", json!({"name": "after-signal"}));
        sender.send_to(datagram.as_bytes(), address).unwrap();
        let documents = drainer.join().unwrap().unwrap();
        assert_eq!(documents.len(), 1, "{documents:?}");
        assert_eq!(documents[0]["name"], "after-signal");
    }

    #[test]
    fn datagrams_need_the_daemon_header() {
        let document = json!({"name": "x"});
        assert_eq!(
            parse_datagram(format!("{DAEMON_HEADER}\n{document}").as_bytes()),
            Some(document)
        );
        assert_eq!(parse_datagram(b"{\"name\":\"x\"}"), None);
        assert_eq!(
            parse_datagram(format!("{DAEMON_HEADER}\nnot json").as_bytes()),
            None
        );
    }

    #[test]
    fn the_tree_nests_children_under_parents_in_start_order() {
        let doc = |name: &str, id: &str, parent: &str, start: f64, end: f64| json!({"name": name, "id": id, "parent_id": parent, "start_time": start, "end_time": end});
        let tree = render_tree(&[
            doc("git.commit", "c", "h", 1.002, 1.004),
            doc("handler", "h", "lambda", 1.0, 1.005),
            doc("git.open", "o", "h", 1.001, 1.0015),
        ]);
        assert_eq!(
            tree,
            "handler  5.000 ms\n├─ git.open  0.500 ms\n└─ git.commit  2.000 ms\n"
        );
    }
}

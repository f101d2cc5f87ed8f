//! A local stand-in for the Lambda service: it starts a compiled `bootstrap` the way Lambda
//! does (clean environment, reserved variables, its own Runtime API endpoint), hands it events
//! one at a time over the Runtime API (`2018-06-01`), and kills it on timeout.
//!
//! A fresh [`RunningFunction`] is a cold start; further invocations of it are warm. Tests,
//! benchmarks and `wikibot invoke` use this; production code must not depend on it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Lambda's limit on a synchronous invocation's request and response payloads.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
const LOG_TAIL_LINES: usize = 200;
/// The region and account emulated functions live in.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "000000000000";
const API_PREFIX: &str = "/2018-06-01/runtime";

/// How to start a function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub bootstrap: PathBuf,
    /// The function's own environment variables, on top of Lambda's reserved ones.
    pub env: Vec<(String, String)>,
    pub function_name: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Copy the function's log lines to this process's stderr as they arrive.
    pub echo_logs: bool,
}

impl FunctionSpec {
    pub fn new(bootstrap: impl Into<PathBuf>) -> Self {
        let bootstrap = bootstrap.into();
        let function_name = bootstrap.file_name().map_or_else(
            || "function".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self {
            bootstrap,
            env: Vec::new(),
            function_name,
            memory_mb: 512,
            timeout: Duration::from_secs(30),
            echo_logs: false,
        }
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// What the function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The payload posted to `/invocation/{id}/response`.
    Response(Vec<u8>),
    /// The function reported an error on `/invocation/{id}/error`.
    FunctionError { error_type: String, message: String },
}

/// One completed invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// The first invocation of a process.
    pub cold: bool,
    /// For a cold invocation: process start to the runtime's first request for work.
    pub init: Option<Duration>,
    /// Event queued to answer received.
    pub duration: Duration,
    /// For a cold invocation: process start to answer received (what a caller waits).
    pub cold_start_total: Option<Duration>,
}

impl Invocation {
    /// The response payload parsed as JSON (a function error becomes Lambda's error shape).
    pub fn json(&self) -> serde_json::Value {
        match &self.outcome {
            Outcome::Response(body) => serde_json::from_slice(body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
            }),
            Outcome::FunctionError {
                error_type,
                message,
            } => serde_json::json!({ "errorType": error_type, "errorMessage": message }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve the Runtime API: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the event is {0} bytes; Lambda accepts at most {MAX_PAYLOAD_BYTES}")]
    EventTooLarge(usize),
    #[error("the event is not JSON ({0}); Lambda accepts only JSON payloads")]
    EventNotJson(#[source] serde_json::Error),
    #[error("the function exited ({status}) {phase}{}", tail(.logs))]
    Exited {
        status: ExitStatus,
        phase: &'static str,
        logs: Vec<String>,
    },
    #[error("the function timed out after {} ms and was killed{}", .after.as_millis(), tail(.logs))]
    Timeout { after: Duration, logs: Vec<String> },
    #[error("the function is no longer running; start a new one")]
    NotRunning,
}

fn tail(logs: &[String]) -> String {
    let last: Vec<&str> = logs
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(String::as_str)
        .collect();
    if last.is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n{}", last.join("\n"))
    }
}

/// A started function process and its Runtime API endpoint.
pub struct RunningFunction {
    spec: FunctionSpec,
    child: Option<Child>,
    api: Arc<RuntimeApi>,
    server: JoinHandle<()>,
    spawned_at: Instant,
    invocations: u64,
    logs: Arc<Mutex<LogBuffer>>,
}

/// The function's most recent log lines, and how many it has written in all.
#[derive(Default)]
struct LogBuffer {
    lines: VecDeque<String>,
    total: u64,
}

impl RunningFunction {
    /// Starts the bootstrap as a fresh execution environment (the next invocation is cold).
    pub async fn start(mut spec: FunctionSpec) -> Result<Self, EmulatorError> {
        // The process starts in its task root, so a relative path would no longer resolve.
        spec.bootstrap =
            std::path::absolute(&spec.bootstrap).map_err(|source| EmulatorError::Spawn {
                path: spec.bootstrap.clone(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(EmulatorError::Serve)?;
        let address = listener.local_addr().map_err(EmulatorError::Serve)?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let api = Arc::new(RuntimeApi {
            queue,
            receiver: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            function_arn: function_arn(&spec.function_name),
        });
        let router = api_router(Arc::clone(&api));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "Runtime API server stopped");
            }
        });

        let mut command = Command::new(&spec.bootstrap);
        command
            .env_clear()
            .envs(lambda_environment(&spec, &address.to_string()))
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = spec
            .bootstrap
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            command.current_dir(dir);
        }
        let spawned_at = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(source) => {
                server.abort();
                return Err(EmulatorError::Spawn {
                    path: spec.bootstrap.clone(),
                    source,
                });
            }
        };
        let logs = Arc::new(Mutex::new(LogBuffer::default()));
        let prefix = spec.function_name.clone();
        if let Some(stdout) = child.stdout.take() {
            collect_logs(
                stdout,
                Arc::clone(&logs),
                spec.echo_logs.then(|| prefix.clone()),
            );
        }
        if let Some(stderr) = child.stderr.take() {
            collect_logs(stderr, Arc::clone(&logs), spec.echo_logs.then_some(prefix));
        }
        Ok(Self {
            spec,
            child: Some(child),
            api,
            server,
            spawned_at,
            invocations: 0,
            logs,
        })
    }

    /// Invokes the function with the spec's timeout and a fresh sampled trace header, as
    /// Lambda with active tracing does.
    pub async fn invoke(&mut self, event: &[u8]) -> Result<Invocation, EmulatorError> {
        self.invoke_with_timeout(event, self.spec.timeout).await
    }

    /// Invokes the function; past `timeout` it is killed with SIGKILL, as Lambda does.
    pub async fn invoke_with_timeout(
        &mut self,
        event: &[u8],
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        let trace = trace_header(true);
        self.invoke_traced(event, Some(&trace), timeout).await
    }

    /// Invokes the function with `trace_header` as its `Lambda-Runtime-Trace-Id` (none sent
    /// for `None`); past `timeout` it is killed with SIGKILL, as Lambda does.
    pub async fn invoke_traced(
        &mut self,
        event: &[u8],
        trace_header: Option<&str>,
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        self.invoke_as(&request_id(), event, trace_header, timeout)
            .await
    }

    /// Like [`Self::invoke_traced`], with the caller's request id (a service that reports
    /// the invocation in its own log lines chooses it, as Lambda does).
    pub async fn invoke_as(
        &mut self,
        request_id: &str,
        event: &[u8],
        trace_header: Option<&str>,
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        if event.len() > MAX_PAYLOAD_BYTES {
            return Err(EmulatorError::EventTooLarge(event.len()));
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(event)
            .map_err(EmulatorError::EventNotJson)?;
        let cold = self.invocations == 0;
        self.invocations += 1;
        let request_id = request_id.to_owned();
        let (reply, answer) = oneshot::channel();
        let queued_at = Instant::now();
        let deadline_ms = epoch_millis(SystemTime::now() + timeout);
        let pending = Pending {
            request_id: request_id.clone(),
            body: Bytes::copy_from_slice(event),
            deadline_ms,
            trace_header: trace_header.map(str::to_owned),
            reply,
        };
        if self.api.queue.send(pending).is_err() {
            return Err(EmulatorError::NotRunning);
        }

        let child = self.child.as_mut().ok_or(EmulatorError::NotRunning)?;
        enum Ended {
            Answered(Result<Outcome, oneshot::error::RecvError>),
            Exited(std::io::Result<ExitStatus>),
            TimedOut,
        }
        let ended = tokio::select! {
            answer = answer => Ended::Answered(answer),
            status = child.wait() => Ended::Exited(status),
            () = tokio::time::sleep(timeout) => Ended::TimedOut,
        };
        let outcome = match ended {
            Ended::Answered(Ok(outcome)) => outcome,
            Ended::Answered(Err(_)) => return Err(EmulatorError::NotRunning),
            Ended::Exited(status) => {
                self.child = None;
                let phase = if self.api.first_poll.get().is_some() {
                    "during the invocation"
                } else {
                    "before asking for its first event (init failed)"
                };
                return Err(match status {
                    Ok(status) => EmulatorError::Exited {
                        status,
                        phase,
                        logs: self.logs().await,
                    },
                    Err(_) => EmulatorError::NotRunning,
                });
            }
            Ended::TimedOut => {
                self.kill().await;
                return Err(EmulatorError::Timeout {
                    after: timeout,
                    logs: self.logs().await,
                });
            }
        };
        let answered_at = Instant::now();
        let init = cold.then(|| self.init_duration()).flatten();
        Ok(Invocation {
            request_id,
            outcome,
            cold,
            init,
            duration: answered_at.duration_since(queued_at),
            cold_start_total: cold.then(|| answered_at.duration_since(self.spawned_at)),
        })
    }

    /// Kills the process with SIGKILL (what Lambda does on timeout) and reaps it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The process may already have exited; either way it is gone afterwards.
            let _ = child.kill().await;
        }
    }

    /// Process start to the runtime's first request for work, once it has asked.
    pub fn init_duration(&self) -> Option<Duration> {
        self.api
            .first_poll
            .get()
            .map(|t| t.duration_since(self.spawned_at))
    }

    /// When the runtime first asked for work (the end of init), once it has.
    pub fn first_request_at(&self) -> Option<Instant> {
        self.api.first_poll.get().copied()
    }

    /// How many invocations this process has been given (0: the next one is cold).
    pub fn invocations(&self) -> u64 {
        self.invocations
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The function's most recent log lines (stdout and stderr, interleaved as they arrived).
    pub async fn logs(&self) -> Vec<String> {
        // Give the log readers a moment to drain pipes of a process that just ended.
        tokio::time::sleep(Duration::from_millis(20)).await;
        lock(&self.logs).lines.iter().cloned().collect()
    }

    /// A mark in the function's log: [`Self::logs_since`] returns the lines after it.
    pub fn log_mark(&self) -> u64 {
        lock(&self.logs).total
    }

    /// The lines the function logged after `mark` that are still kept (the last 200), as
    /// collected so far.
    pub fn logs_since(&self, mark: u64) -> Vec<String> {
        let logs = lock(&self.logs);
        let new = usize::try_from(logs.total.saturating_sub(mark)).unwrap_or(usize::MAX);
        let skip = logs.lines.len().saturating_sub(new);
        logs.lines.iter().skip(skip).cloned().collect()
    }
}

impl Drop for RunningFunction {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(child) = self.child.as_mut() {
            // `kill_on_drop` also covers this; being explicit keeps intent visible.
            let _ = child.start_kill();
        }
    }
}

/// The ARN of an emulated function.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

/// The variables Lambda sets itself, which a function's configuration may not set.
pub const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The environment Lambda gives a `provided.al2023` function, pointed at our endpoint.
fn lambda_environment(spec: &FunctionSpec, runtime_api: &str) -> Vec<(String, String)> {
    let task_root = spec
        .bootstrap
        .parent()
        .map_or_else(|| ".".to_owned(), |p| p.display().to_string());
    let stream = format!(
        "{}/[$LATEST]{:032x}",
        humantime::format_rfc3339(SystemTime::now())
            .to_string()
            .get(..10)
            .unwrap_or("1970-01-01")
            .replace('-', "/"),
        fastrand::u128(..)
    );
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn collect_logs(
    stream: impl AsyncRead + Unpin + Send + 'static,
    logs: Arc<Mutex<LogBuffer>>,
    echo_prefix: Option<String>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(prefix) = &echo_prefix {
                eprintln!("[{prefix}] {line}");
            }
            let mut logs = lock(&logs);
            if logs.lines.len() == LOG_TAIL_LINES {
                logs.lines.pop_front();
            }
            logs.lines.push_back(line);
            logs.total += 1;
        }
    });
}

struct Pending {
    request_id: String,
    body: Bytes,
    deadline_ms: u128,
    /// `Lambda-Runtime-Trace-Id`; none is sent when absent.
    trace_header: Option<String>,
    reply: oneshot::Sender<Outcome>,
}

/// The service side of the Runtime API for one function process.
struct RuntimeApi {
    queue: mpsc::UnboundedSender<Pending>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: OnceLock<Instant>,
    function_arn: String,
}

fn api_router(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route(
            &format!("{API_PREFIX}/invocation/next"),
            get(next_invocation),
        )
        .route(
            &format!("{API_PREFIX}/invocation/{{id}}/response"),
            post(invocation_response),
        )
        .route(
            &format!("{API_PREFIX}/invocation/{{id}}/error"),
            post(invocation_error),
        )
        .route(&format!("{API_PREFIX}/init/error"), post(init_error))
        // Oversized responses are reported as Lambda reports them, not cut off by the server.
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES * 2))
        .with_state(api)
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> (StatusCode, HeaderMap, Bytes) {
    api.first_poll.get_or_init(Instant::now);
    let Some(pending) = api.receiver.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", pending.request_id.clone());
    set(
        "lambda-runtime-deadline-ms",
        pending.deadline_ms.to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        api.function_arn.clone(),
    );
    if let Some(trace) = &pending.trace_header {
        set("lambda-runtime-trace-id", trace.clone());
    }
    set("content-type", "application/json".to_owned());
    lock(&api.in_flight).insert(pending.request_id, pending.reply);
    (StatusCode::OK, headers, pending.body)
}

async fn invocation_response(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let outcome = if body.len() > MAX_PAYLOAD_BYTES {
        Outcome::FunctionError {
            error_type: "Function.ResponseSizeTooLarge".to_owned(),
            message: format!(
                "response is {} bytes; Lambda returns at most {MAX_PAYLOAD_BYTES}",
                body.len()
            ),
        }
    } else {
        Outcome::Response(body.to_vec())
    };
    answer(&api, &id, outcome)
}

async fn invocation_error(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    answer(&api, &id, function_error(&headers, &body))
}

async fn init_error(headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Outcome::FunctionError {
        error_type,
        message,
    } = function_error(&headers, &body)
    {
        tracing::warn!(%error_type, %message, "function reported an init error");
    }
    StatusCode::ACCEPTED
}

fn answer(api: &RuntimeApi, id: &str, outcome: Outcome) -> StatusCode {
    match lock(&api.in_flight).remove(id) {
        Some(reply) => {
            // The invoker may have given up (timeout); the answer is then dropped, as in Lambda.
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn function_error(headers: &HeaderMap, body: &[u8]) -> Outcome {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| parsed.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let error_type = field("errorType")
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    Outcome::FunctionError {
        error_type,
        message,
    }
}

/// A fresh request id in Lambda's format (a UUID).
pub fn request_id() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A fresh X-Ray trace header as Lambda sends one with each event: a new trace root, the
/// id of the function's segment as parent, and the sampling decision.
pub fn trace_header(sampled: bool) -> String {
    let seconds = epoch_millis(SystemTime::now()) / 1000;
    format!(
        "Root=1-{seconds:08x}-{:024x};Parent={:016x};Sampled={}",
        fastrand::u128(..) & ((1u128 << 96) - 1),
        fastrand::u64(..),
        u8::from(sampled)
    )
}

fn epoch_millis(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resolves a bootstrap argument: a path, or the name of a binary built next to `wikibot`.
pub fn resolve_bootstrap(name_or_path: &Path) -> PathBuf {
    let is_bare_name = name_or_path.components().count() == 1 && !name_or_path.exists();
    if is_bare_name
        && let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let sibling = dir.join(name_or_path);
        if sibling.is_file() {
            return sibling;
        }
    }
    name_or_path.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_lambdas() {
        let id = request_id();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_ne!(id, request_id());
    }

    #[test]
    fn trace_header_has_root_parent_and_sampling() {
        for (sampled, flag) in [(true, "Sampled=1"), (false, "Sampled=0")] {
            let header = trace_header(sampled);
            let parts: Vec<&str> = header.split(';').collect();
            assert!(
                parts[0].starts_with("Root=1-") && parts[0].len() == "Root=1-".len() + 8 + 1 + 24
            );
            assert!(parts[1].starts_with("Parent=") && parts[1].len() == "Parent=".len() + 16);
            assert_eq!(parts[2], flag);
        }
    }

    #[test]
    fn function_errors_take_type_and_message_from_the_body() {
        let body = br#"{"errorType":"Boom","errorMessage":"it broke"}"#;
        assert_eq!(
            function_error(&HeaderMap::new(), body),
            Outcome::FunctionError {
                error_type: "Boom".into(),
                message: "it broke".into()
            }
        );
    }

    /// A shell-script bootstrap. The function's PATH is Lambda's, not ours, so commands are
    /// named by absolute path (which also works in the Nix build sandbox).
    fn script_bootstrap(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("bootstrap");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `sleep` from PATH: the bootstraps get a clean environment without one.
    fn sleep_program() -> PathBuf {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("sleep"))
                    .find(|p| p.is_file())
            })
            .expect("sleep on PATH")
    }

    /// A bootstrap that starts and then never asks for work.
    fn hanging_bootstrap(dir: &Path) -> PathBuf {
        script_bootstrap(dir, &format!("exec {} 60", sleep_program().display()))
    }

    #[tokio::test]
    async fn refuses_non_json_and_oversized_events_before_starting_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut function = RunningFunction::start(FunctionSpec::new(hanging_bootstrap(dir.path())))
            .await
            .unwrap();
        assert!(matches!(
            function.invoke(b"not json").await,
            Err(EmulatorError::EventNotJson(_))
        ));
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(
            function.invoke(&big).await,
            Err(EmulatorError::EventTooLarge(_))
        ));
        // The process was never handed the refused events: it is still waiting, so a valid
        // event now runs into its (short) timeout rather than an exited process.
        let err = function
            .invoke_with_timeout(b"{}", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, EmulatorError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_process_that_exits_at_init_reports_init_failure() {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = script_bootstrap(dir.path(), "echo 'no configuration' >&2; exit 3");
        let mut function = RunningFunction::start(FunctionSpec::new(bootstrap))
            .await
            .unwrap();
        let err = function.invoke(b"{}").await.unwrap_err().to_string();
        assert!(
            err.contains("init failed") && err.contains("exit status: 3"),
            "{err}"
        );
        assert!(
            err.contains("no configuration"),
            "the log tail is reported: {err}"
        );
        assert!(matches!(
            function.invoke(b"{}").await,
            Err(EmulatorError::NotRunning)
        ));
    }

    #[tokio::test]
    async fn log_marks_select_the_lines_written_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = script_bootstrap(
            dir.path(),
            &format!("echo one\necho two\nexec {} 60", sleep_program().display()),
        );
        let function = RunningFunction::start(FunctionSpec::new(bootstrap))
            .await
            .unwrap();
        for _ in 0..100 {
            if function.log_mark() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(function.log_mark(), 2);
        assert_eq!(function.logs_since(0), ["one", "two"]);
        assert_eq!(function.logs_since(1), ["two"]);
        assert!(function.logs_since(2).is_empty());
        assert_eq!(function.invocations(), 0);
        assert!(
            function.init_duration().is_none(),
            "it never asked for work"
        );
    }

    #[tokio::test]
    async fn a_hung_function_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut function = RunningFunction::start(FunctionSpec::new(hanging_bootstrap(dir.path())))
            .await
            .unwrap();
        let pid = function.pid().unwrap();
        let err = function
            .invoke_with_timeout(b"{}", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, EmulatorError::Timeout { .. }), "{err}");
        assert_eq!(function.pid(), None);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists"
        );
    }
}

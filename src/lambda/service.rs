//! A local stand-in for the Lambda service's API (`2015-03-31`) as the AWS SDKs and CLI speak
//! it: `Invoke` (with `X-Amz-Log-Type: Tail`), `GetFunction`, `GetFunctionConfiguration`,
//! `UpdateFunctionConfiguration` and `ListFunctions`, for named functions served by compiled
//! bootstraps. Behind it each function has a configuration and a pool of execution
//! environments, each one process run by [`super::emulator`]: a busy environment never takes a
//! second invocation, a new one is started when all are busy (a cold start, as Lambda scales
//! out), and a configuration change retires them all, so the next invocation is cold.
//!
//! The numbers of each invocation's `REPORT` line are measured here, the way Lambda defines
//! them: Duration (the event handed to the function, after init on a cold start → its
//! answer), Billed Duration (Duration plus, on a cold
//! start, Init Duration, rounded up to the millisecond, as for `provided` runtimes), Memory
//! Size (configured), Max Memory Used (the process's peak resident set, `VmHWM`) and, on a cold
//! start, Init Duration (process start → its first request for work).
//!
//! It must not verify SigV4 or otherwise pretend to be secure: whoever reaches its port can
//! run the functions and change their configuration, so `wikibot emulate` binds loopback
//! unless told otherwise. Production code must not use it. It models only what a benchmark
//! needs: no versions, aliases, layers, code updates or asynchronous retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::emulator::{
    self, ACCOUNT_ID, EmulatorError, FunctionSpec, MAX_PAYLOAD_BYTES, Outcome, RESERVED_VARIABLES,
    RunningFunction,
};

/// How much of the end of an invocation's log `X-Amz-Log-Result` carries.
pub const LOG_RESULT_BYTES: usize = 4096;
/// Environments one function may run at once before invocations are throttled (429).
pub const DEFAULT_MAX_ENVIRONMENTS: usize = 32;
/// How long `LastUpdateStatus` stays `InProgress` after a configuration change.
pub const DEFAULT_UPDATE_DELAY: Duration = Duration::from_millis(200);
const RUNTIME: &str = "provided.al2023";
const FUNCTIONS: &str = "/2015-03-31/functions";

/// A function the service serves, and its initial configuration.
#[derive(Debug, Clone)]
pub struct FunctionDefinition {
    pub name: String,
    pub bootstrap: PathBuf,
    /// `Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub description: String,
}

impl FunctionDefinition {
    pub fn new(name: impl Into<String>, bootstrap: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            bootstrap: bootstrap.into(),
            environment: BTreeMap::new(),
            memory_mb: 512,
            timeout: Duration::from_secs(30),
            description: String::new(),
        }
    }
}

/// How the service behaves, beyond each function's configuration.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Environments one function may run at once; more concurrent invocations get 429.
    pub max_environments: usize,
    /// How long `LastUpdateStatus` stays `InProgress` after a configuration change (what the
    /// SDK's `function_updated` waiters wait for).
    pub update_delay: Duration,
    /// Copy the functions' log lines, and the START/END/REPORT lines, to stderr.
    pub echo_logs: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            max_environments: DEFAULT_MAX_ENVIRONMENTS,
            update_delay: DEFAULT_UPDATE_DELAY,
            echo_logs: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("function '{0}' is defined twice")]
    Duplicate(String),
    #[error("function '{name}': {problem}")]
    InvalidConfiguration { name: String, problem: String },
    #[error("no functions to serve")]
    NoFunctions,
    #[error("cannot serve the Lambda API: {0}")]
    Serve(#[source] std::io::Error),
}

/// The service: named functions, their configurations and environments. Cheap to clone.
#[derive(Clone)]
pub struct LambdaService {
    inner: Arc<Inner>,
}

struct Inner {
    functions: BTreeMap<String, Function>,
    options: ServiceOptions,
}

struct Function {
    name: String,
    arn: String,
    bootstrap: PathBuf,
    code_size: u64,
    state: Mutex<FunctionState>,
}

struct FunctionState {
    config: Config,
    /// Bumped by every configuration change; environments of older generations retire.
    generation: u64,
    updated_at: Option<Instant>,
    idle: Vec<Environment>,
    busy: usize,
}

#[derive(Debug, Clone)]
struct Config {
    environment: BTreeMap<String, String>,
    memory_mb: u32,
    timeout: Duration,
    description: String,
    revision_id: String,
    last_modified: SystemTime,
}

struct Environment {
    process: RunningFunction,
    generation: u64,
}

/// A failure of the API call itself, shaped as the service reports it: the status, the
/// `x-amzn-ErrorType` header and `{"Type": "User", "Message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    fn not_found(arn: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {arn}"),
        )
    }
}

/// How the caller wants the invocation run (`X-Amz-Invocation-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// What an invocation returned, and its log.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    /// The payload: the function's response, or the error it (or the service) reported.
    pub payload: Vec<u8>,
    /// `X-Amz-Function-Error: Unhandled`.
    pub function_error: bool,
    /// START, the function's own lines, END and REPORT: what CloudWatch would hold.
    pub log: String,
    pub report: Report,
}

/// The numbers of a `REPORT` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub request_id: String,
    pub duration: Duration,
    pub memory_mb: u32,
    pub max_memory_used_mb: Option<u64>,
    /// Only on the first invocation of an environment.
    pub init: Option<Duration>,
    /// `timeout`, or `error` with the error type, when the environment did not survive.
    pub status: Option<(&'static str, Option<String>)>,
    /// `(trace id, segment id, sampled)` of the X-Ray trace header the function was given.
    pub xray: Option<(String, String, bool)>,
}

impl Report {
    /// Billed Duration: the invocation, plus init on a cold start (`provided` runtimes bill
    /// their init), rounded up to the millisecond.
    pub fn billed_ms(&self) -> u64 {
        let total = self.duration + self.init.unwrap_or_default();
        total.as_nanos().div_ceil(1_000_000) as u64
    }

    /// The `REPORT` line (and Lambda's `XRAY` line under it for traced invocations).
    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\t",
            self.request_id,
            ms(self.duration),
            self.billed_ms(),
            self.memory_mb
        );
        if let Some(used) = self.max_memory_used_mb {
            line.push_str(&format!("Max Memory Used: {used} MB\t"));
        }
        if let Some(init) = self.init {
            line.push_str(&format!("Init Duration: {:.2} ms\t", ms(init)));
        }
        if let Some((status, error_type)) = &self.status {
            line.push_str(&format!("Status: {status}"));
            if let Some(error_type) = error_type {
                line.push_str(&format!("\tError Type: {error_type}"));
            }
        }
        if let Some((trace_id, segment_id, sampled)) = &self.xray {
            line.push_str(&format!(
                "\nXRAY TraceId: {trace_id}\tSegmentId: {segment_id}\tSampled: {sampled}"
            ));
        }
        line
    }
}

impl LambdaService {
    pub fn new(
        definitions: Vec<FunctionDefinition>,
        options: ServiceOptions,
    ) -> Result<Self, ServiceError> {
        if definitions.is_empty() {
            return Err(ServiceError::NoFunctions);
        }
        let mut functions = BTreeMap::new();
        for definition in definitions {
            let name = definition.name.clone();
            let invalid = |problem: String| ServiceError::InvalidConfiguration {
                name: name.clone(),
                problem,
            };
            check_name(&name).map_err(|e| invalid(e.message))?;
            check_memory(i64::from(definition.memory_mb)).map_err(|e| invalid(e.message))?;
            check_timeout(definition.timeout.as_secs() as i64).map_err(|e| invalid(e.message))?;
            check_variables(&definition.environment).map_err(|e| invalid(e.message))?;
            let bootstrap = std::path::absolute(&definition.bootstrap)
                .map_err(|e| invalid(format!("{}: {e}", definition.bootstrap.display())))?;
            let code_size = std::fs::metadata(&bootstrap)
                .map(|m| m.len())
                .map_err(|e| invalid(format!("no bootstrap at {}: {e}", bootstrap.display())))?;
            let function = Function {
                arn: emulator::function_arn(&name),
                name: name.clone(),
                bootstrap,
                code_size,
                state: Mutex::new(FunctionState {
                    config: Config {
                        environment: definition.environment,
                        memory_mb: definition.memory_mb,
                        timeout: Duration::from_secs(definition.timeout.as_secs()),
                        description: definition.description,
                        revision_id: emulator::request_id(),
                        last_modified: SystemTime::now(),
                    },
                    generation: 0,
                    updated_at: None,
                    idle: Vec::new(),
                    busy: 0,
                }),
            };
            if functions.insert(name.clone(), function).is_some() {
                return Err(ServiceError::Duplicate(name));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner { functions, options }),
        })
    }

    /// The functions served, by name.
    pub fn function_names(&self) -> Vec<String> {
        self.inner.functions.keys().cloned().collect()
    }

    /// The HTTP API, for `axum::serve`.
    pub fn router(&self) -> Router {
        let functions = FUNCTIONS;
        Router::new()
            .route(functions, get(list_functions))
            .route(&format!("{functions}/"), get(list_functions))
            .route(&format!("{functions}/{{name}}"), get(get_function))
            .route(
                &format!("{functions}/{{name}}/configuration"),
                get(get_configuration).put(update_configuration),
            )
            .route(&format!("{functions}/{{name}}/invocations"), post(invoke))
            .fallback(unknown_operation)
            // Oversized payloads are refused as Lambda refuses them, not cut off by the server.
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES * 2))
            .with_state(self.clone())
    }

    /// Serves the API on `listener` until `shutdown` completes, then stops every environment.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServiceError::Serve);
        self.stop_environments();
        result
    }

    /// Kills every idle environment (busy ones end with their invocation's task).
    pub fn stop_environments(&self) {
        for function in self.inner.functions.values() {
            let retired = std::mem::take(&mut lock(&function.state).idle);
            drop(retired);
        }
    }

    /// Idle and busy environments of `name`, if it exists.
    pub fn environments(&self, name: &str) -> Option<(usize, usize)> {
        let function = self.inner.functions.get(name)?;
        let state = lock(&function.state);
        Some((state.idle.len(), state.busy))
    }

    fn function(&self, raw: &str, qualifier: Option<&str>) -> Result<&Function, ApiError> {
        let (name, inline_qualifier) = parse_function_name(raw);
        let qualifier = qualifier.or(inline_qualifier);
        let function = self
            .inner
            .functions
            .get(name)
            .ok_or_else(|| ApiError::not_found(&emulator::function_arn(name)))?;
        match qualifier {
            None | Some("$LATEST") => Ok(function),
            Some(other) => Err(ApiError::not_found(&format!("{}:{other}", function.arn))),
        }
    }

    /// `GetFunctionConfiguration`.
    pub fn configuration(&self, name: &str) -> Result<Value, ApiError> {
        let function = self.function(name, None)?;
        let state = lock(&function.state);
        Ok(self.configuration_json(function, &state))
    }

    fn configuration_json(&self, function: &Function, state: &FunctionState) -> Value {
        let config = &state.config;
        let updating = state
            .updated_at
            .is_some_and(|at| at.elapsed() < self.inner.options.update_delay);
        let architecture = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            other => other,
        };
        let last_modified = humantime::format_rfc3339_millis(config.last_modified).to_string();
        json!({
            "FunctionName": function.name,
            "FunctionArn": function.arn,
            "Runtime": RUNTIME,
            "Role": format!("arn:aws:iam::{ACCOUNT_ID}:role/{}-emulated", function.name),
            "Handler": "bootstrap",
            "CodeSize": function.code_size,
            "Description": config.description,
            "Timeout": config.timeout.as_secs(),
            "MemorySize": config.memory_mb,
            // Lambda's format: 2026-12-01T17:00:00.000+0000.
            "LastModified": last_modified.trim_end_matches('Z').to_owned() + "+0000",
            "Version": "$LATEST",
            "Environment": {"Variables": config.environment},
            "TracingConfig": {"Mode": "Active"},
            "RevisionId": config.revision_id,
            "State": "Active",
            "LastUpdateStatus": if updating { "InProgress" } else { "Successful" },
            "PackageType": "Zip",
            "Architectures": [architecture],
            "EphemeralStorage": {"Size": 512},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", function.name)},
        })
    }

    /// `UpdateFunctionConfiguration`: Environment, MemorySize, Timeout, Description, with an
    /// optional RevisionId lock. Every environment retires: the next invocation is cold.
    pub fn update_configuration(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        let function = self.function(name, None)?;
        let body: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the request is not a JSON object: {e}")))?;
        let mut state = lock(&function.state);
        if state
            .updated_at
            .is_some_and(|at| at.elapsed() < self.inner.options.update_delay)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ResourceConflictException",
                format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {}",
                    function.arn
                ),
            ));
        }
        let mut config = state.config.clone();
        for (key, value) in &body {
            match key.as_str() {
                "Environment" => {
                    config.environment = parse_variables(value)?;
                    check_variables(&config.environment)?;
                }
                "MemorySize" => {
                    let mb = value.as_i64().ok_or_else(|| {
                        ApiError::invalid("MemorySize must be a number of megabytes")
                    })?;
                    check_memory(mb)?;
                    config.memory_mb = mb as u32;
                }
                "Timeout" => {
                    let seconds = value
                        .as_i64()
                        .ok_or_else(|| ApiError::invalid("Timeout must be a number of seconds"))?;
                    check_timeout(seconds)?;
                    config.timeout = Duration::from_secs(seconds as u64);
                }
                "Description" => {
                    config.description = value
                        .as_str()
                        .ok_or_else(|| ApiError::invalid("Description must be a string"))?
                        .to_owned();
                }
                "RevisionId" => {
                    if value.as_str() != Some(state.config.revision_id.as_str()) {
                        return Err(ApiError::new(
                            StatusCode::PRECONDITION_FAILED,
                            "PreconditionFailedException",
                            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                        ));
                    }
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "the Lambda emulator does not support changing {other} (only Environment, MemorySize, Timeout, Description)"
                    )));
                }
            }
        }
        config.revision_id = emulator::request_id();
        config.last_modified = SystemTime::now();
        state.config = config;
        state.generation += 1;
        state.updated_at = Some(Instant::now());
        let retired = std::mem::take(&mut state.idle);
        let answer = self.configuration_json(function, &state);
        drop(state);
        // Killed outside the lock; busy environments retire when their invocation ends.
        drop(retired);
        Ok(answer)
    }

    /// `Invoke` (RequestResponse): runs `payload` in an idle environment of `name`, or a new
    /// one (cold) if all are busy.
    pub async fn invoke(
        &self,
        name: &str,
        payload: &[u8],
        trace_header: Option<&str>,
    ) -> Result<InvokeResult, ApiError> {
        let function = self.function(name, None)?;
        let payload = check_payload(payload)?;
        self.run(function, &payload, trace_header, true).await
    }

    /// Runs one invocation. `complete_log`: wait for the function's last log lines (they may
    /// still be in its pipe when its answer arrives), for a log tail.
    async fn run(
        &self,
        function: &Function,
        payload: &[u8],
        incoming_trace: Option<&str>,
        complete_log: bool,
    ) -> Result<InvokeResult, ApiError> {
        let request_id = emulator::request_id();
        let trace = runtime_trace_header(incoming_trace);
        let echo = self.inner.options.echo_logs;
        let (environment, config) = self.checkout(function).await?;
        let say = |line: &str| {
            if echo {
                for part in line.lines() {
                    eprintln!("[{}] {part}", function.name);
                }
            }
        };
        let start_line = format!("START RequestId: {request_id} Version: $LATEST");
        say(&start_line);
        let mut environment = match environment {
            Ok(environment) => environment,
            Err(e) => {
                // The bootstrap could not even be started: Lambda's invalid entry point.
                self.checkin(function, None);
                let report = Report {
                    request_id: request_id.clone(),
                    duration: Duration::ZERO,
                    memory_mb: config.memory_mb,
                    max_memory_used_mb: None,
                    init: None,
                    status: Some(("error", Some("Runtime.InvalidEntrypoint".to_owned()))),
                    xray: xray_fields(&trace),
                };
                let error = error_payload(
                    "Runtime.InvalidEntrypoint",
                    &format!("RequestId: {request_id} Error: {e}"),
                );
                let log = format!(
                    "{start_line}\nEND RequestId: {request_id}\n{}\n",
                    report.line()
                );
                say(&format!("END RequestId: {request_id}\n{}", report.line()));
                return Ok(InvokeResult {
                    payload: error,
                    function_error: true,
                    log,
                    report,
                });
            }
        };
        let cold = environment.process.invocations() == 0;
        let mark = environment.process.log_mark();
        let started = Instant::now();
        let result = environment
            .process
            .invoke_as(&request_id, payload, Some(&trace), config.timeout)
            .await;
        let ended = Instant::now();
        // Duration is the invoke phase: from the event being handed over (for a cold start,
        // once init has finished and the runtime asked for it) to the answer.
        let handed_over = environment
            .process
            .first_request_at()
            .map_or(started, |first| first.max(started));
        let elapsed = ended.saturating_duration_since(handed_over);
        let max_memory_used_mb = environment.process.pid().and_then(peak_resident_mb);
        let init = if cold {
            environment.process.init_duration()
        } else {
            None
        };
        let mut extra_line = None;
        let (payload, function_error, duration, status) = match result {
            Ok(invocation) => match invocation.outcome {
                Outcome::Response(body) => (body, false, elapsed, None),
                Outcome::FunctionError {
                    error_type,
                    message,
                } => (error_payload(&error_type, &message), true, elapsed, None),
            },
            Err(EmulatorError::Timeout { after, .. }) => {
                let message = format!(
                    "{} {request_id} Task timed out after {:.2} seconds",
                    humantime::format_rfc3339_millis(SystemTime::now()),
                    after.as_secs_f64()
                );
                extra_line = Some(message);
                (
                    error_payload(
                        "Sandbox.Timedout",
                        &format!(
                            "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                            after.as_secs_f64()
                        ),
                    ),
                    true,
                    after,
                    Some(("timeout", None)),
                )
            }
            Err(e) => {
                let reason = match e {
                    EmulatorError::Exited { status, .. } => {
                        format!("Runtime exited with error: {status}")
                    }
                    _ => "Runtime exited without providing a reason".to_owned(),
                };
                (
                    error_payload(
                        "Runtime.ExitError",
                        &format!("RequestId: {request_id} Error: {reason}"),
                    ),
                    true,
                    elapsed,
                    Some(("error", Some("Runtime.ExitError".to_owned()))),
                )
            }
        };
        let report = Report {
            request_id: request_id.clone(),
            duration,
            memory_mb: config.memory_mb,
            max_memory_used_mb,
            init,
            status,
            xray: xray_fields(&trace),
        };
        if complete_log {
            // A millisecond at a time, while lines keep arriving (at most 10 ms).
            let mut seen = environment.process.log_mark();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = environment.process.log_mark();
                if now == seen {
                    break;
                }
                seen = now;
            }
        }
        let mut log = format!("{start_line}\n");
        for line in environment.process.logs_since(mark) {
            log.push_str(&line);
            log.push('\n');
        }
        let mut closing = String::new();
        if let Some(line) = extra_line {
            closing.push_str(&line);
            closing.push('\n');
        }
        closing.push_str(&format!("END RequestId: {request_id}\n{}\n", report.line()));
        say(closing.trim_end());
        log.push_str(&closing);
        let survived = report.status.is_none() && environment.process.pid().is_some();
        self.checkin(function, survived.then_some(environment));
        Ok(InvokeResult {
            payload,
            function_error,
            log,
            report,
        })
    }

    /// Takes an idle environment, or reserves a slot and starts a new one (cold start).
    /// The inner error is a start failure, reported as the function's error.
    async fn checkout(
        &self,
        function: &Function,
    ) -> Result<(Result<Environment, EmulatorError>, Config), ApiError> {
        let (spec, generation, config) = {
            let mut state = lock(&function.state);
            let config = state.config.clone();
            if let Some(environment) = state.idle.pop() {
                state.busy += 1;
                return Ok((Ok(environment), config));
            }
            if state.busy >= self.inner.options.max_environments {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    format!(
                        "Rate Exceeded. (the emulator runs at most {} environments per function; wikibot emulate --max-environments)",
                        self.inner.options.max_environments
                    ),
                ));
            }
            state.busy += 1;
            let mut spec = FunctionSpec::new(&function.bootstrap);
            spec.function_name = function.name.clone();
            spec.env = config
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            spec.memory_mb = config.memory_mb;
            spec.timeout = config.timeout;
            spec.echo_logs = self.inner.options.echo_logs;
            (spec, state.generation, config)
        };
        let started = RunningFunction::start(spec)
            .await
            .map(|process| Environment {
                process,
                generation,
            });
        Ok((started, config))
    }

    /// Returns an environment to the pool (unless it is gone or of an older configuration).
    fn checkin(&self, function: &Function, environment: Option<Environment>) {
        let retired = {
            let mut state = lock(&function.state);
            state.busy = state.busy.saturating_sub(1);
            match environment {
                Some(environment) if environment.generation == state.generation => {
                    state.idle.push(environment);
                    None
                }
                other => other,
            }
        };
        drop(retired);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `name`, `name:qualifier`, `123456789012:function:name[:qualifier]` or a full ARN.
fn parse_function_name(raw: &str) -> (&str, Option<&str>) {
    let tail = raw.rsplit_once("function:").map_or(raw, |(_, tail)| tail);
    match tail.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (tail, None),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "function name {name:?}: 1-64 letters, digits, '-' or '_'"
        )))
    }
}

fn check_memory(mb: i64) -> Result<(), ApiError> {
    if (128..=10240).contains(&mb) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "MemorySize must be between 128 and 10240 MB, got {mb}"
        )))
    }
}

fn check_timeout(seconds: i64) -> Result<(), ApiError> {
    if (1..=900).contains(&seconds) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Timeout must be between 1 and 900 seconds, got {seconds}"
        )))
    }
}

/// Lambda's rules: keys `[a-zA-Z][a-zA-Z0-9_]+`, none of the variables it sets itself.
fn check_variables(variables: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for key in variables.keys() {
        let mut chars = key.chars();
        let well_formed = key.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(ApiError::invalid(format!(
                "environment variable name {key:?} must match [a-zA-Z][a-zA-Z0-9_]+"
            )));
        }
    }
    let reserved: Vec<&str> = variables
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_VARIABLES.contains(k))
        .collect();
    if reserved.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )))
    }
}

fn parse_variables(environment: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let variables = match environment {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(fields) => fields.get("Variables").unwrap_or(&Value::Null),
        _ => {
            return Err(ApiError::invalid(
                "Environment must be an object {\"Variables\": {…}}",
            ));
        }
    };
    match variables {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::invalid(format!(
                    "environment variable {k} must be a string"
                ))),
            })
            .collect(),
        _ => Err(ApiError::invalid("Environment.Variables must be an object")),
    }
}

/// Lambda's checks before anything runs: the size limit, then JSON. No payload is `{}`.
fn check_payload(payload: &[u8]) -> Result<Vec<u8>, ApiError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!(
                "Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation"
            ),
        ));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(b"{}".to_vec());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {e}"),
        )
    })?;
    Ok(payload.to_vec())
}

fn error_payload(error_type: &str, message: &str) -> Vec<u8> {
    json!({ "errorType": error_type, "errorMessage": message })
        .to_string()
        .into_bytes()
}

/// The trace header the function gets: the caller's trace (`X-Amzn-Trace-Id`) if it sent
/// one, with a new segment id as parent; else a fresh sampled trace, as with active tracing.
fn runtime_trace_header(incoming: Option<&str>) -> String {
    let field = |name: &str| {
        incoming?
            .split(';')
            .find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    match field("Root") {
        Some(root) => format!(
            "Root={root};Parent={:016x};Sampled={}",
            fastrand::u64(..),
            field("Sampled").as_deref().unwrap_or("1")
        ),
        None => emulator::trace_header(true),
    }
}

fn xray_fields(header: &str) -> Option<(String, String, bool)> {
    let field = |name: &str| {
        header
            .split(';')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
    };
    Some((
        field("Root")?.to_owned(),
        field("Parent")?.to_owned(),
        field("Sampled") == Some("1"),
    ))
}

/// The process's peak resident set (`VmHWM`), in MB rounded up, as Max Memory Used.
fn peak_resident_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.div_ceil(1024))
}

/// The last `LOG_RESULT_BYTES` of `log` (cut at a character boundary), base64-encoded.
pub fn log_result(log: &str) -> String {
    let mut start = log.len().saturating_sub(LOG_RESULT_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&log.as_bytes()[start..])
}

// ---- HTTP ----

fn respond(status: StatusCode, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&emulator::request_id()) {
        map.insert("x-amzn-requestid", id);
    }
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "Type": "User", "Message": self.message, "message": self.message });
        respond(
            self.status,
            vec![("x-amzn-errortype", self.code.to_owned())],
            body.to_string().into_bytes(),
        )
    }
}

fn json_response(value: &Value) -> Response {
    respond(StatusCode::OK, Vec::new(), value.to_string().into_bytes())
}

async fn list_functions(State(service): State<LambdaService>) -> Response {
    let functions: Vec<Value> = service
        .inner
        .functions
        .values()
        .map(|function| service.configuration_json(function, &lock(&function.state)))
        .collect();
    json_response(&json!({ "Functions": functions }))
}

async fn get_function(
    State(service): State<LambdaService>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let configuration = service.configuration(&name)?;
    let function = service.function(&name, None)?;
    Ok(json_response(&json!({
        "Configuration": configuration,
        "Code": {"RepositoryType": "S3", "Location": format!("file://{}", function.bootstrap.display())},
    })))
}

async fn get_configuration(
    State(service): State<LambdaService>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    Ok(json_response(&service.configuration(&name)?))
}

async fn update_configuration(
    State(service): State<LambdaService>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    Ok(json_response(&service.update_configuration(&name, &body)?))
}

async fn invoke(
    State(service): State<LambdaService>,
    UrlPath(name): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let qualifier = uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "Qualifier")
            .map(|(_, v)| v.into_owned())
    });
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let invocation_type = match header("x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "InvocationType must be RequestResponse, Event or DryRun, got {other}"
            )));
        }
    };
    let tail = match header("x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "LogType must be None or Tail, got {other}"
            )));
        }
    };
    let trace = header("x-amzn-trace-id").map(str::to_owned);
    let function = service.function(&name, qualifier.as_deref())?;
    let payload = check_payload(&body)?;
    let executed = ("x-amz-executed-version", "$LATEST".to_owned());
    match invocation_type {
        InvocationType::DryRun => Ok(respond(StatusCode::NO_CONTENT, vec![], Vec::new())),
        InvocationType::Event => {
            let name = function.name.clone();
            let background = service.clone();
            tokio::spawn(async move {
                if let Ok(function) = background.function(&name, None) {
                    let _ = background
                        .run(function, &payload, trace.as_deref(), false)
                        .await;
                }
            });
            Ok(respond(StatusCode::ACCEPTED, vec![], Vec::new()))
        }
        InvocationType::RequestResponse => {
            let result = service
                .run(function, &payload, trace.as_deref(), tail)
                .await?;
            let mut headers = vec![executed];
            if tail {
                headers.push(("x-amz-log-result", log_result(&result.log)));
            }
            if result.function_error {
                headers.push(("x-amz-function-error", "Unhandled".to_owned()));
            }
            Ok(respond(StatusCode::OK, headers, result.payload))
        }
    }
}

async fn unknown_operation(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!(
            "the Lambda emulator serves Invoke, GetFunction, GetFunctionConfiguration, UpdateFunctionConfiguration and ListFunctions; not {}",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_may_be_arns_and_carry_qualifiers() {
        assert_eq!(parse_function_name("git-probe"), ("git-probe", None));
        assert_eq!(
            parse_function_name("git-probe:$LATEST"),
            ("git-probe", Some("$LATEST"))
        );
        assert_eq!(
            parse_function_name("arn:aws:lambda:us-east-1:000000000000:function:git-probe"),
            ("git-probe", None)
        );
        assert_eq!(
            parse_function_name("000000000000:function:git-probe:7"),
            ("git-probe", Some("7"))
        );
    }

    #[test]
    fn report_lines_have_lambdas_fields() {
        let mut report = Report {
            request_id: "r-1".into(),
            duration: Duration::from_micros(12_345),
            memory_mb: 512,
            max_memory_used_mb: Some(20),
            init: Some(Duration::from_micros(101_500)),
            status: None,
            xray: Some(("1-abc-def".into(), "0123456789abcdef".into(), true)),
        };
        assert_eq!(report.billed_ms(), 114);
        assert_eq!(
            report.line(),
            "REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 114 ms\tMemory Size: 512 MB\tMax Memory Used: 20 MB\tInit Duration: 101.50 ms\t\nXRAY TraceId: 1-abc-def\tSegmentId: 0123456789abcdef\tSampled: true"
        );
        report.init = None;
        report.xray = None;
        report.status = Some(("timeout", None));
        assert_eq!(
            report.line(),
            "REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\tMax Memory Used: 20 MB\tStatus: timeout"
        );
    }

    #[test]
    fn the_log_result_is_the_last_4_kb_on_a_character_boundary() {
        let log = format!("{}END\n", "é".repeat(3000));
        let tail = base64::engine::general_purpose::STANDARD
            .decode(log_result(&log))
            .unwrap();
        let tail = String::from_utf8(tail).unwrap();
        assert!(tail.len() <= LOG_RESULT_BYTES && tail.len() >= LOG_RESULT_BYTES - 1);
        assert!(tail.ends_with("END\n"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(log_result("short"))
                .unwrap(),
            b"short"
        );
    }

    #[test]
    fn variables_follow_lambdas_rules() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(check_variables(&vars(&[("WIKIBOT_ROOT", "/x")])).is_ok());
        let reserved = check_variables(&vars(&[("AWS_REGION", "x")])).unwrap_err();
        assert!(reserved.message.contains("AWS_REGION"), "{reserved}");
        assert!(check_variables(&vars(&[("1X", "x")])).is_err());
        assert!(check_variables(&vars(&[("A-B", "x")])).is_err());
    }

    #[test]
    fn payloads_are_checked_like_lambda() {
        assert_eq!(check_payload(b"").unwrap(), b"{}");
        assert_eq!(check_payload(b"nope").unwrap_err().status, 400);
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            check_payload(&big).unwrap_err().code,
            "RequestTooLargeException"
        );
    }

    #[test]
    fn a_callers_trace_is_continued() {
        let header =
            runtime_trace_header(Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"));
        let (root, parent, sampled) = xray_fields(&header).unwrap();
        assert_eq!(root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(parent.len(), 16);
        assert!(!sampled);
        let fresh = xray_fields(&runtime_trace_header(None)).unwrap();
        assert!(fresh.2);
    }
}

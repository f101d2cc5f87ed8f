//! `wikibot bench lambda`: the Phase 0 benchmark (P0-5) of the deployed functions, through
//! the Lambda service's own API on the AWS SDK for Rust, so that it runs unchanged against
//! AWS and against `wikibot emulate`. Against `git-probe`: warm reads and writes, cold starts
//! forced by a configuration change, concurrent reads, rounds of concurrent writers whose
//! commits are then looked up in the wiki's history; against `efs-probe`: warm and cold
//! invocations. Each invocation records the client's wall time, the REPORT line's Duration
//! and Init Duration (`LogType: Tail`) and the function's own `timings_ms`; [`report`] turns
//! them into tables, verdicts per exit criterion, a Mermaid chart and an SVG.
//!
//! It must not change a function beyond one marker environment variable, which it removes
//! again before it returns, and it writes only `Bench/…` pages and the report page. A verdict
//! is the benchmark's output, never an error: it fails only when it cannot measure.

pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, LogType};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

pub use aws_sdk_lambda as sdk;

use crate::bench::Summary;

/// The variable whose change forces a cold start; removed again at the end.
pub const COLD_START_VARIABLE: &str = "WIKIBOT_BENCH_COLD_START";
/// The page warm reads read.
pub const READ_PAGE: &str = "Bench/Read";
/// How long to wait for a configuration update to finish.
const UPDATE_WAIT: Duration = Duration::from_secs(180);

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Lambda API endpoint (`wikibot emulate`'s); `None`: AWS, from the standard chain.
    pub endpoint_url: Option<String>,
    pub function: String,
    /// `None`: efs-probe is not measured.
    pub efs_function: Option<String>,
    pub wiki: String,
    pub warm: usize,
    pub cold: usize,
    pub concurrent_reads: usize,
    /// Rounds of concurrent writers, e.g. `[5, 15]`.
    pub writers: Vec<usize>,
    /// The git commit of the build being measured, for the report.
    pub commit: String,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LambdaBenchError {
    #[error("{operation} {function}: {message}")]
    Api {
        operation: &'static str,
        function: String,
        message: String,
    },
    #[error("{function} failed to {step}: {message}")]
    Setup {
        function: String,
        step: &'static str,
        message: String,
    },
    #[error("writing the report page: {0}")]
    Report(String),
    #[error("drawing the chart {path}: {message}")]
    Chart { path: String, message: String },
    #[error("{0}")]
    Options(String),
}

fn api_error(
    operation: &'static str,
    function: &str,
    e: impl std::error::Error,
) -> LambdaBenchError {
    LambdaBenchError::Api {
        operation,
        function: function.to_owned(),
        message: DisplayErrorContext(e).to_string(),
    }
}

/// One invocation as the benchmark saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Position among the benchmark's sequential invocations (the chart's x), if sequential.
    pub n: Option<usize>,
    pub client_ms: f64,
    pub duration_ms: Option<f64>,
    pub billed_ms: Option<f64>,
    pub init_ms: Option<f64>,
    pub max_memory_mb: Option<f64>,
    /// The function's own `timings_ms`.
    pub steps_ms: BTreeMap<String, f64>,
    pub instance_id: Option<String>,
    pub error: Option<String>,
    /// For writes: the commit the function reported.
    pub revision: Option<String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A set of like invocations and the order statistics of each metric.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub key: String,
    pub label: String,
    pub function: String,
    pub samples: Vec<Sample>,
    /// `client`, `duration`, `init`, `step <name>` → summary (successful samples only).
    pub summaries: BTreeMap<String, Summary>,
    pub errors: usize,
    /// Distinct execution environments (`instance_id`) that served it.
    pub environments: usize,
    /// Wall time from the first request sent to the last answer.
    pub elapsed_ms: f64,
    /// For rounds of writers: how many of the written commits the history lists.
    pub commits_found: Option<usize>,
}

impl Measurement {
    fn new(
        key: &str,
        label: String,
        function: &str,
        samples: Vec<Sample>,
        elapsed: Duration,
    ) -> Self {
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok()).collect();
        let durations = |values: Vec<f64>| -> Option<Summary> {
            let as_durations: Vec<Duration> = values
                .into_iter()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                .collect();
            Summary::of(&as_durations)
        };
        let mut summaries = BTreeMap::new();
        let mut put = |name: String, summary: Option<Summary>| {
            if let Some(summary) = summary {
                summaries.insert(name, summary);
            }
        };
        put(
            "client".into(),
            durations(ok.iter().map(|s| s.client_ms).collect()),
        );
        put(
            "duration".into(),
            durations(ok.iter().filter_map(|s| s.duration_ms).collect()),
        );
        put(
            "init".into(),
            durations(ok.iter().filter_map(|s| s.init_ms).collect()),
        );
        let steps: BTreeSet<&String> = ok.iter().flat_map(|s| s.steps_ms.keys()).collect();
        for step in steps {
            put(
                format!("step {step}"),
                durations(
                    ok.iter()
                        .filter_map(|s| s.steps_ms.get(step).copied())
                        .collect(),
                ),
            );
        }
        let environments = samples
            .iter()
            .filter_map(|s| s.instance_id.as_deref())
            .collect::<BTreeSet<_>>()
            .len();
        Self {
            key: key.to_owned(),
            label,
            function: function.to_owned(),
            errors: samples.len() - ok.len(),
            samples,
            summaries,
            environments,
            elapsed_ms: crate::lambda::millis(elapsed),
            commits_found: None,
        }
    }
}

/// A function's configuration, as reported by `GetFunctionConfiguration`.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub arn: String,
    pub runtime: String,
    pub architecture: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    /// The deployment package's size (the zip on AWS; the bootstrap under the emulator).
    pub code_size: i64,
    pub code_sha256: Option<String>,
    pub last_modified: Option<String>,
}

/// Where and what was measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchEnvironment {
    pub endpoint: String,
    pub emulated: bool,
    pub region: String,
    pub wiki: String,
    pub commit: String,
    pub started_at: String,
    pub functions: Vec<FunctionInfo>,
}

/// An exit criterion and how this run fared.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub criterion: String,
    pub measured: String,
    pub pass: bool,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct LambdaReport {
    pub environment: BenchEnvironment,
    pub measurements: Vec<Measurement>,
    pub verdicts: Vec<Verdict>,
}

impl LambdaReport {
    pub fn measurement(&self, key: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.key == key)
    }
}

/// A Lambda client: `endpoint_url` overrides the endpoint. Region and credentials come from
/// the standard chain, except for a loopback endpoint (the emulator, which checks no
/// signature): there the region defaults to us-east-1 and the credentials are fixed dummies,
/// so no real credentials are looked up or needed.
pub async fn client(endpoint_url: Option<&str>) -> Client {
    // The SDK's HTTPS client on rustls with ring, as every other client here (src/tls.rs):
    // the SDK's default client would bring aws-lc-rs back into the build.
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
        if is_loopback_url(url) {
            // Nothing is looked up (the default chains would ask the instance metadata
            // service): AWS_REGION if set, else the emulator's region.
            let region = std::env::var("AWS_REGION")
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| crate::lambda::emulator::REGION.to_owned());
            loader = loader
                .region(aws_config::Region::new(region))
                .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    "emulator",
                    "emulator",
                    None,
                    None,
                    "wikibot-emulator",
                ));
        }
    }
    Client::new(&loader.load().await)
}

fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

/// One Invoke with `LogType: Tail`, and what came back.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub sample: Sample,
    /// The payload as JSON (`Null` if there was none or it was not JSON).
    pub response: Value,
    /// The decoded log tail.
    pub log: String,
}

/// Invokes `function` with `event`, timing it and reading its REPORT line. Never fails:
/// every failure (API, function, probe) is recorded in the sample's `error`.
pub async fn invoke(client: &Client, function: &str, event: &Value) -> Invoked {
    let sent = Instant::now();
    let result = client
        .invoke()
        .function_name(function)
        .log_type(LogType::Tail)
        .payload(Blob::new(event.to_string().into_bytes()))
        .send()
        .await;
    let client_ms = crate::lambda::millis(sent.elapsed());
    let mut sample = Sample {
        n: None,
        client_ms,
        duration_ms: None,
        billed_ms: None,
        init_ms: None,
        max_memory_mb: None,
        steps_ms: BTreeMap::new(),
        instance_id: None,
        error: None,
        revision: None,
    };
    let output = match result {
        Ok(output) => output,
        Err(e) => {
            sample.error = Some(format!("Invoke: {}", DisplayErrorContext(e)));
            return Invoked {
                sample,
                response: Value::Null,
                log: String::new(),
            };
        }
    };
    let log = output
        .log_result()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    if let Some(report) = parse_report(&log) {
        sample.duration_ms = report.get("Duration").copied();
        sample.billed_ms = report.get("Billed Duration").copied();
        sample.init_ms = report.get("Init Duration").copied();
        sample.max_memory_mb = report.get("Max Memory Used").copied();
    }
    let response: Value = output
        .payload()
        .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
        .unwrap_or(Value::Null);
    if let Some(steps) = response.get("timings_ms").and_then(Value::as_object) {
        sample.steps_ms = steps
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
    }
    sample.instance_id = response
        .get("instance_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    sample.revision = response
        .pointer("/result/revision")
        .and_then(Value::as_str)
        .map(str::to_owned);
    sample.error = if let Some(kind) = output.function_error() {
        Some(format!(
            "function error ({kind}): {} {}",
            response
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or(""),
            response
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or("")
        ))
    } else if let Some(error) = response.get("error") {
        Some(format!(
            "{}: {}",
            error.get("kind").and_then(Value::as_str).unwrap_or("error"),
            error.get("message").and_then(Value::as_str).unwrap_or("")
        ))
    } else if response.get("ok") == Some(&Value::Bool(false)) {
        Some("the probe reported ok: false".to_owned())
    } else if response.is_null() {
        Some("the response is not JSON".to_owned())
    } else {
        None
    };
    Invoked {
        sample,
        response,
        log,
    }
}

/// The numbers of the REPORT line in a log tail: `Duration`, `Billed Duration`, `Memory
/// Size`, `Max Memory Used`, `Init Duration` → value (ms or MB).
pub fn parse_report(log: &str) -> Option<HashMap<String, f64>> {
    let line = log.lines().rev().find(|l| l.starts_with("REPORT "))?;
    let fields = line
        .split('\t')
        .filter_map(|field| {
            let (key, value) = field.split_once(':')?;
            let number = value.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((key.trim().to_owned(), number))
        })
        .collect();
    Some(fields)
}

/// Runs the whole benchmark.
pub async fn run(options: &Options) -> Result<LambdaReport, LambdaBenchError> {
    if options.warm == 0 {
        return Err(LambdaBenchError::Options(
            "--warm must be at least 1".into(),
        ));
    }
    let client = client(options.endpoint_url.as_deref()).await;
    let bench = Bench::new(client, options);
    bench.run().await
}

struct Bench<'a> {
    client: Client,
    options: &'a Options,
    progress: indicatif::ProgressBar,
    sequence: std::sync::atomic::AtomicUsize,
    run_id: String,
}

impl<'a> Bench<'a> {
    fn new(client: Client, options: &'a Options) -> Self {
        let efs = options.efs_function.is_some();
        let per_function = 1 + options.warm + options.cold;
        // init, the seed write, then per function a warm-up, the warm and the cold
        // invocations; git-probe's warm writes; the concurrent rounds and their histories.
        let total = 2
            + per_function
            + options.warm
            + if efs { per_function } else { 0 }
            + options.concurrent_reads
            + options.writers.iter().map(|w| w + 1).sum::<usize>();
        let progress = if options.progress {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} ({eta}) {msg}")
        {
            progress.set_style(style);
        }
        Self {
            client,
            options,
            progress,
            sequence: std::sync::atomic::AtomicUsize::new(0),
            run_id: format!(
                "{}-{:04x}",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                fastrand::u16(..)
            ),
        }
    }

    async fn run(&self) -> Result<LambdaReport, LambdaBenchError> {
        let options = self.options;
        let git = options.function.as_str();
        let mut functions = vec![self.function_info(git).await?];
        if let Some(efs) = &options.efs_function {
            functions.push(self.function_info(efs).await?);
        }
        let environment = BenchEnvironment {
            endpoint: options
                .endpoint_url
                .clone()
                .unwrap_or_else(|| "AWS (the SDK's default endpoint)".to_owned()),
            emulated: functions[0]
                .arn
                .contains(&format!(":{}:", crate::lambda::emulator::ACCOUNT_ID)),
            region: self
                .client
                .config()
                .region()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string),
            wiki: options.wiki.clone(),
            commit: options.commit.clone(),
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            functions,
        };

        self.progress.set_message("setting up the wiki");
        self.must(
            git,
            "create the wiki",
            json!({"op": "init", "repo": options.wiki}),
        )
        .await?;
        self.must(
            git,
            "write the page warm reads read",
            self.write_event(
                READ_PAGE,
                "# Read by the benchmark\n\nWarm reads read this page.\n",
                "seed",
            ),
        )
        .await?;
        let read = json!({"op": "read", "repo": options.wiki, "page": READ_PAGE});
        self.must(git, "read (warm-up)", read.clone()).await?;

        let mut measurements = Vec::new();
        self.progress.set_message("warm reads");
        measurements.push(
            self.sequential("warm_read", "warm read".into(), git, |_| read.clone())
                .await,
        );
        self.progress.set_message("warm writes");
        measurements.push(
            self.sequential("warm_write", "warm write".into(), git, |i| {
                self.write_event(
                    "Bench/Warm write",
                    &format!("# Warm write\n\nWrite {i} of run {}.\n", self.run_id),
                    &format!("warm write {i}"),
                )
            })
            .await,
        );
        if options.cold > 0 {
            self.progress.set_message("cold starts");
            measurements.push(self.cold_starts("cold_start", git, &read).await?);
        }
        if let Some(efs) = &options.efs_function {
            let event = json!({"file": "bench-lambda.txt"});
            self.progress.set_message("efs-probe");
            self.must(efs, "write and read a file (warm-up)", event.clone())
                .await?;
            measurements.push(
                self.sequential("efs_warm", format!("{efs} warm"), efs, |_| event.clone())
                    .await,
            );
            if options.cold > 0 {
                measurements.push(self.cold_starts("efs_cold", efs, &event).await?);
            }
        }
        if options.concurrent_reads > 0 {
            self.progress.set_message("concurrent reads");
            let n = options.concurrent_reads;
            measurements.push(
                self.concurrent(
                    "concurrent_reads",
                    format!("{n} concurrent reads"),
                    git,
                    (0..n).map(|_| read.clone()).collect(),
                )
                .await,
            );
        }
        for &writers in &options.writers {
            self.progress
                .set_message(format!("{writers} concurrent writers"));
            let events = (1..=writers)
                .map(|k| {
                    self.write_event(
                        &format!("Bench/Writer {k:02}"),
                        &format!("# Writer {k}\n\nRound of {writers}, run {}.\n", self.run_id),
                        &format!("writer {k} of {writers}"),
                    )
                })
                .collect();
            let mut round = self
                .concurrent(
                    &format!("writers_{writers}"),
                    format!("{writers} concurrent writers"),
                    git,
                    events,
                )
                .await;
            let revisions: BTreeSet<String> = round
                .samples
                .iter()
                .filter_map(|s| s.revision.clone())
                .collect();
            // Counted in the progress bar by `must`, one step per page of history.
            round.commits_found = Some(self.commits_in_history(git, &revisions).await?);
            measurements.push(round);
        }
        self.progress.finish_and_clear();
        let verdicts = report::verdicts(options, &measurements);
        Ok(LambdaReport {
            environment,
            measurements,
            verdicts,
        })
    }

    fn write_event(&self, page: &str, content: &str, what: &str) -> Value {
        json!({
            "op": "write", "repo": self.options.wiki, "page": page, "content": content,
            "author": {"name": "wikibot bench", "email": "bench@wikibot.invalid"},
            "message": format!("bench lambda {}: {what}", self.run_id),
        })
    }

    async fn function_info(&self, function: &str) -> Result<FunctionInfo, LambdaBenchError> {
        let config = self
            .client
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| api_error("GetFunctionConfiguration", function, e))?;
        Ok(FunctionInfo {
            name: config.function_name().unwrap_or(function).to_owned(),
            arn: config.function_arn().unwrap_or_default().to_owned(),
            runtime: config
                .runtime()
                .map_or_else(|| "unknown".to_owned(), |r| r.as_str().to_owned()),
            architecture: config
                .architectures()
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            memory_mb: config.memory_size().unwrap_or_default(),
            timeout_s: config.timeout().unwrap_or_default(),
            code_size: config.code_size(),
            code_sha256: config.code_sha256().map(str::to_owned),
            last_modified: config.last_modified().map(str::to_owned),
        })
    }

    /// An invocation that must succeed for the benchmark to go on.
    async fn must(
        &self,
        function: &str,
        step: &'static str,
        event: Value,
    ) -> Result<Invoked, LambdaBenchError> {
        let invoked = invoke(&self.client, function, &event).await;
        self.progress.inc(1);
        match &invoked.sample.error {
            None => Ok(invoked),
            Some(message) => Err(LambdaBenchError::Setup {
                function: function.to_owned(),
                step,
                message: message.clone(),
            }),
        }
    }

    fn next_n(&self) -> usize {
        self.sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    async fn sequential(
        &self,
        key: &str,
        label: String,
        function: &str,
        event: impl Fn(usize) -> Value,
    ) -> Measurement {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(self.options.warm);
        for i in 1..=self.options.warm {
            let mut invoked = invoke(&self.client, function, &event(i)).await;
            invoked.sample.n = Some(self.next_n());
            samples.push(invoked.sample);
            self.progress.inc(1);
        }
        Measurement::new(key, label, function, samples, started.elapsed())
    }

    /// `cold` invocations, each after a configuration change has retired every environment
    /// (and the update has finished); the function's variables are restored at the end.
    async fn cold_starts(
        &self,
        key: &str,
        function: &str,
        event: &Value,
    ) -> Result<Measurement, LambdaBenchError> {
        let original = self
            .client
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| api_error("GetFunctionConfiguration", function, e))?;
        let mut variables: HashMap<String, String> = original
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        // An interrupted earlier run may have left its marker: restoring removes it too.
        variables.remove(COLD_START_VARIABLE);
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut outcome = Ok(());
        for i in 1..=self.options.cold {
            let mut marked = variables.clone();
            marked.insert(
                COLD_START_VARIABLE.to_owned(),
                format!("{}-{i}", self.run_id),
            );
            if let Err(e) = self.set_variables(function, marked).await {
                outcome = Err(e);
                break;
            }
            let mut invoked = invoke(&self.client, function, event).await;
            invoked.sample.n = Some(self.next_n());
            if invoked.sample.ok() && invoked.sample.init_ms.is_none() {
                invoked.sample.error =
                    Some("not a cold start: the REPORT line has no Init Duration".to_owned());
            }
            samples.push(invoked.sample);
            self.progress.inc(1);
        }
        let elapsed = started.elapsed();
        // Put the configuration back whatever happened.
        let restored = self.set_variables(function, variables).await;
        outcome?;
        restored?;
        Ok(Measurement::new(
            key,
            format!("{function} cold start"),
            function,
            samples,
            elapsed,
        ))
    }

    async fn set_variables(
        &self,
        function: &str,
        variables: HashMap<String, String>,
    ) -> Result<(), LambdaBenchError> {
        self.client
            .update_function_configuration()
            .function_name(function)
            .environment(
                Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("UpdateFunctionConfiguration", function, e))?;
        self.client
            .wait_until_function_updated_v2()
            .function_name(function)
            .wait(UPDATE_WAIT)
            .await
            .map_err(|e| api_error("waiting for the update of", function, e))?;
        Ok(())
    }

    /// All `events` at once, each in its own task, released together.
    async fn concurrent(
        &self,
        key: &str,
        label: String,
        function: &str,
        events: Vec<Value>,
    ) -> Measurement {
        let barrier = Arc::new(tokio::sync::Barrier::new(events.len()));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, event) in events.into_iter().enumerate() {
            let client = self.client.clone();
            let function = function.to_owned();
            let barrier = Arc::clone(&barrier);
            tasks.spawn(async move {
                barrier.wait().await;
                (i, invoke(&client, &function, &event).await.sample)
            });
        }
        let mut samples = Vec::new();
        while let Some(done) = tasks.join_next().await {
            self.progress.inc(1);
            match done {
                Ok(sample) => samples.push(sample),
                Err(e) => samples.push((
                    usize::MAX,
                    Sample {
                        n: None,
                        client_ms: 0.0,
                        duration_ms: None,
                        billed_ms: None,
                        init_ms: None,
                        max_memory_mb: None,
                        steps_ms: BTreeMap::new(),
                        instance_id: None,
                        error: Some(format!("the invoking task failed: {e}")),
                        revision: None,
                    },
                )),
            }
        }
        samples.sort_by_key(|(i, _)| *i);
        let samples = samples.into_iter().map(|(_, s)| s).collect();
        Measurement::new(key, label, function, samples, started.elapsed())
    }

    /// How many of `revisions` the wiki's history lists (`history` events, with cursors).
    async fn commits_in_history(
        &self,
        function: &str,
        revisions: &BTreeSet<String>,
    ) -> Result<usize, LambdaBenchError> {
        let mut found = BTreeSet::new();
        let mut cursor: Option<String> = None;
        // Concurrent writers land on top of each other: they are among the newest commits.
        for _ in 0..20 {
            let mut event = json!({"op": "history", "repo": self.options.wiki, "limit": 200});
            if let Some(cursor) = &cursor {
                event["cursor"] = json!(cursor);
            }
            let invoked = self.must(function, "list the history", event).await?;
            let commits = invoked
                .response
                .pointer("/result/commits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for commit in &commits {
                if let Some(id) = commit.get("id").and_then(Value::as_str)
                    && revisions.contains(id)
                {
                    found.insert(id.to_owned());
                }
            }
            cursor = invoked
                .response
                .pointer("/result/next_cursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if found.len() == revisions.len() || cursor.is_none() {
                break;
            }
        }
        Ok(found.len())
    }
}

/// Writes `content` as `page` through the git-probe function (a write event: it lands on the
/// file system the function mounts). Returns the new revision.
pub async fn write_page_through_function(
    client: &Client,
    function: &str,
    wiki: &str,
    page: &str,
    content: &str,
) -> Result<String, LambdaBenchError> {
    let event = json!({
        "op": "write", "repo": wiki, "page": page, "content": content,
        "author": {"name": "wikibot bench", "email": "bench@wikibot.invalid"},
        "message": "bench lambda: benchmark report",
    });
    let invoked = invoke(client, function, &event).await;
    match (invoked.sample.error, invoked.sample.revision) {
        (None, Some(revision)) => Ok(revision),
        (Some(error), _) => Err(LambdaBenchError::Report(error)),
        (None, None) => Err(LambdaBenchError::Report(format!(
            "{function} answered without a revision: {}",
            invoked.response
        ))),
    }
}

/// Writes `content` as `page` through an MCP endpoint (`read_note` for the current
/// revision, then `write_note`). Returns the tool's answer.
pub async fn write_page_through_mcp(
    url: &str,
    token: Option<&str>,
    page: &str,
    content: &str,
) -> Result<String, LambdaBenchError> {
    let http = crate::tls::client_builder()
        .build()
        .map_err(|e| LambdaBenchError::Report(format!("an HTTPS client: {e}")))?;
    let call = |id: u32, tool: &str, arguments: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": tool, "arguments": arguments}});
        let mut request = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| LambdaBenchError::Report(format!("{url}: {e}")))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| LambdaBenchError::Report(format!("{url}: {e}")))?;
            if !status.is_success() {
                return Err(LambdaBenchError::Report(format!(
                    "{url} answered {status}: {text}"
                )));
            }
            // A JSON body, or one server-sent event carrying it.
            let json = text
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .unwrap_or(&text)
                .trim()
                .to_owned();
            let value: Value = serde_json::from_str(&json)
                .map_err(|e| LambdaBenchError::Report(format!("{url}: not JSON-RPC ({e})")))?;
            let text = value
                .pointer("/result/content/0/text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let is_error = value.get("error").is_some()
                || value.pointer("/result/isError") == Some(&Value::Bool(true));
            Ok::<_, LambdaBenchError>((is_error, text, value))
        }
    };
    let (missing, current, _) = call(1, "read_note", json!({"path": page})).await?;
    let revision = (!missing)
        .then(|| {
            current
                .lines()
                .find_map(|l| l.strip_prefix("Revision: "))
                .map(str::to_owned)
        })
        .flatten();
    let mut arguments = json!({"path": page, "content": content,
                               "commit_message": "bench lambda: benchmark report"});
    if let Some(revision) = revision {
        arguments["revision"] = json!(revision);
    }
    let (failed, answer, raw) = call(2, "write_note", arguments).await?;
    if failed {
        return Err(LambdaBenchError::Report(format!(
            "write_note: {answer} {raw}"
        )));
    }
    Ok(answer)
}

/// The git commit of the working tree the benchmark runs from (`-dirty` with local changes),
/// or `unknown`.
pub fn current_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_with_tabs_or_spaces() {
        let log = "START RequestId: x Version: $LATEST\nhello\nEND RequestId: x\nREPORT RequestId: x\tDuration: 12.34 ms\tBilled Duration: 114 ms\tMemory Size: 512 MB\tMax Memory Used: 20 MB\tInit Duration: 101.50 ms\t\nXRAY TraceId: 1-a-b\tSegmentId: c\tSampled: true\n";
        let report = parse_report(log).unwrap();
        assert_eq!(report["Duration"], 12.34);
        assert_eq!(report["Billed Duration"], 114.0);
        assert_eq!(report["Memory Size"], 512.0);
        assert_eq!(report["Max Memory Used"], 20.0);
        assert_eq!(report["Init Duration"], 101.5);
        let warm = parse_report("REPORT RequestId: y\tDuration: 1.00 ms\t").unwrap();
        assert!(!warm.contains_key("Init Duration"));
        assert!(parse_report("no report").is_none());
    }

    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:9001"));
        assert!(is_loopback_url("http://localhost:9001/"));
        assert!(is_loopback_url("http://[::1]:9001"));
        assert!(!is_loopback_url("https://lambda.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("not a url"));
    }
}

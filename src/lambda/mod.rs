//! What the Lambda binaries share: the execution environment's identity (instance id, cold
//! start), running a JSON handler under the Runtime API, the local [`emulator`] of that API
//! which runs compiled bootstraps as Lambda does, and the local [`service`] that serves them
//! by name over the Lambda service's own API (Invoke, configuration); [`xray`] exports an
//! invocation's spans as X-Ray subsegments.
//!
//! This module must not contain handler logic (that lives in [`crate::probes`]) and must not
//! keep per-request state between invocations beyond the counters here.

pub mod emulator;
pub mod service;
pub mod xray;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// The identity of this execution environment (one process): Lambda reuses it for warm
/// invocations and starts a new one for a cold start.
#[derive(Debug)]
pub struct Instance {
    id: String,
    invocations: AtomicU64,
}

/// Where an invocation falls in its environment's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationInfo {
    /// First invocation in this process: it paid for the process start and init.
    pub cold_start: bool,
    /// 1-based invocation count within this process.
    pub number: u64,
}

impl Instance {
    pub fn new() -> Self {
        Self {
            id: format!("{:016x}", fastrand::u64(..)),
            invocations: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records the start of an invocation.
    pub fn next_invocation(&self) -> InvocationInfo {
        let number = self.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        InvocationInfo {
            cold_start: number == 1,
            number,
        }
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds with microsecond resolution, for timing fields in responses.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Logs for CloudWatch, filtered by [`log_filter`], JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`,
/// no colour codes and no timestamps (CloudWatch adds them).
pub fn init_logging() {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = log_filter(lambda_level.as_deref(), rust_log.as_deref()).and(never_log_events());
    let layer = fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .fmt_fields(escaping_fields());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(xray::XrayLayer::from_env());
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json {
        registry.with(layer.json().with_filter(filter)).try_init()
    } else {
        registry.with(layer.with_filter(filter)).try_init()
    };
}

/// The functions' log filter: `RUST_LOG`'s `target=level` directives (`wikibot=debug,rmcp=warn`)
/// over a level for every other target: `AWS_LAMBDA_LOG_LEVEL` (Lambda's application log
/// level; its `FATAL` is ERROR here), else a bare level in `RUST_LOG`, else INFO. A `RUST_LOG`
/// that does not parse is ignored. This is tracing-subscriber's `Targets`, not its
/// `EnvFilter`: the regex engines behind `EnvFilter`'s span and field directives weigh about
/// 220 KiB in the mcp-server binary, against its 3 MB zip budget (decision 0004).
pub fn log_filter(
    lambda_level: Option<&str>,
    rust_log: Option<&str>,
) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let directives = rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_default();
    let lambda_level = lambda_level.and_then(|level| {
        if level.trim().eq_ignore_ascii_case("fatal") {
            Some(LevelFilter::ERROR)
        } else {
            level.trim().parse::<LevelFilter>().ok()
        }
    });
    let level = lambda_level
        .or(directives.default_level())
        .unwrap_or(LevelFilter::INFO);
    directives.with_default(level)
}

/// Text log fields with every control character escaped (`\n`, `\u{1b}`, …): nothing a
/// caller sends (a header, a page name, a token's `alg`) can start a forged log line or
/// colour a terminal. JSON logs escape by themselves.
pub fn escaping_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = escape_controls(&format!("{value:?}"));
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{}={text}", field.name())
        }
    })
    .delimited(" ")
}

/// `text` with control characters written as Rust escapes.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Lambda runtime crates log whole events at DEBUG/TRACE, `Authorization` headers
/// included. This cap applies whatever the environment asks for: tokens never reach the logs.
pub fn never_log_events() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("lambda_runtime", LevelFilter::INFO)
        .with_target("lambda_runtime_api_client", LevelFilter::INFO)
        .with_target("lambda_http", LevelFilter::INFO)
}

/// Runs `handler` as this process's Lambda function: JSON in, JSON out, one event at a time,
/// each in its handler span (traced to X-Ray when Lambda samples it, see [`xray`]). The
/// handler reports failures inside its JSON, so the runtime never sees an error.
pub fn run_json_handler<F>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Value + Send + Sync + 'static,
{
    init_logging();
    let handler = Arc::new(handler);
    let invocations = Arc::new(AtomicU64::new(0));
    // One event at a time: a single-threaded runtime starts faster and needs nothing more.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Value>| {
            let handler = Arc::clone(&handler);
            let cold_start = invocations.fetch_add(1, Ordering::Relaxed) == 0;
            async move {
                let span =
                    xray::invocation_span(event.context.xray_trace_id.as_deref(), cold_start);
                let response = span.in_scope(|| handler(event.payload));
                xray::finish(&span);
                Ok::<Value, Infallible>(response)
            }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_invocation_is_cold() {
        let instance = Instance::new();
        assert_eq!(instance.id().len(), 16);
        let first = instance.next_invocation();
        let second = instance.next_invocation();
        assert!(first.cold_start && !second.cold_start);
        assert_eq!((first.number, second.number), (1, 2));
        assert_ne!(Instance::new().id(), instance.id());
    }

    #[test]
    fn runtime_crates_never_log_below_info() {
        let cap = never_log_events();
        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_http::request",
            "lambda_runtime_api_client",
        ] {
            assert!(
                !cap.would_enable(target, &tracing::Level::TRACE),
                "{target}"
            );
            assert!(
                !cap.would_enable(target, &tracing::Level::DEBUG),
                "{target}"
            );
            assert!(cap.would_enable(target, &tracing::Level::INFO), "{target}");
        }
        assert!(cap.would_enable("wikibot::store", &tracing::Level::TRACE));
    }

    #[test]
    fn the_log_level_comes_from_lambda_then_rust_log_then_info() {
        use tracing::Level;
        let enabled = |filter: &tracing_subscriber::filter::Targets, target, level| {
            filter.would_enable(target, &level)
        };
        let default = log_filter(None, None);
        assert!(enabled(&default, "wikibot::store", Level::INFO));
        assert!(!enabled(&default, "wikibot::store", Level::DEBUG));

        let lambda = log_filter(Some("DEBUG"), Some("warn"));
        assert!(enabled(&lambda, "rmcp", Level::DEBUG));
        assert!(!enabled(&lambda, "rmcp", Level::TRACE));
        let fatal = log_filter(Some("FATAL"), None);
        assert!(enabled(&fatal, "wikibot", Level::ERROR));
        assert!(!enabled(&fatal, "wikibot", Level::WARN));

        let bare = log_filter(None, Some("warn"));
        assert!(enabled(&bare, "wikibot", Level::WARN));
        assert!(!enabled(&bare, "wikibot", Level::INFO));
        let unknown_lambda_level = log_filter(Some("chatty"), Some("error"));
        assert!(!enabled(&unknown_lambda_level, "wikibot", Level::WARN));
    }

    #[test]
    fn rust_log_names_targets_over_the_level_and_bad_directives_are_ignored() {
        use tracing::Level;
        let targets = log_filter(Some("INFO"), Some("wikibot::store=trace,rmcp=error"));
        assert!(targets.would_enable("wikibot::store::commit", &Level::TRACE));
        assert!(!targets.would_enable("wikibot::mcp", &Level::DEBUG));
        assert!(targets.would_enable("wikibot::mcp", &Level::INFO));
        assert!(!targets.would_enable("rmcp::service", &Level::WARN));

        let with_default = log_filter(None, Some("debug,rmcp=warn"));
        assert!(with_default.would_enable("wikibot", &Level::DEBUG));
        assert!(!with_default.would_enable("rmcp", &Level::INFO));

        let garbage = log_filter(None, Some("wikibot=loud,,=="));
        assert!(garbage.would_enable("wikibot", &Level::INFO));
        assert!(!garbage.would_enable("wikibot", &Level::DEBUG));
    }

    #[test]
    fn logged_values_cannot_break_a_line() {
        assert_eq!(
            escape_controls("RS256\nINFO forged\r\u{1b}[31m"),
            "RS256\\nINFO forged\\r\\u{1b}[31m"
        );
        assert_eq!(escape_controls("plain — ünïcode"), "plain — ünïcode");
    }

    #[test]
    fn millis_keeps_microseconds() {
        assert_eq!(millis(Duration::from_micros(1234)), 1.234);
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
    }
}

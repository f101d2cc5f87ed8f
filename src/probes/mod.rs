//! The Phase 0 probe handlers: [`efs`] (P0-2: file write/read on the mount) and [`git`]
//! (P0-3: the git page store's lifecycle). Each turns a JSON event into a JSON response and
//! reports every failure inside that response as `{"error":{"kind","message"}}`, so a bad
//! event never crashes the function or surfaces as a Lambda error.
//!
//! This module must not talk to the Runtime API (the binaries do, through [`crate::lambda`]).

pub mod efs;
pub mod git;

use serde_json::{Map, Value, json};

use crate::lambda::{Instance, InvocationInfo, millis};
use crate::store::{ErrorKind, StoreError};

/// A failure reported to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub message: String,
    /// For conflicts: the revision to re-read and build on.
    pub current_revision: Option<String>,
}

impl ProbeError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
            current_revision: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            current_revision: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut error = json!({ "kind": self.kind.as_str(), "message": self.message });
        if let Some(current) = &self.current_revision {
            error["current_revision"] = json!(current);
        }
        error
    }
}

impl From<StoreError> for ProbeError {
    fn from(e: StoreError) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
            current_revision: e.current_revision().map(ToString::to_string),
        }
    }
}

/// Step timings in milliseconds, in the order the steps ran.
#[derive(Debug, Default)]
pub struct Timings(Vec<(&'static str, f64)>);

impl Timings {
    /// Runs `step`, recording how long it took under `name`.
    pub fn time<T>(&mut self, name: &'static str, step: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let result = step();
        self.0.push((name, millis(started.elapsed())));
        result
    }

    fn to_json(&self, total: f64) -> Value {
        let mut map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        map.insert("total".to_owned(), json!(total));
        Value::Object(map)
    }
}

/// Builds a probe response: the handler's fields (or error) plus timings and the
/// execution environment's identity, which every response carries.
fn respond(
    instance: &Instance,
    invocation: InvocationInfo,
    started: std::time::Instant,
    timings: &Timings,
    outcome: Result<Map<String, Value>, ProbeError>,
) -> Value {
    let mut body = match outcome {
        Ok(fields) => fields,
        Err(error) => {
            tracing::warn!(kind = error.kind.as_str(), error = %error.message, "probe request failed");
            let mut fields = Map::new();
            fields.insert("error".to_owned(), error.to_json());
            fields
        }
    };
    let total = millis(started.elapsed());
    body.insert("timings_ms".to_owned(), timings.to_json(total));
    body.insert("cold_start".to_owned(), json!(invocation.cold_start));
    body.insert("invocation".to_owned(), json!(invocation.number));
    body.insert("instance_id".to_owned(), json!(instance.id()));
    Value::Object(body)
}

/// Parses an event into `T`, turning serde's message into an `invalid_input` error.
fn parse_event<T: serde::de::DeserializeOwned>(event: Value) -> Result<T, ProbeError> {
    serde_json::from_value(event).map_err(|e| ProbeError::invalid(format!("invalid event: {e}")))
}

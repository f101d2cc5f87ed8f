//! `efs-probe` (P0-2): writes a file under the mount root, reads it back, checks it, and
//! reports the timings and what the file held before (which shows persistence across warm
//! invocations and across processes).
//!
//! Event: `{}` or `{"file": "test.txt"}` (a plain file name under the root).
//! This module must not write anywhere but the named file and its temporary sibling.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::{ProbeError, Timings, parse_event, respond};
use crate::lambda::Instance;

/// Default file, as in the plan: `/mnt/efs/test.txt`.
pub const DEFAULT_FILE: &str = "test.txt";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EfsEvent {
    #[serde(default)]
    file: Option<String>,
}

pub struct EfsProbe {
    root: PathBuf,
    instance: Instance,
}

impl EfsProbe {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            instance: Instance::new(),
        }
    }

    /// Root from `WIKIBOT_ROOT`, default `/mnt/efs` (the Lambda mount path).
    pub fn from_env() -> Self {
        Self::new(crate::config::env_path(
            "WIKIBOT_ROOT",
            Path::new("/mnt/efs"),
        ))
    }

    pub fn handle(&self, event: Value) -> Value {
        let started = Instant::now();
        let invocation = self.instance.next_invocation();
        let mut timings = Timings::default();
        let outcome = self.probe(event, invocation.number, &mut timings);
        if let Ok(fields) = &outcome {
            tracing::info!(file = ?fields.get("path"), timings = ?timings, "efs probe done");
        }
        respond(&self.instance, invocation, started, &timings, outcome)
    }

    fn probe(
        &self,
        event: Value,
        invocation: u64,
        timings: &mut Timings,
    ) -> Result<Map<String, Value>, ProbeError> {
        let event: EfsEvent = parse_event(event)?;
        let file = event.file.as_deref().unwrap_or(DEFAULT_FILE);
        check_file_name(file)?;
        let path = self.root.join(file);
        let io_error = |what: &str, e: io::Error| {
            ProbeError::internal(format!("cannot {what} {}: {e}", path.display()))
        };

        let previous = match fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("read", e)),
        };
        let content = format!(
            "written by efs-probe instance {} invocation {invocation} at {}\n",
            self.instance.id(),
            humantime::format_rfc3339_micros(SystemTime::now())
        );
        timings
            .time("write", || self.replace(&path, file, &content))
            .map_err(|e| io_error("write", e))?;
        let read_back = timings
            .time("read", || fs::read_to_string(&path))
            .map_err(|e| io_error("read back", e))?;
        if read_back != content {
            return Err(ProbeError::internal(format!(
                "read back {} bytes that differ from the {} written (another writer?)",
                read_back.len(),
                content.len()
            )));
        }
        let mut fields = Map::new();
        fields.insert("ok".into(), json!(true));
        fields.insert("path".into(), json!(path.display().to_string()));
        fields.insert("bytes".into(), json!(content.len()));
        fields.insert("content".into(), json!(content));
        fields.insert("previous_content".into(), json!(previous));
        Ok(fields)
    }

    /// Writes through a temporary file and a rename, so a concurrent reader sees the old
    /// content or the new, never a torn file.
    fn replace(&self, path: &Path, file: &str, content: &str) -> io::Result<()> {
        let temporary = self
            .root
            .join(format!(".{file}.{}.tmp", self.instance.id()));
        match fs::write(&temporary, content) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.root)?;
                fs::write(&temporary, content)?;
            }
            other => other?,
        }
        fs::rename(&temporary, path)
    }
}

fn check_file_name(file: &str) -> Result<(), ProbeError> {
    let valid = (1..=64).contains(&file.len())
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ProbeError::invalid(
            "file must be a plain file name: 1 to 64 ASCII letters, digits, '.', '_' or '-', not starting with '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_back_and_reports_the_previous_content() {
        let dir = tempfile::tempdir().unwrap();
        let probe = EfsProbe::new(dir.path().join("mount"));
        let first = probe.handle(json!({}));
        assert_eq!(first["ok"], true, "{first}");
        assert_eq!(first["cold_start"], true);
        assert!(first["previous_content"].is_null());
        let on_disk = fs::read_to_string(dir.path().join("mount/test.txt")).unwrap();
        assert_eq!(first["content"], on_disk.as_str());
        for step in ["write", "read", "total"] {
            assert!(first["timings_ms"][step].as_f64().unwrap() >= 0.0);
        }

        let second = probe.handle(json!({"file": "test.txt"}));
        assert_eq!(second["cold_start"], false);
        assert_eq!(second["previous_content"], first["content"]);
        assert_eq!(second["instance_id"], first["instance_id"]);
    }

    #[test]
    fn refuses_paths_outside_the_root_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let probe = EfsProbe::new(dir.path());
        for event in [
            json!({"file": "../escape"}),
            json!({"file": "/etc/passwd"}),
            json!({"file": "a/b"}),
            json!({"file": ".hidden"}),
            json!({"file": ""}),
            json!({"file": 7}),
            json!({"path": "x"}),
            json!("text"),
        ] {
            let response = probe.handle(event.clone());
            assert_eq!(
                response["error"]["kind"], "invalid_input",
                "{event} → {response}"
            );
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing may be written"
        );
    }
}

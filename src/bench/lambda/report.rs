//! What `wikibot bench lambda` makes of its measurements: the verdict per Phase 0 exit
//! criterion (P0-5), the report page (Markdown: environment, verdicts, tables, a Mermaid
//! `xychart-beta` chart of latency per invocation) and the same chart as SVG (`plotters`).
//!
//! It must not measure or invoke anything; it only formats what [`super::run`] found.

use std::fmt::Write as _;
use std::path::Path;

use super::{LambdaBenchError, LambdaReport, Measurement, Options, Sample, Verdict};

/// Phase 0's exit criteria (P0-5) and the goal of issue 9 for the emulator.
pub const WARM_READ_MS: f64 = 500.0;
pub const WARM_WRITE_MS: f64 = 1000.0;
pub const COLD_START_MS: f64 = 5000.0;
pub const MIN_WARM: usize = 20;
pub const MIN_COLD: usize = 5;
pub const WARM_TOTAL_GOAL_MS: f64 = 5000.0;

/// Judges each criterion. Warm latencies are judged on p99 of the client's wall time (with
/// 20 samples, the slowest), cold starts on the slowest; every invocation must succeed.
pub fn verdicts(options: &Options, measurements: &[Measurement]) -> Vec<Verdict> {
    let find = |key: &str| measurements.iter().find(|m| m.key == key);
    let mut verdicts = Vec::new();
    let mut latency = |key: &str, criterion: String, limit: f64, min: usize, on_max: bool| {
        let Some(m) = find(key) else { return };
        let (stat, value) = match m.summaries.get("client") {
            Some(s) if on_max => ("max", s.max_ms),
            Some(s) => ("p99", s.p99_ms),
            None => ("p99", f64::INFINITY),
        };
        let n = m.samples.len();
        let mut measured = format!("{stat} {value:.1} ms over {n}");
        if m.errors > 0 {
            measured.push_str(&format!(", {} failed", m.errors));
        }
        if n < min {
            measured.push_str(&format!(" (needs {min}+)"));
        }
        verdicts.push(Verdict {
            criterion,
            measured,
            pass: m.errors == 0 && n >= min && value < limit,
        });
    };
    latency(
        "warm_read",
        format!("warm page read < {WARM_READ_MS} ms ({MIN_WARM}+ invocations)"),
        WARM_READ_MS,
        MIN_WARM,
        false,
    );
    latency(
        "warm_write",
        format!(
            "warm page write < {} s ({MIN_WARM}+ invocations)",
            WARM_WRITE_MS / 1000.0
        ),
        WARM_WRITE_MS,
        MIN_WARM,
        false,
    );
    latency(
        "cold_start",
        format!(
            "cold start < {} s total ({MIN_COLD}+ cold starts)",
            COLD_START_MS / 1000.0
        ),
        COLD_START_MS,
        MIN_COLD,
        true,
    );
    if let Some(m) = find("concurrent_reads") {
        verdicts.push(Verdict {
            criterion: "concurrent reads succeed without errors".into(),
            measured: format!(
                "{} of {} succeeded, {} environments",
                m.samples.len() - m.errors,
                m.samples.len(),
                m.environments
            ),
            pass: m.errors == 0 && !m.samples.is_empty(),
        });
    }
    for &writers in &options.writers {
        let Some(m) = find(&format!("writers_{writers}")) else {
            continue;
        };
        let found = m.commits_found.unwrap_or(0);
        let criterion = if writers == 5 {
            "5 simultaneous writers all succeed, every commit in the history".to_owned()
        } else {
            format!(
                "{writers} simultaneous writers all succeed, every commit in the history (beyond P0-5)"
            )
        };
        verdicts.push(Verdict {
            criterion,
            measured: format!(
                "{} of {writers} succeeded, {found} of {writers} commits in the history",
                m.samples.len() - m.errors
            ),
            pass: m.errors == 0 && found == writers && m.samples.len() == writers,
        });
    }
    if let (Some(reads), Some(writes)) = (find("warm_read"), find("warm_write")) {
        let total = reads.elapsed_ms + writes.elapsed_ms;
        verdicts.push(Verdict {
            criterion: format!(
                "{MIN_WARM} warm reads and {MIN_WARM} warm writes take < {} s in all (issue 9's goal for the emulator)",
                WARM_TOTAL_GOAL_MS / 1000.0
            ),
            measured: format!(
                "{} + {} invocations in {:.2} s",
                reads.samples.len(),
                writes.samples.len(),
                total / 1000.0
            ),
            pass: reads.errors + writes.errors == 0
                && reads.samples.len() >= MIN_WARM
                && writes.samples.len() >= MIN_WARM
                && total < WARM_TOTAL_GOAL_MS,
        });
    }
    verdicts
}

fn verdict_word(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn size(bytes: i64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

/// The verdict table (Markdown).
pub fn verdict_table(report: &LambdaReport) -> String {
    let mut out = String::from("| criterion | measured | verdict |\n|---|---|---|\n");
    for v in &report.verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | **{}** |",
            v.criterion,
            v.measured,
            verdict_word(v.pass)
        );
    }
    out
}

/// The measurement table (Markdown): per measurement and metric, p50/p90/p99/max in ms.
pub fn measurement_table(report: &LambdaReport) -> String {
    let mut out = String::from(
        "| measurement | n | failed | envs | metric | p50 | p90 | p99 | max |\n|---|--:|--:|--:|---|--:|--:|--:|--:|\n",
    );
    for m in &report.measurements {
        let mut first = true;
        let mut metrics: Vec<(&String, &crate::bench::Summary)> = m.summaries.iter().collect();
        // client, duration, init, then the function's steps.
        metrics.sort_by_key(|(name, _)| match name.as_str() {
            "client" => (0, (*name).clone()),
            "duration" => (1, (*name).clone()),
            "init" => (2, (*name).clone()),
            _ => (3, (*name).clone()),
        });
        if metrics.is_empty() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | — | | | | |",
                m.label,
                m.samples.len(),
                m.errors,
                m.environments
            );
        }
        for (name, s) in metrics {
            let label = match name.as_str() {
                "client" => "client wall time",
                "duration" => "REPORT Duration",
                "init" => "REPORT Init Duration",
                other => other,
            };
            if first {
                let _ = write!(
                    out,
                    "| {} | {} | {} | {} ",
                    m.label,
                    m.samples.len(),
                    m.errors,
                    m.environments
                );
                first = false;
            } else {
                out.push_str("| | | | ");
            }
            let _ = writeln!(
                out,
                "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
                s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
    }
    out
}

/// The sequential invocations of the benchmarked function, in order (the chart's points).
fn chart_points(report: &LambdaReport) -> Vec<(String, &Sample)> {
    let mut points: Vec<(String, &Sample)> = Vec::new();
    for (key, prefix) in [("warm_read", "r"), ("warm_write", "w"), ("cold_start", "c")] {
        if let Some(m) = report.measurement(key) {
            for (i, s) in m.samples.iter().enumerate() {
                points.push((format!("{prefix}{}", i + 1), s));
            }
        }
    }
    points
}

fn nice_ceiling(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The Mermaid `xychart-beta` block: bars are the client's wall time, the line the REPORT
/// Duration, per sequential invocation (r: warm read, w: warm write, c: cold start).
pub fn mermaid_chart(report: &LambdaReport) -> String {
    let points = chart_points(report);
    let client: Vec<f64> = points.iter().map(|(_, s)| s.client_ms).collect();
    let duration: Vec<f64> = points
        .iter()
        .map(|(_, s)| s.duration_ms.unwrap_or(0.0))
        .collect();
    let top = nice_ceiling(client.iter().chain(&duration).copied().fold(0.0, f64::max));
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let labels = points
        .iter()
        .map(|(l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let function = report
        .environment
        .functions
        .first()
        .map_or("function", |f| f.name.as_str());
    format!(
        "```mermaid\nxychart-beta\n    title \"{function}: latency per invocation (bars: client ms, line: REPORT Duration ms)\"\n    x-axis [{labels}]\n    y-axis \"ms\" 0 --> {top}\n    bar [{}]\n    line [{}]\n```\n",
        list(&client),
        list(&duration)
    )
}

/// The report page (Markdown).
pub fn page(report: &LambdaReport) -> String {
    let env = &report.environment;
    let mut out = String::from("# Phase 0 — EFS Benchmarks\n\n");
    let passed = report.verdicts.iter().filter(|v| v.pass).count();
    let _ = writeln!(
        out,
        "Measured by `wikibot bench lambda` at {} against {}: **{passed} of {} criteria pass.**\n",
        env.started_at,
        if env.emulated {
            format!(
                "the local Lambda emulator (`wikibot emulate`, {})",
                env.endpoint
            )
        } else {
            format!("AWS Lambda ({})", env.endpoint)
        },
        report.verdicts.len()
    );
    out.push_str("## Environment\n\n| | |\n|---|---|\n");
    let _ = writeln!(out, "| region | {} |", env.region);
    let _ = writeln!(out, "| wiki | `{}` |", env.wiki);
    let _ = writeln!(out, "| build (git commit) | `{}` |", env.commit);
    let _ = writeln!(
        out,
        "| endpoint | {} |\n",
        if env.emulated {
            format!("emulator at {}", env.endpoint)
        } else {
            env.endpoint.clone()
        }
    );
    let code = if env.emulated {
        "code size (the bootstrap; emulated)"
    } else {
        "code size (zip)"
    };
    let _ = writeln!(
        out,
        "| function | runtime | architecture | memory | timeout | {code} | last modified |\n|---|---|---|--:|--:|--:|---|"
    );
    for f in &env.functions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} MB | {} s | {} | {} |",
            f.name,
            f.runtime,
            f.architecture,
            f.memory_mb,
            f.timeout_s,
            size(f.code_size),
            f.last_modified.as_deref().unwrap_or("")
        );
    }
    out.push_str("\n## Verdict\n\n");
    out.push_str(&verdict_table(report));
    out.push_str(
        "\nWarm latencies are judged on p99 of the client's wall time, cold starts on the slowest.\n\n## Measurements\n\n",
    );
    out.push_str(
        "Milliseconds. *client wall time*: the Invoke call as the benchmark saw it (network, \
         the service and the function); *REPORT Duration* / *Init Duration*: the service's \
         measurement from the REPORT log line (`LogType: Tail`); `step …`: the function's own \
         `timings_ms`. *envs*: distinct execution environments that answered. Cold starts are \
         forced by an environment-variable change, waiting until the update has finished.\n\n",
    );
    out.push_str(&measurement_table(report));
    let failures: Vec<(&str, &str)> = report
        .measurements
        .iter()
        .flat_map(|m| {
            m.samples
                .iter()
                .filter_map(|s| Some((m.label.as_str(), s.error.as_deref()?)))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\n### Failures\n\n");
        for (label, error) in failures.iter().take(20) {
            let _ = writeln!(out, "- {label}: {}", error.replace('\n', " "));
        }
    }
    out.push_str("\n## Latency per invocation\n\n");
    out.push_str(
        "r: warm read, w: warm write, c: cold start, in the order they ran. Bars: client wall \
         time; line: REPORT Duration (ms).\n\n",
    );
    out.push_str(&mermaid_chart(report));
    out
}

/// Draws the chart as an SVG file: client wall time and REPORT Duration per invocation.
pub fn svg_chart(report: &LambdaReport, path: &Path) -> Result<(), LambdaBenchError> {
    use plotters::prelude::*;
    let chart_error = |e: &dyn std::fmt::Display| LambdaBenchError::Chart {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let points = chart_points(report);
    let client: Vec<(u32, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, (_, s))| (i as u32 + 1, s.client_ms))
        .collect();
    let duration: Vec<(u32, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, (_, s))| Some((i as u32 + 1, s.duration_ms?)))
        .collect();
    let top = nice_ceiling(
        client
            .iter()
            .chain(&duration)
            .map(|(_, v)| *v)
            .fold(0.0, f64::max),
    );
    let n = (points.len() as u32).max(2);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(&e))?;
    let function = report
        .environment
        .functions
        .first()
        .map_or("function", |f| f.name.as_str());
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{function}: latency per invocation (warm reads, warm writes, cold starts)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(1u32..n, 0f64..top)
        .map_err(|e| chart_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("invocation")
        .y_desc("ms")
        .draw()
        .map_err(|e| chart_error(&e))?;
    chart
        .draw_series(LineSeries::new(client, &BLUE))
        .map_err(|e| chart_error(&e))?
        .label("client wall time")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(duration, &RED))
        .map_err(|e| chart_error(&e))?
        .label("REPORT Duration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| chart_error(&e))?;
    root.present().map_err(|e| chart_error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
        assert_eq!(nice_ceiling(4100.0), 5000.0);
    }

    fn sample(client_ms: f64) -> Sample {
        Sample {
            n: None,
            client_ms,
            duration_ms: Some(client_ms / 2.0),
            billed_ms: None,
            init_ms: None,
            max_memory_mb: None,
            steps_ms: std::collections::BTreeMap::new(),
            instance_id: Some("env-1".into()),
            error: None,
            revision: None,
        }
    }

    fn measurement(key: &str, samples: Vec<Sample>) -> Measurement {
        Measurement::new(
            key,
            key.into(),
            "git-probe",
            samples,
            std::time::Duration::from_millis(100),
        )
    }

    fn options(writers: Vec<usize>) -> Options {
        Options {
            endpoint_url: None,
            function: "git-probe".into(),
            efs_function: None,
            wiki: "wiki".into(),
            warm: 20,
            cold: 5,
            concurrent_reads: 3,
            writers,
            commit: "x".into(),
            progress: false,
        }
    }

    fn verdict<'a>(verdicts: &'a [Verdict], starts: &str) -> &'a Verdict {
        verdicts
            .iter()
            .find(|v| v.criterion.starts_with(starts))
            .unwrap_or_else(|| panic!("no verdict {starts:?} in {verdicts:?}"))
    }

    #[test]
    fn verdicts_follow_the_exit_criteria() {
        let mut cold: Vec<Sample> = (0..5).map(|_| sample(900.0)).collect();
        for s in &mut cold {
            s.init_ms = Some(300.0);
        }
        let mut writers = measurement("writers_5", (0..5).map(|_| sample(200.0)).collect());
        writers.commits_found = Some(5);
        let measurements = vec![
            measurement(
                "warm_read",
                (0..20).map(|i| sample(10.0 + f64::from(i))).collect(),
            ),
            measurement("warm_write", (0..20).map(|_| sample(30.0)).collect()),
            measurement("cold_start", cold),
            measurement("concurrent_reads", (0..3).map(|_| sample(20.0)).collect()),
            writers,
        ];
        let all = verdicts(&options(vec![5]), &measurements);
        assert_eq!(all.len(), 6, "{all:?}");
        assert!(all.iter().all(|v| v.pass), "{all:?}");
        assert_eq!(
            verdict(&all, "warm page read").measured,
            "p99 29.0 ms over 20"
        );

        // Too few samples, a slow p99, a failure, a missing commit: each one fails.
        let mut few = measurements.clone();
        few[0] = measurement("warm_read", (0..19).map(|_| sample(10.0)).collect());
        let v = verdicts(&options(vec![5]), &few);
        assert!(!verdict(&v, "warm page read").pass);
        assert!(verdict(&v, "warm page read").measured.contains("needs 20+"));
        assert!(!verdict(&v, "20 warm reads and 20 warm writes").pass);

        let mut slow = measurements.clone();
        let mut writes: Vec<Sample> = (0..20).map(|_| sample(30.0)).collect();
        writes[7].client_ms = 1000.0;
        slow[1] = measurement("warm_write", writes);
        assert!(!verdict(&verdicts(&options(vec![5]), &slow), "warm page write").pass);

        let mut slow_cold = measurements.clone();
        let mut colds = slow_cold[2].samples.clone();
        colds[4].client_ms = 5000.0;
        slow_cold[2] = measurement("cold_start", colds);
        assert!(!verdict(&verdicts(&options(vec![5]), &slow_cold), "cold start").pass);

        let mut failed = measurements.clone();
        let mut reads = failed[3].samples.clone();
        reads[1].error = Some("throttled".into());
        failed[3] = measurement("concurrent_reads", reads);
        let v = verdicts(&options(vec![5]), &failed);
        assert!(!verdict(&v, "concurrent reads").pass);
        assert_eq!(
            verdict(&v, "concurrent reads").measured,
            "2 of 3 succeeded, 1 environments"
        );

        let mut lost = measurements.clone();
        lost[4].commits_found = Some(4);
        let v = verdicts(&options(vec![5]), &lost);
        assert!(!verdict(&v, "5 simultaneous writers").pass);
        assert!(
            verdict(&v, "5 simultaneous writers")
                .measured
                .contains("4 of 5 commits")
        );
    }
}

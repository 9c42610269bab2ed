//! Results: one record per (target, case), the Markdown tables and the JSON file.

use crate::load::Latency;
use crate::procs::Usage;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a case's headline figure is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Headline {
    /// Requests per second (higher is better), with p99.
    Throughput,
    /// p99 latency (lower is better), with the rate.
    Latency,
    /// Server memory per connection (lower is better).
    Memory,
}

/// The outcome of one case on one target.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// `sqlite`, `postgres`, `two-nodes` or `synapse`.
    pub target: String,
    /// Case name, the same for every target.
    pub case: String,
    /// What the case does.
    pub description: String,
    /// Which figure leads in the tables.
    pub headline: Headline,
    /// Client connections (closed loop) or subscribers.
    pub concurrency: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Latency of the headline operation.
    pub latency_ms: Option<Latency>,
    /// Server CPU and memory during the case.
    pub server: Option<Usage>,
    /// Case-specific figures (per-connection memory, POST latency under fan-out, …).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Why the case could not run, if it could not.
    pub failure: Option<String>,
}

impl CaseResult {
    /// A result with nothing measured yet.
    pub fn new(target: &str, case: &str, description: &str, headline: Headline, concurrency: usize) -> Self {
        Self {
            target: target.to_owned(),
            case: case.to_owned(),
            description: description.to_owned(),
            headline,
            concurrency,
            seconds: 0.0,
            ok: 0,
            errors: 0,
            throughput: 0.0,
            latency_ms: None,
            server: None,
            extra: BTreeMap::new(),
            failure: None,
        }
    }

    /// The headline in a few characters, for the side-by-side table.
    pub fn cell(&self) -> String {
        if let Some(f) = &self.failure {
            return format!("failed: {}", f.chars().take(40).collect::<String>());
        }
        let p99 = self.latency_ms.as_ref().map(|l| ms(l.p99)).unwrap_or_else(|| "–".into());
        let err = if self.errors > 0 { format!(" ({} err)", self.errors) } else { String::new() };
        match self.headline {
            Headline::Throughput => format!("{}/s · p99 {p99}{err}", si(self.throughput)),
            Headline::Latency => format!("p99 {p99} · {}/s{err}", si(self.throughput)),
            Headline::Memory => match self.extra.get("per_connection_kib").and_then(|v| v.as_f64()) {
                Some(kib) => format!("{kib:.1} KiB/conn{err}"),
                None => format!("–{err}"),
            },
        }
    }

    /// The number ratios are taken of, oriented so that higher is better.
    fn score(&self) -> Option<f64> {
        if self.failure.is_some() {
            return None;
        }
        match self.headline {
            Headline::Throughput => (self.throughput > 0.0).then_some(self.throughput),
            Headline::Latency => self.latency_ms.as_ref().filter(|l| l.p99 > 0.0).map(|l| 1.0 / l.p99),
            Headline::Memory => {
                self.extra.get("per_connection_kib").and_then(|v| v.as_f64()).filter(|v| *v > 0.0).map(|v| 1.0 / v)
            }
        }
    }
}

/// Milliseconds, with sensible precision.
pub fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// A rate with a k suffix.
pub fn si(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Every case of every target, one row each, with all figures.
pub fn detail_table(results: &[CaseResult]) -> String {
    let mut out = String::from(
        "| target | case | conc | ok/s | p50 | p90 | p99 | max | errors | server CPU | peak RSS | notes |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in results {
        let l = r.latency_ms.as_ref();
        let f = |get: fn(&Latency) -> f64| l.map(|l| ms(get(l))).unwrap_or_else(|| "–".into());
        let (cpu, rss) = match &r.server {
            Some(u) => (format!("{:.2} cores", u.cpu_cores), format!("{:.0} MiB", u.peak_rss_mib)),
            None => ("–".into(), "–".into()),
        };
        let notes = match &r.failure {
            Some(f) => format!("FAILED: {f}"),
            None => notes(r),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.case,
            r.concurrency,
            si(r.throughput),
            f(|l| l.p50),
            f(|l| l.p90),
            f(|l| l.p99),
            f(|l| l.max),
            r.errors,
            cpu,
            rss,
            notes.replace('|', "/")
        );
    }
    out
}

/// The case-specific figures worth a table cell.
fn notes(r: &CaseResult) -> String {
    let mut parts = Vec::new();
    let num = |k: &str| r.extra.get(k).and_then(|v| v.as_f64());
    if let Some(v) = num("per_connection_kib") {
        parts.push(format!("{v:.1} KiB/conn open"));
    }
    if let Some(v) = num("retained_per_connection_kib") {
        parts.push(format!("{v:.1} KiB/conn kept after close"));
    }
    if let (Some(p50), Some(p99)) = (num("post_p50_ms"), num("post_p99_ms")) {
        parts.push(format!("POST p50 {} p99 {}", ms(p50), ms(p99)));
    }
    if let Some(v) = num("missing") {
        if v > 0.0 {
            parts.push(format!("{v:.0} deliveries missing"));
        }
    }
    if let Some(v) = num("db_commits_per_message") {
        parts.push(format!("{v:.1} DB transactions/msg"));
    }
    if let Some(v) = num("read_syscalls_per_message") {
        parts.push(format!("{v:.1} read syscalls/msg"));
    }
    if let Some(v) = r.extra.get("ops").and_then(|v| v.as_object()) {
        let ops: Vec<String> =
            v.iter().filter_map(|(k, o)| Some(format!("{k} p99 {}", ms(o.get("p99")?.as_f64()?)))).collect();
        parts.push(ops.join(", "));
    }
    if let Some(v) = num("events_received") {
        parts.push(format!("{v:.0} stream events"));
    }
    if let Some(e) = r.extra.get("error_kinds").and_then(|v| v.as_object()) {
        let kinds: Vec<String> = e.iter().take(3).map(|(k, n)| format!("{n}× {k}")).collect();
        if !kinds.is_empty() {
            parts.push(kinds.join("; "));
        }
    }
    parts.join("; ")
}

/// One row per case, one column per target, and livechat ÷ peer where both ran.
pub fn side_by_side(results: &[CaseResult]) -> String {
    let mut targets: Vec<&str> = Vec::new();
    let mut cases: Vec<&str> = Vec::new();
    for r in results {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    let peer = targets.iter().position(|t| *t == "synapse");
    let mut out = String::from("| case |");
    for t in &targets {
        let _ = write!(out, " {t} |");
    }
    if peer.is_some() {
        out.push_str(" sqlite ÷ synapse |");
    }
    out.push_str("\n|---|");
    for _ in &targets {
        out.push_str("---|");
    }
    if peer.is_some() {
        out.push_str("--:|");
    }
    out.push('\n');
    let find = |t: &str, c: &str| results.iter().find(|r| r.target == t && r.case == c);
    for c in cases {
        let _ = write!(out, "| {c} |");
        for t in &targets {
            let cell = find(t, c).map(CaseResult::cell).unwrap_or_else(|| "n/a".into());
            let _ = write!(out, " {} |", cell.replace('|', "/"));
        }
        if peer.is_some() {
            let ratio =
                match (find("sqlite", c).and_then(CaseResult::score), find("synapse", c).and_then(CaseResult::score)) {
                    (Some(a), Some(b)) => format!("{:.1}×", a / b),
                    _ => "–".into(),
                };
            let _ = write!(out, " {ratio} |");
        }
        out.push('\n');
    }
    out
}

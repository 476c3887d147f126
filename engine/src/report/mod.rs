//! What people read: a result set rendered as the terminal table, JSON, JSON lines, CSV or
//! markdown, with the statistics of [`analysis`], the plots of [`plots`], and the results file
//! of [`results_file`] that runs append to, resume from and merge.
//!
//! **Invariant**: a report is a function of its rows (with their per-query scores), the
//! manifest and the statistics settings; nothing here runs a router. So `merge` of shards
//! renders byte for byte what one run renders.

use serde_json::{Value as Json, json};

use crate::eval::run::EvalResult;
use crate::eval::stats::{Comparison, StatsConfig};

pub mod analysis;
pub mod csv;
pub mod markdown;
pub mod plots;
pub mod results_file;
pub mod table;

pub use analysis::Analysis;
pub use table::to_table;

/// How a result set is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The terminal table.
    Table,
    /// One JSON document: manifest, statistics settings, rows.
    Json,
    /// One JSON object per row, one per line.
    Jsonl,
    /// Long-format CSV: one line per row, every field of the JSON row flattened.
    Csv,
    /// Paper-style markdown tables with intervals, and the cross-benchmark summary.
    Markdown,
}

/// A result set ready to render: the rows in plan order, their statistics, and the manifest
/// (what produced them).
#[derive(Debug)]
pub struct Report<'a> {
    /// The rows.
    pub results: &'a [EvalResult],
    /// Their statistics.
    pub analysis: Analysis,
    /// The reproducibility manifest (`Json::Null` when unknown).
    pub manifest: Json,
}

impl<'a> Report<'a> {
    /// The rows with their statistics computed under `stats`.
    pub fn new(results: &'a [EvalResult], stats: StatsConfig, manifest: Json) -> Report<'a> {
        Report {
            results,
            analysis: Analysis::new(results, stats),
            manifest,
        }
    }

    /// The report in `format`.
    ///
    /// # Errors
    /// Only when serialisation fails (it does not for these types).
    pub fn render(&self, format: Format) -> anyhow::Result<String> {
        Ok(match format {
            Format::Table => to_table(self.results),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&self.to_json())?;
                s.push('\n');
                s
            }
            Format::Jsonl => {
                let mut s = String::new();
                for (r, st) in self.results.iter().zip(&self.analysis.rows) {
                    s.push_str(&serde_json::to_string(&row_json(r, st))?);
                    s.push('\n');
                }
                s
            }
            Format::Csv => csv::to_csv(self.results, &self.analysis)?,
            Format::Markdown => markdown::to_markdown(self.results, &self.analysis),
        })
    }

    /// The JSON document: `{"engine", "seed", "manifest", "statistics", "results": [...]}`
    /// (and `plugins` and `sandbox` when plugins ran).
    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .results
            .iter()
            .zip(&self.analysis.rows)
            .map(|(r, st)| row_json(r, st))
            .collect();
        let mut doc = json!({
            "engine": { "name": "routereval-engine", "version": env!("CARGO_PKG_VERSION") },
            "seed": self.manifest.get("seed").cloned().unwrap_or(Json::Null),
            "manifest": self.manifest,
            "statistics": statistics_json(&self.analysis.config),
            "results": rows,
        });
        if let Some(plugins) = self
            .manifest
            .get("plugins")
            .filter(|p| p.as_array().is_some_and(|a| !a.is_empty()))
        {
            // What a rerun needs to reproduce the plugin rows: the exact files and limits.
            doc["plugins"] = plugins.clone();
            doc["sandbox"] = self.manifest.get("sandbox").cloned().unwrap_or(Json::Null);
        }
        doc
    }
}

/// How the intervals and tests were computed, in words and numbers.
pub fn statistics_json(cfg: &StatsConfig) -> Json {
    json!({
        "interval": "percentile bootstrap of mu over the test queries",
        "level": cfg.level,
        "replicates": cfg.replicates,
        "seed": cfg.seed,
        "paired_interval": "paired bootstrap (the same resamples for every row of a benchmark)",
        "paired_test": "sign-flip randomisation test; McNemar's exact test when scores are 0/1",
    })
}

fn comparison_json(c: Option<&Comparison>) -> Json {
    match c {
        None => Json::Null,
        Some(c) => json!({
            "against": c.against,
            "diff": c.diff,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "p_value": c.p_value,
            "test": c.test,
        }),
    }
}

/// What a row is without its statistics: identity, metrics or error, cost, log (the row of a
/// results file; [`row_json`] adds the statistics).
pub fn base_row_json(r: &EvalResult) -> Json {
    let m = r.metrics();
    json!({
        "router": r.router,
        "kind": r.kind,
        "self_reported": r.self_reported,
        "benchmark": r.benchmark,
        "difficulty": r.difficulty,
        "m": r.m,
        "group": r.group,
        "mu": m.map(|m| m.mu),
        "vr": m.and_then(|m| m.vr),
        "vb": m.and_then(|m| m.vb),
        "ep": m.map(|m| m.ep),
        "status": if r.is_ok() { "ok" } else { "failed" },
        "error": r.error(),
        "seconds": r.seconds,
        "fuel": r.fuel,
        "log": r.log,
    })
}

/// One row as JSON (the rows of `json` and `jsonl`): [`base_row_json`] with the interval and
/// the paired comparisons.
pub fn row_json(r: &EvalResult, st: &analysis::RowStats) -> Json {
    let mut row = base_row_json(r);
    row["ci_low"] = st.ci.map(|c| c.0).into();
    row["ci_high"] = st.ci.map(|c| c.1).into();
    row["vs_best_on_train"] = comparison_json(st.vs_best_on_train.as_ref());
    row["vs_best"] = comparison_json(st.vs_best.as_ref());
    row
}

/// Items in the order they are first seen, each once (benchmarks, routers, pool sizes of a
/// result set, in plan order).
pub fn first_seen<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

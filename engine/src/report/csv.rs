//! Long-format CSV: one line per evaluation with every field of the JSON row (nested ones
//! flattened: `error_kind`, `vs_best_on_train_diff`, ...), so that `pandas.read_csv(path)` with no
//! options gives numbers as float64, `m` as int64 and `self_reported` as bool. Missing values
//! are empty fields (NaN in pandas).

use anyhow::Result;

use crate::eval::run::EvalResult;
use crate::eval::stats::Comparison;
use crate::report::analysis::{Analysis, RowStats};

/// The header, in column order.
pub const COLUMNS: [&str; 33] = [
    "router",
    "kind",
    "self_reported",
    "benchmark",
    "difficulty",
    "m",
    "group",
    "mu",
    "ci_low",
    "ci_high",
    "vr",
    "vb",
    "ep",
    "status",
    "error_kind",
    "error_message",
    "vs_best_on_train",
    "vs_best_on_train_diff",
    "vs_best_on_train_ci_low",
    "vs_best_on_train_ci_high",
    "vs_best_on_train_p_value",
    "vs_best_on_train_test",
    "best_router",
    "vs_best_diff",
    "vs_best_ci_low",
    "vs_best_ci_high",
    "vs_best_p_value",
    "vs_best_test",
    "level",
    "replicates",
    "seconds",
    "fuel",
    "log",
];

fn num(x: Option<f64>) -> String {
    // Rust's shortest representation that reads back to the same f64.
    x.filter(|v| v.is_finite())
        .map_or_else(String::new, |v| format!("{v:?}"))
}

fn comparison(c: Option<&Comparison>) -> [String; 6] {
    match c {
        None => Default::default(),
        Some(c) => [
            c.against.clone(),
            num(Some(c.diff)),
            num(Some(c.ci_low)),
            num(Some(c.ci_high)),
            num(Some(c.p_value)),
            c.test.as_str().to_string(),
        ],
    }
}

fn record(r: &EvalResult, st: &RowStats, a: &Analysis) -> Vec<String> {
    let m = r.metrics();
    let mut out = vec![
        r.router.clone(),
        r.kind.to_string(),
        if r.self_reported { "True" } else { "False" }.to_string(),
        r.benchmark.clone(),
        r.difficulty.to_string(),
        r.m.to_string(),
        r.group.clone(),
        num(m.map(|m| m.mu)),
        num(st.ci.map(|c| c.0)),
        num(st.ci.map(|c| c.1)),
        num(m.and_then(|m| m.vr)),
        num(m.and_then(|m| m.vb)),
        num(m.map(|m| m.ep)),
        if r.is_ok() { "ok" } else { "failed" }.to_string(),
        r.error().map_or_else(String::new, |e| e.kind.to_string()),
        r.error().map_or_else(String::new, |e| e.message.clone()),
    ];
    out.extend(comparison(st.vs_best_on_train.as_ref()));
    out.extend(comparison(st.vs_best.as_ref()));
    out.extend([
        num(Some(a.config.level)),
        a.config.replicates.to_string(),
        num(Some(r.seconds)),
        r.fuel.map_or_else(String::new, |f| f.to_string()),
        r.log.clone().unwrap_or_default(),
    ]);
    out
}

/// The rows as CSV, with a header line.
///
/// # Errors
/// Only when writing to memory fails.
pub fn to_csv(results: &[EvalResult], analysis: &Analysis) -> Result<String> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for (r, st) in results.iter().zip(&analysis.rows) {
        let rec = record(r, st, analysis);
        debug_assert_eq!(rec.len(), COLUMNS.len());
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(
        w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?)
}

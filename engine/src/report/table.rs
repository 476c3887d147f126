//! The terminal table: paper-style, one block per benchmark.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::data::Difficulty;
use crate::eval::metrics::{self, Metrics};
use crate::eval::run::EvalResult;

fn fmt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// A paper-style table: one block per benchmark, one row per router (bounds last, marked), and
/// for each pool size the columns mu, V_R, V_B, Ep, each the mean over the pool's groups. A cell
/// with a failed group shows `failed`; the failures are listed after the table.
pub fn to_table(results: &[EvalResult]) -> String {
    // What plugins and files supply is escaped once, before any width is measured.
    let results: Vec<EvalResult> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.router = crate::util::terminal_safe(&r.router).into_owned();
            r.benchmark = crate::util::terminal_safe(&r.benchmark).into_owned();
            r.group = crate::util::terminal_safe(&r.group).into_owned();
            if let Err(e) = &mut r.outcome {
                // Multi-line messages (backtraces, a program's stderr) keep their lines,
                // indented under their failure so none can pass for a row of the table.
                e.message =
                    crate::util::terminal_safe_keeping(&e.message, true).replace('\n', "\n      ");
            }
            r
        })
        .collect();
    let results = results.as_slice();
    let mut out = String::new();
    // Benchmarks in first-seen order.
    let mut benches: Vec<&str> = Vec::new();
    for r in results {
        if !benches.contains(&r.benchmark.as_str()) {
            benches.push(&r.benchmark);
        }
    }
    for bench in benches {
        let rs: Vec<&EvalResult> = results.iter().filter(|r| r.benchmark == bench).collect();
        let mut cols: Vec<(Difficulty, usize)> = rs.iter().map(|r| (r.difficulty, r.m)).collect();
        cols.sort();
        cols.dedup();
        let mut rows: Vec<(&str, bool)> = Vec::new();
        let mut self_reported: Vec<&str> = Vec::new();
        for r in &rs {
            if !rows.iter().any(|(n, _)| *n == r.router) {
                rows.push((&r.router, r.is_bound()));
            }
            if r.self_reported && !self_reported.contains(&r.router.as_str()) {
                self_reported.push(&r.router);
            }
        }
        rows.sort_by_key(|&(_, b)| b); // stable: routers first, then bounds, each in given order
        // groups per column, for the footnote
        let mut groups: BTreeMap<(Difficulty, usize), Vec<&str>> = BTreeMap::new();
        for r in &rs {
            let g = groups.entry((r.difficulty, r.m)).or_default();
            if !g.contains(&r.group.as_str()) {
                g.push(&r.group);
            }
        }
        let no_ref = rs
            .iter()
            .all(|r| r.metrics().is_none_or(|m| m.vr.is_none()));
        let _ = writeln!(
            out,
            "{bench}{}",
            if no_ref {
                " (no reference accuracy: V_R not defined)"
            } else {
                ""
            }
        );
        let name_w = rows
            .iter()
            .map(|(n, b)| {
                n.len() + if *b { 8 } else { 0 } + if self_reported.contains(n) { 2 } else { 0 }
            })
            .max()
            .unwrap_or(6)
            .max(6);
        let cell_w = 4 * 6 + 3;
        let mut head = format!("{:name_w$}", "");
        let mut sub = format!("{:name_w$}", "router");
        for (d, m) in &cols {
            let _ = write!(head, " | {:<cell_w$}", format!("{d} m={m}"));
            let _ = write!(sub, " | {:>6} {:>6} {:>6} {:>6}", "mu", "V_R", "V_B", "Ep");
        }
        let _ = writeln!(out, "{}", head.trim_end());
        let _ = writeln!(out, "{sub}");
        let _ = writeln!(out, "{}", "-".repeat(sub.len()));
        let mut bound_rule_done = false;
        for (name, is_bound) in &rows {
            if *is_bound && !bound_rule_done && rows.iter().any(|(_, b)| !b) {
                let _ = writeln!(out, "{}", "-".repeat(sub.len()));
                bound_rule_done = true;
            }
            let shown = if *is_bound {
                format!("{name} (bound)")
            } else if self_reported.contains(name) {
                format!("{name} *")
            } else {
                name.to_string()
            };
            let mut line = format!("{shown:name_w$}");
            for &(d, m) in &cols {
                let cell: Vec<&EvalResult> = rs
                    .iter()
                    .copied()
                    .filter(|r| r.router == *name && r.difficulty == d && r.m == m)
                    .collect();
                if cell.is_empty() {
                    let _ = write!(line, " | {:>cell_w$}", "");
                } else if cell.iter().any(|r| !r.is_ok()) {
                    let _ = write!(line, " | {:>cell_w$}", "failed");
                } else {
                    let ms: Vec<Metrics> =
                        cell.iter().filter_map(|r| r.metrics().copied()).collect();
                    let a = metrics::mean(&ms).expect("non-empty cell");
                    let _ = write!(
                        line,
                        " | {:>6} {:>6} {:>6} {:>6}",
                        fmt(Some(a.mu)),
                        fmt(a.vr),
                        fmt(a.vb),
                        fmt(Some(a.ep))
                    );
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let notes: Vec<String> = groups
            .iter()
            .map(|((d, m), g)| format!("{d} m={m}: {}", g.join(", ")))
            .collect();
        let _ = writeln!(out, "cells average the groups: {}", notes.join("; "));
        if !self_reported.is_empty() {
            let _ = writeln!(
                out,
                "* self-reported: mu, V_B and Ep as the router printed them (V_R = mu / acc_ref); \
                 the engine did not compute them and cannot vouch for them"
            );
        }
        let failures: Vec<&&EvalResult> = rs.iter().filter(|r| !r.is_ok()).collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "failed evaluations:");
            for r in failures {
                if let Some(e) = r.error() {
                    let _ = writeln!(out, "  [{}] {}", e.kind, e.message);
                }
            }
        }
        out.push('\n');
    }
    out
}

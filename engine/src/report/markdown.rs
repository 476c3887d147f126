//! Paper-style markdown: per benchmark, one table per pool size (mu with its interval, V_R, V_B,
//! Ep, and the difference against `best-on-train` with its paired interval; the best router of
//! each table in bold; bounds after the routers), then the cross-benchmark summary (per pool
//! size, the mean over benchmarks, as the paper's summary rows) with the interval of that mean.

use std::fmt::Write as _;

use crate::data::Difficulty;
use crate::eval::metrics::{self, Metrics};
use crate::eval::run::EvalResult;
use crate::report::analysis::{Analysis, REFERENCE_ROUTER};
use crate::report::first_seen;

/// Text from files and plugins, made inert in a markdown table.
fn esc(s: &str) -> String {
    let s = crate::util::terminal_safe(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn f4(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
}

fn ci(x: Option<(f64, f64)>) -> String {
    x.map_or_else(|| "–".to_string(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]"))
}

fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{v:.4}")
    } else {
        format!("−{:.4}", -v)
    }
}

/// One table cell: the rows of one router in one (benchmark, pool size), over the groups.
struct Cell {
    rows: Vec<usize>,
    failed: bool,
    metrics: Option<Metrics>,
}

fn cell(results: &[EvalResult], bench: &str, col: (Difficulty, usize), router: &str) -> Cell {
    let rows: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.benchmark == bench && (r.difficulty, r.m) == col && r.router == router)
        .map(|(i, _)| i)
        .collect();
    let failed = rows.iter().any(|&i| !results[i].is_ok());
    let ms: Vec<Metrics> = rows
        .iter()
        .filter_map(|&i| results[i].metrics().copied())
        .collect();
    Cell {
        metrics: if failed { None } else { metrics::mean(&ms) },
        rows,
        failed,
    }
}

/// The rows of the reference router paired with `rows` (same pool each), when all exist.
fn reference_pairs(results: &[EvalResult], rows: &[usize]) -> Option<Vec<(usize, usize)>> {
    rows.iter()
        .map(|&i| {
            let r = &results[i];
            results
                .iter()
                .position(|o| {
                    o.router == REFERENCE_ROUTER
                        && o.benchmark == r.benchmark
                        && o.difficulty == r.difficulty
                        && o.m == r.m
                        && o.group == r.group
                        && o.is_ok()
                })
                .map(|j| (i, j))
        })
        .collect()
}

/// The markdown report.
pub fn to_markdown(results: &[EvalResult], a: &Analysis) -> String {
    let mut out = String::new();
    let benches = first_seen(results.iter().map(|r| r.benchmark.clone()));
    let routers = {
        let mut rs = first_seen(results.iter().map(|r| (r.router.clone(), r.is_bound())));
        rs.sort_by_key(|&(_, b)| b); // routers first, then bounds, each in row order
        rs
    };
    let self_reported = first_seen(
        results
            .iter()
            .filter(|r| r.self_reported)
            .map(|r| r.router.clone()),
    );
    let has_reference = results.iter().any(|r| r.router == REFERENCE_ROUTER);
    let level = format!("{:.0}%", a.config.level * 100.0);
    let _ = writeln!(out, "# Results\n");
    let _ = write!(
        out,
        "{} evaluations on {} benchmark{}. **mu** with its {level} interval (percentile \
         bootstrap over the test queries, {} resamples, seed {}); a cell averages the pool's \
         groups, and its interval is that of the average. **Bold**: the best router of the \
         table.",
        results.len(),
        benches.len(),
        if benches.len() == 1 { "" } else { "s" },
        a.config.replicates,
        a.config.seed
    );
    if has_reference {
        let _ = write!(
            out,
            " **Δ**: mu minus `{REFERENCE_ROUTER}`'s on the same queries, with its paired \
             bootstrap interval; † when the interval excludes 0 (per-pool p-values, from the \
             paired sign-flip test, exact McNemar for 0/1 scores, are in the JSON and CSV)."
        );
    }
    out.push_str("\n\n");
    let columns = |rows: &mut dyn Iterator<Item = &EvalResult>| {
        let mut c = first_seen(rows.map(|r| (r.difficulty, r.m)));
        c.sort();
        c
    };
    for bench in &benches {
        let rs: Vec<&EvalResult> = results.iter().filter(|r| &r.benchmark == bench).collect();
        let _ = writeln!(out, "## {}\n", esc(bench));
        for col in columns(&mut rs.iter().copied()) {
            let groups = first_seen(
                rs.iter()
                    .filter(|r| (r.difficulty, r.m) == col)
                    .map(|r| esc(&r.group)),
            );
            let _ = writeln!(
                out,
                "### {}, m = {} ({})\n",
                col.0,
                col.1,
                groups.join(", ")
            );
            table_header(&mut out, &level, has_reference, false);
            let cells: Vec<(&(String, bool), Cell)> = routers
                .iter()
                .map(|r| (r, cell(results, bench, col, &r.0)))
                .filter(|(_, c)| !c.rows.is_empty())
                .collect();
            let best = cells
                .iter()
                .filter(|((_, bound), c)| !bound && c.metrics.is_some())
                .map(|(_, c)| c.metrics.map_or(f64::NEG_INFINITY, |m| m.mu))
                .fold(f64::NEG_INFINITY, f64::max);
            for ((name, bound), c) in &cells {
                let is_best = !bound && c.metrics.is_some_and(|m| m.mu == best);
                let mut shown = esc(name);
                if self_reported.contains(name) {
                    shown.push_str(" \\*");
                }
                if *bound {
                    shown = format!("*{shown} (bound)*");
                }
                if is_best {
                    shown = format!("**{shown}**");
                }
                let delta = if !has_reference || *bound || c.metrics.is_none() {
                    String::new()
                } else if name == REFERENCE_ROUTER {
                    "(reference)".to_string()
                } else {
                    match reference_pairs(results, &c.rows) {
                        Some(pairs) => {
                            let ra: Vec<usize> = pairs.iter().map(|p| p.1).collect();
                            let (Some(m), Some(mref)) = (c.metrics, mean_mu(results, &ra)) else {
                                unreachable!("ok cells");
                            };
                            match a.mean_diff_interval(&pairs) {
                                Some((lo, hi)) => format!(
                                    "{} [{}, {}]{}",
                                    signed(m.mu - mref),
                                    signed(lo),
                                    signed(hi),
                                    if lo > 0.0 || hi < 0.0 { " †" } else { "" }
                                ),
                                None => signed(m.mu - mref),
                            }
                        }
                        None => "–".to_string(),
                    }
                };
                row_line(
                    &mut out,
                    &shown,
                    c,
                    is_best,
                    a.mean_interval(&c.rows),
                    has_reference.then_some(delta),
                );
            }
            out.push('\n');
        }
        let failures: Vec<&&EvalResult> = rs.iter().filter(|r| !r.is_ok()).collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "Failed evaluations:\n");
            for r in failures {
                if let Some(e) = r.error() {
                    let _ = writeln!(out, "- `{}`: {}", e.kind, esc(&e.message));
                }
            }
            out.push('\n');
        }
    }
    if !self_reported.is_empty() {
        let _ = writeln!(
            out,
            "\\* self-reported: mu, V_B and Ep as the router printed them; the engine did not \
             compute them and cannot vouch for them.\n"
        );
    }
    summary(&mut out, results, a, &benches, &routers, &level);
    out
}

fn mean_mu(results: &[EvalResult], rows: &[usize]) -> Option<f64> {
    let ms: Vec<Metrics> = rows
        .iter()
        .filter_map(|&i| results[i].metrics().copied())
        .collect();
    (ms.len() == rows.len())
        .then(|| metrics::mean(&ms))
        .flatten()
        .map(|m| m.mu)
}

fn table_header(out: &mut String, level: &str, delta: bool, summary: bool) {
    let _ = write!(out, "| router | mu | {level} CI | V_R | V_B | Ep |");
    if delta {
        let _ = write!(out, " Δ mu vs {REFERENCE_ROUTER} |");
    }
    if summary {
        out.push_str(" benchmarks |");
    }
    out.push('\n');
    out.push_str("|:--|--:|:--|--:|--:|--:|");
    if delta {
        out.push_str(":--|");
    }
    if summary {
        out.push_str("--:|");
    }
    out.push('\n');
}

fn row_line(
    out: &mut String,
    shown: &str,
    c: &Cell,
    is_best: bool,
    interval: Option<(f64, f64)>,
    delta: Option<String>,
) {
    let mu = if c.failed {
        "failed".to_string()
    } else {
        let v = f4(c.metrics.map(|m| m.mu));
        if is_best { format!("**{v}**") } else { v }
    };
    let m = c.metrics;
    let _ = write!(
        out,
        "| {shown} | {mu} | {} | {} | {} | {} |",
        if c.failed {
            String::new()
        } else {
            ci(interval)
        },
        f4(m.and_then(|m| m.vr)),
        f4(m.and_then(|m| m.vb)),
        f4(m.map(|m| m.ep)),
    );
    if let Some(d) = delta {
        let _ = write!(out, " {d} |");
    }
    out.push('\n');
}

/// The mean over benchmarks per pool size: a router's value in a benchmark is its cell (the
/// mean over groups); the summary is the mean of those cells over the benchmarks where the
/// router has an ok cell of that size, and its interval the bootstrap of that mean.
fn summary(
    out: &mut String,
    results: &[EvalResult],
    a: &Analysis,
    benches: &[String],
    routers: &[(String, bool)],
    level: &str,
) {
    let mut cols = first_seen(results.iter().map(|r| (r.difficulty, r.m)));
    cols.sort();
    let _ = writeln!(
        out,
        "## Mean over benchmarks\n\nEach value is the mean over the benchmarks with that pool \
         size of the cells above; the interval is that of the mean (the benchmarks' test sets \
         resampled independently).\n"
    );
    for col in cols {
        let with_col: Vec<&String> = benches
            .iter()
            .filter(|b| {
                results
                    .iter()
                    .any(|r| &r.benchmark == *b && (r.difficulty, r.m) == col)
            })
            .collect();
        let _ = writeln!(out, "### {}, m = {}\n", col.0, col.1);
        table_header(out, level, false, true);
        // (router, is a bound, its mean cell, the mean's interval, benchmarks averaged)
        type Line = (String, bool, Cell, Option<(f64, f64)>, usize);
        let mut lines: Vec<Line> = Vec::new();
        for (name, bound) in routers {
            let cells: Vec<Cell> = with_col
                .iter()
                .map(|b| cell(results, b, col, name))
                .filter(|c| !c.rows.is_empty())
                .collect();
            if cells.is_empty() {
                continue;
            }
            let ok: Vec<&Cell> = cells.iter().filter(|c| c.metrics.is_some()).collect();
            let ms: Vec<Metrics> = ok.iter().filter_map(|c| c.metrics).collect();
            let nested: Vec<Vec<usize>> = ok.iter().map(|c| c.rows.clone()).collect();
            let merged = Cell {
                rows: Vec::new(),
                failed: ok.is_empty(),
                metrics: metrics::mean(&ms),
            };
            lines.push((
                name.clone(),
                *bound,
                merged,
                a.mean_of_means_interval(&nested),
                ok.len(),
            ));
        }
        let best = lines
            .iter()
            .filter(|l| !l.1)
            .filter_map(|l| l.2.metrics.map(|m| m.mu))
            .fold(f64::NEG_INFINITY, f64::max);
        for (name, bound, c, interval, n) in &lines {
            let is_best = !bound && c.metrics.is_some_and(|m| m.mu == best);
            let mut shown = esc(name);
            if *bound {
                shown = format!("*{shown} (bound)*");
            }
            if is_best {
                shown = format!("**{shown}**");
            }
            row_line(out, &shown, c, is_best, *interval, None);
            out.pop();
            let _ = writeln!(out, " {n} of {} |", with_col.len());
        }
        out.push('\n');
    }
}

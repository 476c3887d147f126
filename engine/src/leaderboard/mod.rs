//! The leaderboard: strangers' routers, as WebAssembly components, scored in the sandbox on
//! test labels they never see, kept in a SQLite database.
//!
//! **Invariant**: a submission's numbers come only from [`score::Board::score`], which runs the
//! component under the leaderboard's policy and computes every metric in the engine; a
//! submission is recorded with all its results in one transaction, or not at all.
//!
//! - [`config`]: `configs/leaderboard.toml`, read once at `init` and kept in the database.
//! - [`db`]: the schema, migrations, reads and writes.
//! - [`intake`]: what a submission must be (component, size, name, parameters).
//! - [`score`]: the public/private split, and scoring one component on every pool.
//! - [`rank`]: the ranking, with neighbour significance.
//! - [`html`]: the pages (exported and served).
//! - [`server`]: the HTTP server and its queue worker.

pub mod config;
pub mod db;
pub mod html;
pub mod intake;
pub mod rank;
pub mod score;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use routereval_sdk::Params;
use serde_json::{Value as Json, json};

use crate::leaderboard::config::BoardConfig;
use crate::leaderboard::db::{DatasetRecord, Db, PoolRecord, ResultRow, Submission};
use crate::leaderboard::rank::Ranking;
use crate::leaderboard::score::{Board, Part, Scoring};
use crate::plugin::wasm::WasmHost;

/// Makes the leaderboard at `db_path` from `config`: loads the datasets, records their sha256,
/// the pools the configuration selects, the seeded public/private split of each test set and
/// the reference bounds. Returns the board.
///
/// # Errors
/// The datasets cannot be loaded, a benchmark appears twice, no pool is selected, or the file
/// exists.
pub fn init(db_path: &Path, config: &BoardConfig) -> Result<(Db, Board)> {
    if db_path.exists() {
        bail!(
            "`{}` already exists; a leaderboard is made once (remove the file to start over)",
            db_path.display()
        );
    }
    let mut datasets = Vec::new();
    if config.data.datasets.is_empty() {
        datasets.push(crate::data::embedded::default_dataset()?);
    }
    for p in &config.data.datasets {
        datasets.extend(crate::data::load::load_path(p)?);
    }
    let sha = crate::data::inspect::dataset_checksums(&datasets)?;
    let sel = config.pools.selection();
    let mut records = Vec::new();
    let mut pools = Vec::new();
    for (ds, sha) in datasets.iter().zip(sha) {
        if records
            .iter()
            .any(|r: &DatasetRecord| r.benchmark == ds.benchmark)
        {
            bail!(
                "benchmark `{}` is given twice; give each dataset once",
                ds.benchmark
            );
        }
        let source = if ds.source.starts_with("embedded:") {
            ds.source.clone()
        } else {
            std::fs::canonicalize(&ds.source)
                .map_or_else(|_| ds.source.clone(), |p| p.display().to_string())
        };
        records.push(DatasetRecord {
            benchmark: ds.benchmark.clone(),
            source,
            sha256: sha,
            test_rows: ds.test.len(),
            public_rows: score::public_rows(
                ds.test.len(),
                config.split.public_fraction,
                config.split.seed,
                &ds.benchmark,
            ),
        });
        for p in ds.pools.iter().filter(|p| sel.accepts(p)) {
            pools.push(PoolRecord {
                id: pools.len() as i64 + 1,
                benchmark: ds.benchmark.clone(),
                difficulty: p.difficulty.as_str().to_string(),
                m: p.m(),
                group: p.group.clone(),
            });
        }
    }
    if pools.is_empty() {
        bail!(
            "the [pools] selection matches no pool of the datasets; `routereval-engine inspect \
             FILE` lists them"
        );
    }
    let board = Board::load(config.clone(), records.clone(), pools.clone())?;
    let db = Db::create(db_path, config, &records, &pools, &board.bounds())?;
    Ok((db, board))
}

/// The sha256 a token's secret is stored as.
pub fn token_hash(secret: &str) -> String {
    crate::util::sha256_hex(secret.as_bytes())
}

/// A new token secret: 32 random bytes from the OS, hex, prefixed `rlb_`.
///
/// # Errors
/// The OS has no randomness to give.
pub fn new_token_secret() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(format!("rlb_{}", crate::util::hex(&b)))
}

/// A WebAssembly host under the leaderboard's policy.
///
/// # Errors
/// The policy is unusable.
pub fn host(config: &BoardConfig) -> Result<Arc<WasmHost>> {
    WasmHost::new(
        config.sandbox.clone(),
        crate::plugin::wasm::default_cache_dir(),
    )
}

/// Scores `component` with `params` (canonical spec) on `board`: the bytes go to a private
/// temporary file for the loader, removed afterwards. `on_pool` hears of each pool as it ends.
///
/// # Errors
/// The temporary file cannot be written, or the parameters do not parse.
pub fn score_bytes(
    board: &Board,
    host: &Arc<WasmHost>,
    component: &[u8],
    params: &str,
    on_pool: &(dyn Fn(&PoolRecord, &score::PoolScore) + Sync),
) -> Result<Scoring> {
    let params = Params::parse(params, board.config.seed)
        .map_err(|e| anyhow::anyhow!("stored parameters `{params}`: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "routereval-leaderboard-{}-{}",
        std::process::id(),
        crate::util::sha256_hex(component)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make `{}`", dir.display()))?;
    let path = dir.join("submission.wasm");
    let written = std::fs::write(&path, component)
        .with_context(|| format!("cannot write `{}`", path.display()));
    let scoring = written.map(|()| board.score(host, &path, &params, on_pool));
    let _ = std::fs::remove_dir_all(&dir);
    scoring
}

/// Loads the board a database is bound to (checking every dataset's sha256).
///
/// # Errors
/// A dataset is missing or changed.
pub fn load_board(db: &Db) -> Result<Board> {
    Board::load(db.config()?, db.datasets()?, db.pools()?)
}

/// A progress line for one finished pool: `llmrouter easy m=3 all_weak: mu 0.4512 (public),
/// 1.2 s` or its failure kind.
pub fn pool_line(rec: &PoolRecord, p: &score::PoolScore) -> String {
    match &p.outcome {
        Ok((public, _, _)) => format!(
            "{}: mu {:.4} (public), {:.1} s",
            rec.label(),
            public.mu,
            p.seconds
        ),
        Err(f) => format!(
            "{}: failed ({}), {:.1} s",
            rec.label(),
            f.kind.as_str(),
            p.seconds
        ),
    }
}

/// One number that differs between a stored scoring and a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Where: `gsm8k easy m=3 all_strong public vb`, `status`, `fuel`.
    pub what: String,
    /// Stored.
    pub before: String,
    /// Now.
    pub after: String,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("none".into(), |v| format!("{v}"))
}

/// The differences between `stored` (a submission's rows) and a new scoring: status, failure
/// kinds, fuel, every metric and interval of every pool and part, and the per-query scores.
/// Times are not compared.
pub fn compare(
    pools: &[PoolRecord],
    stored: &Submission,
    rows: &[ResultRow],
    s: &Scoring,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut diff = |what: String, before: String, after: String| {
        if before != after {
            out.push(Change {
                what,
                before,
                after,
            });
        }
    };
    let kinds = s.error_kinds().join(",");
    let status = if kinds.is_empty() { "scored" } else { "failed" };
    diff("status".into(), stored.status.clone(), status.into());
    diff(
        "failure kinds".into(),
        stored.error_kinds.clone().unwrap_or_default(),
        kinds,
    );
    diff(
        "fuel".into(),
        format!("{:?}", stored.fuel),
        format!("{:?}", s.fuel().map(|f| f as i64)),
    );
    for p in &s.pools {
        let label = pools
            .iter()
            .find(|r| r.id == p.pool)
            .map_or_else(|| p.pool.to_string(), PoolRecord::label);
        let Some(row) = rows.iter().find(|r| r.pool == p.pool) else {
            diff(label, "missing".into(), "present".into());
            continue;
        };
        diff(
            format!("{label} fuel"),
            format!("{:?}", row.fuel),
            format!("{:?}", p.fuel.map(|f| f as i64)),
        );
        match &p.outcome {
            Err(f) => diff(
                format!("{label} failure"),
                row.error_kind.clone().unwrap_or_else(|| "none".into()),
                f.kind.as_str().into(),
            ),
            Ok((public, private, scores)) => {
                diff(
                    format!("{label} failure"),
                    row.error_kind.clone().unwrap_or_else(|| "none".into()),
                    "none".into(),
                );
                for (part, new) in [(Part::Public, public), (Part::Private, private)] {
                    let old = row.part(part);
                    let name = |m: &str| format!("{label} {} {m}", part.as_str());
                    diff(
                        name("mu"),
                        fmt_opt(old.map(|o| o.mu)),
                        fmt_opt(Some(new.mu)),
                    );
                    diff(
                        name("V_R"),
                        fmt_opt(old.and_then(|o| o.vr)),
                        fmt_opt(new.vr),
                    );
                    diff(
                        name("V_B"),
                        fmt_opt(old.and_then(|o| o.vb)),
                        fmt_opt(new.vb),
                    );
                    diff(
                        name("Ep"),
                        fmt_opt(old.map(|o| o.ep)),
                        fmt_opt(Some(new.ep)),
                    );
                    diff(
                        name("mu interval"),
                        format!("{:?}", old.and_then(|o| o.mu_ci)),
                        format!("{:?}", new.mu_ci),
                    );
                }
                let same = row.scores.as_ref().is_some_and(|old| {
                    old.len() == scores.len()
                        && old
                            .iter()
                            .zip(scores)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                });
                if !same {
                    diff(
                        format!("{label} per-query scores"),
                        "stored".into(),
                        "different".into(),
                    );
                }
            }
        }
    }
    out
}

/// The ranking as JSON (`export --json`, `/api/leaderboard`).
pub fn ranking_json(r: &Ranking) -> Json {
    let entry = |e: &rank::Entry| {
        json!({
            "rank": e.rank,
            "submission": submission_json(&e.submission, r.part == Part::Private),
            "mean_vb": e.mean_vb,
            "mean_vb_ci": e.mean_vb_ci,
            "per_benchmark": r.benchmarks.iter().zip(&e.per_benchmark)
                .map(|(b, v)| (b.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "p_vs_next": e.p_vs_next,
            "differs_from_next": e.differs_from_next(),
            "pools": e.results.iter().map(|res| {
                let pool = r.pools.iter().find(|p| p.id == res.pool);
                json!({
                    "pool": pool.map(PoolRecord::label),
                    "metrics": res.part(r.part),
                    "fuel": res.fuel,
                    "seconds": res.seconds,
                    "error_kind": res.error_kind,
                    "error": res.error,
                })
            }).collect::<Vec<_>>(),
        })
    };
    json!({
        "title": r.title,
        "part": r.part.as_str(),
        "revealed": r.revealed,
        "ranked_by": "mean V_B over the pools, ties by fuel (less first)",
        "benchmarks": r.benchmarks,
        "test_queries": r.benchmarks.iter().zip(&r.part_rows)
            .map(|(b, n)| (b.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "pools": r.pools.iter().map(PoolRecord::label).collect::<Vec<_>>(),
        "entries": r.entries.iter().map(entry).collect::<Vec<_>>(),
        "failed": r.failed.iter().map(entry).collect::<Vec<_>>(),
        "pending": r.pending.iter().map(|s| submission_json(s, false)).collect::<Vec<_>>(),
        "bounds": r.bounds,
    })
}

/// One submission as JSON; the private mean only when `private`.
pub fn submission_json(s: &Submission, private: bool) -> Json {
    let mut j = json!({
        "id": s.id,
        "name": s.name,
        "author": s.author,
        "params": s.params,
        "sha256": s.sha256,
        "size": s.size,
        "status": s.status,
        "submitted_at": s.submitted_at,
        "scored_at": s.scored_at,
        "router_name": s.router_name,
        "abi": s.abi,
        "sdk_version": s.sdk_version,
        "fuel": s.fuel,
        "seconds": s.seconds,
        "error_kinds": s.error_kinds.as_deref().map(|k| k.split(',').collect::<Vec<_>>()),
        "error": s.error,
        "mean_vb_public": s.vb_public,
    });
    if private {
        j["mean_vb_private"] = json!(s.vb_private);
    }
    j
}

//! Scoring one submission: the component runs on every pool of the leaderboard under its
//! sandbox policy, sees the training and validation splits and the test queries (all of them,
//! never which are public), and the engine scores its routing on the public and the private part
//! of each test set separately, with bootstrap intervals.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use routereval_kernels::Rng;
use routereval_sdk::Params;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::data::{Matrix, Pool, RouterDataset};
use crate::eval::contestant::Job;
use crate::eval::metrics::{self, Metrics};
use crate::eval::outcome::Answer;
use crate::eval::stats::{Resampler, derive_seed, interval};
use crate::failure::{Failure, FailureKind};
use crate::leaderboard::config::BoardConfig;
use crate::plugin::wasm::{WasmHost, WasmPlugin};

/// One dataset the leaderboard is bound to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetRecord {
    /// Its benchmark.
    pub benchmark: String,
    /// The absolute path, or `embedded:llmrouter`.
    pub source: String,
    /// The file's sha256.
    pub sha256: String,
    /// Test queries.
    pub test_rows: usize,
    /// The public part of the test set (sorted row indices).
    #[serde(skip)]
    pub public_rows: Vec<u32>,
}

/// One pool of the leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolRecord {
    /// Its id.
    pub id: i64,
    /// Its benchmark.
    pub benchmark: String,
    /// `easy` or `hard`.
    pub difficulty: String,
    /// Candidates.
    pub m: usize,
    /// Group.
    pub group: String,
}

impl PoolRecord {
    /// `gsm8k easy m=3 all_strong`.
    pub fn label(&self) -> String {
        format!(
            "{} {} m={} {}",
            self.benchmark, self.difficulty, self.m, self.group
        )
    }
}

/// The two parts of every test set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Shown to everyone.
    Public,
    /// Revealed when the maintainer says so.
    Private,
}

impl Part {
    /// `public` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Public => "public",
            Part::Private => "private",
        }
    }
}

/// The public rows of a test set of `n` queries: a seeded shuffle, the first
/// `round(n * fraction)` (at least one, and at least one left private when `n >= 2`), sorted.
pub fn public_rows(n: usize, fraction: f64, seed: u64, benchmark: &str) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = Rng::new(derive_seed(seed, &["leaderboard-split", benchmark]));
    // Fisher-Yates.
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let k = ((n as f64) * fraction).round() as usize;
    let k = k.clamp(usize::from(n > 0), n.saturating_sub(usize::from(n >= 2)));
    let mut public = order[..k].to_vec();
    public.sort_unstable();
    public
}

/// The test rows of `part`, sorted, for a test set of `n` queries whose public rows are
/// `public` (sorted): the public rows, or every other row.
pub fn part_rows(n: usize, public: &[u32], part: Part) -> Vec<usize> {
    match part {
        Part::Public => public
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| i < n)
            .collect(),
        Part::Private => {
            let mut next = public.iter().peekable();
            (0..n)
                .filter(|&i| {
                    while next.peek().is_some_and(|&&p| (p as usize) < i) {
                        next.next();
                    }
                    next.peek().is_none_or(|&&p| p as usize != i)
                })
                .collect()
        }
    }
}

/// The bootstrap resampling of one part of one benchmark's test set (`rows` queries): the same
/// seeds for every pool's intervals and for the ranking's interval of the mean, so they pair.
/// `None` when the statistics are off.
pub fn part_resampler(
    stats: &crate::eval::stats::StatsConfig,
    benchmark: &str,
    part: Part,
    rows: usize,
) -> Option<Resampler> {
    (stats.replicates > 0).then(|| {
        let seed = derive_seed(stats.seed, &[benchmark, part.as_str()]);
        Resampler::new(rows, stats.replicates, seed)
    })
}

/// The metrics of one part of one pool, with bootstrap intervals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartScore {
    /// Mean test score of the chosen candidates on the part.
    pub mu: f64,
    /// `mu / acc_ref`.
    pub vr: Option<f64>,
    /// `mu` over the best single model of the pool on the part.
    pub vb: Option<f64>,
    /// Mean belief entropy on the part, bits.
    pub ep: f64,
    /// Bootstrap interval of `mu`.
    pub mu_ci: Option<(f64, f64)>,
    /// The interval of `mu` over the best single model (that model held fixed).
    pub vb_ci: Option<(f64, f64)>,
}

/// What one pool gave.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolScore {
    /// The pool's id in the database.
    pub pool: i64,
    /// Public and private metrics and the per-query scores of the chosen candidates (every test
    /// row, in row order), or the failure.
    pub outcome: std::result::Result<(PartScore, PartScore, Vec<f64>), Failure>,
    /// Fuel the evaluation used.
    pub fuel: Option<u64>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// What the plugin logged (clipped by the sandbox).
    pub log: String,
}

/// A whole submission's scoring.
#[derive(Clone, Debug)]
pub struct Scoring {
    /// The name the component reports.
    pub router_name: String,
    /// The WIT package it implements (`routereval:router@1.1.0`).
    pub abi: String,
    /// The SDK version it reports.
    pub sdk_version: Option<String>,
    /// One per pool, in the leaderboard's pool order.
    pub pools: Vec<PoolScore>,
    /// Wall time of the whole scoring, seconds.
    pub seconds: f64,
    /// What produced the numbers (engine, SDK, datasets, policy, statistics).
    pub manifest: Json,
}

impl Scoring {
    /// The distinct failure kinds, sorted; empty when every pool scored.
    pub fn error_kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self
            .pools
            .iter()
            .filter_map(|p| p.outcome.as_ref().err().map(|f| f.kind.as_str()))
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    }

    /// The first failure's message.
    pub fn first_error(&self) -> Option<&str> {
        self.pools
            .iter()
            .find_map(|p| p.outcome.as_ref().err().map(|f| f.message.as_str()))
    }

    /// Total fuel over the pools (`None` when no pool reported any).
    pub fn fuel(&self) -> Option<u64> {
        let f: Vec<u64> = self.pools.iter().filter_map(|p| p.fuel).collect();
        (!f.is_empty()).then(|| f.iter().sum())
    }

    /// Mean V_B over the pools on `part`, when every pool scored; pools where V_B is undefined
    /// (every model scores 0 on the part) are left out, as the ranking does.
    pub fn mean_vb(&self, part: Part) -> Option<f64> {
        let mut v = Vec::new();
        for p in &self.pools {
            let (public, private, _) = p.outcome.as_ref().ok()?;
            v.extend(match part {
                Part::Public => public.vb,
                Part::Private => private.vb,
            });
        }
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// The leaderboard's data, loaded and checked against the recorded checksums, with its pools
/// and split.
#[derive(Debug)]
pub struct Board {
    /// The configuration stored at `init`.
    pub config: BoardConfig,
    /// The datasets, their pools narrowed to the leaderboard's (in its pool order).
    pub datasets: Vec<RouterDataset>,
    /// Each dataset's record (source, sha256, public rows).
    pub records: Vec<DatasetRecord>,
    /// The pools: (dataset index, pool index in it, record).
    pub pools: Vec<(usize, usize, PoolRecord)>,
    /// Per dataset, the test rows of the public and of the private part.
    parts: Vec<[Vec<usize>; 2]>,
    /// Per dataset, the resampling of each part (built once, shared by its pools).
    resamplers: Vec<[Option<Resampler>; 2]>,
}

const PARTS: [Part; 2] = [Part::Public, Part::Private];

/// Loads the dataset a record names and checks it is byte for byte the one recorded.
///
/// # Errors
/// The file is missing, changed, or no longer holds the benchmark.
pub fn load_recorded(rec: &DatasetRecord) -> Result<RouterDataset> {
    if rec.source.starts_with("embedded:") {
        let sha = crate::util::sha256_hex(crate::data::embedded::LLMROUTER_PICKLE);
        if sha != rec.sha256 {
            bail!(
                "the leaderboard was made with embedded data of sha256 {}, this engine embeds \
                 {sha}; score it with the engine version that made it",
                rec.sha256
            );
        }
        return crate::data::embedded::default_dataset();
    }
    let path = Path::new(&rec.source);
    let sha = crate::util::file_sha256(path).with_context(|| {
        format!(
            "cannot read dataset `{}` (benchmark {}), which the leaderboard is bound to; put \
             the file back where it was when the leaderboard was made",
            rec.source, rec.benchmark
        )
    })?;
    if sha != rec.sha256 {
        bail!(
            "dataset `{}` (benchmark {}) changed since the leaderboard was made: sha256 {} \
             recorded, {sha} now; a leaderboard is bound to its files (restore the file, or \
             make a new leaderboard)",
            rec.source,
            rec.benchmark,
            rec.sha256
        );
    }
    let all = crate::data::load::load_path(path)?;
    all.into_iter()
        .find(|d| d.benchmark == rec.benchmark)
        .with_context(|| {
            format!(
                "dataset `{}` no longer holds benchmark {}",
                rec.source, rec.benchmark
            )
        })
}

impl Board {
    /// The board of `config`, `records` and `pools` (as the database holds them).
    ///
    /// # Errors
    /// A dataset is missing or changed, or a recorded pool is no longer in it.
    pub fn load(
        config: BoardConfig,
        records: Vec<DatasetRecord>,
        pool_records: Vec<PoolRecord>,
    ) -> Result<Board> {
        let mut datasets: Vec<RouterDataset> = records
            .par_iter()
            .map(load_recorded)
            .collect::<Result<_>>()?;
        let mut pools = Vec::new();
        let mut kept: Vec<Vec<Pool>> = vec![Vec::new(); datasets.len()];
        for rec in pool_records {
            let d = records
                .iter()
                .position(|r| r.benchmark == rec.benchmark)
                .with_context(|| format!("pool {} names an unknown benchmark", rec.label()))?;
            let p = datasets[d]
                .pools
                .iter()
                .position(|p| {
                    p.difficulty.as_str() == rec.difficulty
                        && p.m() == rec.m
                        && p.group == rec.group
                })
                .with_context(|| format!("pool {} is not in its dataset any more", rec.label()))?;
            pools.push((d, kept[d].len(), rec));
            kept[d].push(datasets[d].pools[p].clone());
        }
        for (ds, k) in datasets.iter_mut().zip(kept) {
            ds.pools = k;
        }
        for (ds, rec) in datasets.iter().zip(&records) {
            if ds.test.len() != rec.test_rows {
                bail!(
                    "benchmark {} has {} test queries, the leaderboard recorded {}",
                    ds.benchmark,
                    ds.test.len(),
                    rec.test_rows
                );
            }
        }
        let parts: Vec<[Vec<usize>; 2]> = datasets
            .iter()
            .zip(&records)
            .map(|(ds, rec)| PARTS.map(|part| part_rows(ds.test.len(), &rec.public_rows, part)))
            .collect();
        let resamplers = datasets
            .iter()
            .zip(&parts)
            .map(|(ds, rows)| {
                [0, 1].map(|k| {
                    part_resampler(&config.statistics, &ds.benchmark, PARTS[k], rows[k].len())
                })
            })
            .collect();
        Ok(Board {
            config,
            datasets,
            records,
            pools,
            parts,
            resamplers,
        })
    }

    /// The manifest stored with each scoring.
    pub fn manifest(&self, params: &Params) -> Json {
        json!({
            "engine": crate::util::engine_json(),
            "sdk_version": routereval_sdk::SDK_VERSION,
            "wit": routereval_sdk::abi::WIT_PACKAGE,
            "seed": params.seed(),
            "datasets": self.records.iter().map(|r| json!({
                "benchmark": r.benchmark, "source": r.source, "sha256": r.sha256,
            })).collect::<Vec<_>>(),
            "pools": self.pools.iter().map(|(_, _, p)| p.label()).collect::<Vec<_>>(),
            "sandbox": serde_json::to_value(&self.config.sandbox).unwrap_or(Json::Null),
            "statistics": self.config.statistics,
            "split": serde_json::to_value(&self.config.split).unwrap_or(Json::Null),
            "cpu": crate::util::cpu_json(),
        })
    }

    /// Scores the component at `path` with `params` on every pool, in parallel on the current
    /// rayon pool; `on_pool` hears of each pool as it finishes (progress). The component's
    /// failures are in the scoring.
    pub fn score(
        &self,
        host: &Arc<WasmHost>,
        path: &Path,
        params: &Params,
        on_pool: &(dyn Fn(&PoolRecord, &PoolScore) + Sync),
    ) -> Scoring {
        let start = Instant::now();
        let plugin = match WasmPlugin::load(host, path) {
            Ok(p) => p,
            Err(e) => {
                let f = Failure::new(FailureKind::LoadError, format!("{e:#}"));
                return Scoring {
                    router_name: String::new(),
                    abi: String::new(),
                    sdk_version: None,
                    pools: self
                        .pools
                        .iter()
                        .map(|(_, _, rec)| PoolScore {
                            pool: rec.id,
                            outcome: Err(f.clone()),
                            fuel: None,
                            seconds: 0.0,
                            log: String::new(),
                        })
                        .collect(),
                    seconds: start.elapsed().as_secs_f64(),
                    manifest: self.manifest(params),
                };
            }
        };
        let provenance = crate::plugin::LoadedPlugin::provenance(&plugin);
        let pools: Vec<PoolScore> = self
            .pools
            .par_iter()
            .map(|(d, p, rec)| {
                let score = self.score_pool(&plugin, params, *d, *p, rec.id);
                on_pool(rec, &score);
                score
            })
            .collect();
        Scoring {
            router_name: plugin.name().to_string(),
            abi: provenance
                .get("abi")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            sdk_version: plugin.sdk_version().map(str::to_string),
            pools,
            seconds: start.elapsed().as_secs_f64(),
            manifest: self.manifest(params),
        }
    }

    fn score_pool(
        &self,
        plugin: &WasmPlugin,
        params: &Params,
        d: usize,
        p: usize,
        id: i64,
    ) -> PoolScore {
        let start = Instant::now();
        let ds = &self.datasets[d];
        let pool = &ds.pools[p];
        let job = Job { dataset: ds, pool };
        let attempt = match job.views() {
            Ok((train, val, test)) => plugin.evaluate(params, &train, &val, &test),
            Err(e) => crate::eval::outcome::Attempt::of(Err(Failure::from_router("prepare", &e))),
        };
        let outcome = attempt.answer.and_then(|answer| match answer {
            Answer::Routing(r) => {
                crate::eval::run::check_routing(&r, ds.test.len(), pool.m())?;
                Ok(self.part_scores(d, pool, r.belief(), r.choices()))
            }
            Answer::Metrics { .. } => Err(Failure::new(
                FailureKind::InvalidOutput,
                "a submission must return a routing, not metrics",
            )),
        });
        PoolScore {
            pool: id,
            outcome: outcome.map_err(|mut f| {
                // The sandbox's messages end with the command line's remedy ("raise it with
                // --fuel"); a submitter cannot raise a leaderboard's limits.
                if let Some(i) = f.message.find(" (raise it with --") {
                    let end = f.message[i..]
                        .find(')')
                        .map_or(f.message.len(), |j| i + j + 1);
                    f.message
                        .replace_range(i..end, " (the leaderboard's limit)");
                }
                f.within(&format!(
                    "{} {} m={} {}",
                    ds.benchmark,
                    pool.difficulty,
                    pool.m(),
                    pool.group
                ))
            }),
            fuel: attempt.fuel,
            seconds: start.elapsed().as_secs_f64(),
            log: attempt.log,
        }
    }

    /// The public and private metrics of a validated routing, and its per-query scores.
    fn part_scores(
        &self,
        d: usize,
        pool: &Pool,
        belief: &[f32],
        explicit: Option<&[u32]>,
    ) -> (PartScore, PartScore, Vec<f64>) {
        let ds = &self.datasets[d];
        let m = pool.m();
        let choices = metrics::choices(belief, m, explicit);
        let scores = metrics::per_query(&pool.test_scores, &choices);
        let part = |k: usize| -> PartScore {
            let rows = &self.parts[d][k];
            let sub_test = select_rows(&pool.test_scores, rows);
            let sub_belief: Vec<f32> = rows
                .iter()
                .flat_map(|&i| belief[i * m..(i + 1) * m].iter().copied())
                .collect();
            let sub_choices: Vec<u32> = rows.iter().map(|&i| choices[i] as u32).collect();
            let Metrics { mu, vr, vb, ep } =
                metrics::evaluate(&sub_test, ds.acc_ref, &sub_belief, Some(&sub_choices));
            let sub_scores: Vec<f64> = rows.iter().map(|&i| scores[i]).collect();
            let mu_ci = self.resamplers[d][k]
                .as_ref()
                .and_then(|r| interval(&r.means(&sub_scores), self.config.statistics.level));
            let best = metrics::best_single(&sub_test);
            let vb_ci =
                mu_ci.and_then(|(lo, hi)| Some((metrics::v_b(lo, best)?, metrics::v_b(hi, best)?)));
            PartScore {
                mu,
                vr,
                vb,
                ep,
                mu_ci,
                vb_ci,
            }
        };
        (part(0), part(1), scores)
    }

    /// The reference bounds (oracle, random) of every pool on both parts: `(pool id, bound,
    /// part, metrics)`.
    pub fn bounds(&self) -> Vec<(i64, &'static str, Part, Metrics)> {
        use crate::eval::bounds::Bound;
        let mut out = Vec::new();
        for (d, p, rec) in &self.pools {
            let ds = &self.datasets[*d];
            let pool = &ds.pools[*p];
            for (part, rows) in PARTS.into_iter().zip(&self.parts[*d]) {
                let sub = select_rows(&pool.test_scores, rows);
                for (name, b) in [("oracle", Bound::Oracle), ("random", Bound::Random)] {
                    out.push((rec.id, name, part, b.evaluate(&sub, ds.acc_ref)));
                }
                // The best single model on the part: V_B's denominator, which the ranking's
                // paired comparisons need to weigh each pool's per-query scores.
                let best = metrics::best_single(&sub);
                out.push((
                    rec.id,
                    BEST_SINGLE,
                    part,
                    Metrics {
                        mu: best,
                        vr: metrics::v_r(best, ds.acc_ref),
                        vb: metrics::v_b(best, best),
                        ep: 0.0,
                    },
                ));
            }
        }
        out
    }
}

/// The name the best single model's row has among the bounds.
pub const BEST_SINGLE: &str = "best-single";

/// The rows `rows` of `m`, in that order.
fn select_rows(m: &Matrix<f64>, rows: &[usize]) -> Matrix<f64> {
    let mut data = Vec::with_capacity(rows.len() * m.cols());
    for &i in rows {
        data.extend_from_slice(m.row(i));
    }
    Matrix::new(rows.len(), m.cols(), data)
}

#[cfg(test)]
mod tests {
    use super::{Part, part_rows, public_rows};

    #[test]
    fn the_parts_partition_the_test_set() {
        let public = public_rows(101, 0.3, 5, "b");
        let (a, b) = (
            part_rows(101, &public, Part::Public),
            part_rows(101, &public, Part::Private),
        );
        assert_eq!(a.len() + b.len(), 101);
        let mut all = [a, b].concat();
        all.sort_unstable();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
    }

    #[test]
    fn the_split_is_seeded_sized_and_disjoint() {
        let a = public_rows(1000, 0.5, 7, "gsm8k");
        assert_eq!(a.len(), 500);
        assert_eq!(a, public_rows(1000, 0.5, 7, "gsm8k"));
        assert_ne!(a, public_rows(1000, 0.5, 8, "gsm8k"));
        assert_ne!(a, public_rows(1000, 0.5, 7, "mmlu"));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 1000);
        assert_eq!(public_rows(3, 0.01, 0, "x").len(), 1);
        assert_eq!(public_rows(3, 0.99, 0, "x").len(), 2);
        assert!(public_rows(0, 0.5, 0, "x").is_empty());
    }
}

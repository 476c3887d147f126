//! `routereval-engine synth`: a synthetic benchmark suite with the shapes of RouterEval's twelve
//! benchmarks, for the pools the released data cannot give (m up to 1000 needs thousands of
//! leaderboard models) and for the scale benchmarks.
//!
//! **The population.** `models` LLMs (default 2,000) shared by every benchmark, as on a
//! leaderboard. Model `k` has a general ability `g_k ~ N(0, 1)`; on benchmark `b` an ability
//! `theta_kb = g_k + 0.5 z` (models are better at some benchmarks than others) and on each of the
//! benchmark's topics a skill `s_kbt = theta_kb + 0.5 z` (the structure a router exploits: which
//! model is good *here*).
//!
//! **The items.** Each benchmark has RouterEval's item count ([`SUITE`]), split into its
//! sub-benchmarks (MMLU's 57 subjects, BBH's 27 tasks, ...; the split is stratified by them).
//! Benchmarks with five or more sub-benchmarks use them as skill topics; the others get eight
//! latent topics. Item `i` has a difficulty `d_i = mu_b + 1.5 z`, a discrimination
//! `a_i = 2.5 exp(0.25 z)` and the benchmark's guessing floor `c_b` (0.25 for four choices, 0.5
//! for Winogrande, 0 for free-form answers): a logistic item-response model (3PL),
//! `P(model k answers i) = 0.9 (c_b + (1 - c_b) sigmoid(a_i (s_k,b,t(i) - d_i)))`. The score is
//! drawn as: the model knows the answer with probability `sigmoid(...)`; if not, it guesses, and
//! most guesses (80%) land on the item's one attractive answer, right with probability `c_b`, so
//! models that do not know fail together, as real ones do ([`SHARED_GUESS`]); and 10% of answers
//! slip ([`SLIP`]), so a weak model sometimes beats a strong one. These two were tuned so that
//! pools gain from routing about as much as real ones do: three models at 0.55 reach an oracle
//! of about 0.7, as in the LLMRouter data (0.60 -> 0.74). TruthfulQA's scores are fractional, as
//! the leaderboard's mc scores are: `sigmoid(a_i (s - d_i) + 1.5 z)`; its pools carry
//! RouterEval's training labels. `mu_b` is
//! solved so that a model of ability 0 scores the benchmark's typical leaderboard accuracy
//! ([`Spec::median`]), which leaves at least a thousand models with a mean in (0.1, 0.9], so
//! every pool up to m = 1000 can be built.
//!
//! **The embeddings** (768-d by default, unit length) carry the topic structure a real encoder
//! would: a benchmark direction, a sub-benchmark direction, a topic direction (for latent topics),
//! a weak difficulty direction, and per-item noise. The prompts name the benchmark, the
//! sub-benchmark and the topic.
//!
//! **Pools** are built by [`crate::data::build::build`], RouterEval's rules, and the files are
//! RouterEval's pickle layout, `DIR/<benchmark>_router_dataset.pkl`.
//!
//! **Determinism.** Every random quantity comes from its own stream, derived from the seed and
//! what it is for (`"abilities/mmlu"`, `"responses/gsm8k"`, ...): the same seed gives the same
//! files, whatever subset of benchmarks is asked for and however many threads run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use routereval_sdk::Rng;
use serde::Serialize;

use crate::data::build::{BuildOptions, Population, Skipped, build};
use crate::data::load::PICKLE_SUFFIX;
use crate::data::{Matrix, RouterDataset, TRUTHFULQA};

/// One benchmark of the suite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    /// RouterEval's name.
    pub name: &'static str,
    /// Items (RouterEval's sizes).
    pub items: usize,
    /// Sub-benchmarks, by name, or one named after the benchmark.
    pub tasks: Tasks,
    /// The accuracy of a guess (the 3PL floor).
    pub guess: f64,
    /// The accuracy of a model of ability 0 (a typical leaderboard model).
    pub median: f64,
}

/// The sub-benchmarks of a benchmark.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tasks {
    /// Named ones.
    Named(&'static [&'static str]),
    /// `n` numbered ones, `<prefix>_00`, ...
    Numbered(&'static str, usize),
}

impl Tasks {
    fn names(&self) -> Vec<String> {
        match *self {
            Tasks::Named(names) => names.iter().map(|s| s.to_string()).collect(),
            Tasks::Numbered(prefix, n) => (0..n).map(|i| format!("{prefix}_{i:02}")).collect(),
        }
    }
}

/// RouterEval's twelve benchmarks: item counts from its datasets, sub-benchmark counts from the
/// benchmarks themselves (MMLU 57 subjects, BBH 27 tasks, MMLU-Pro 14 categories, MATH 7
/// subjects, MuSR 3 tasks, GPQA's three sets).
pub const SUITE: [Spec; 12] = [
    Spec {
        name: "arc",
        items: 1172,
        tasks: Tasks::Named(&["arc_challenge"]),
        guess: 0.25,
        median: 0.55,
    },
    Spec {
        name: "hellaswag",
        items: 10042,
        tasks: Tasks::Named(&["hellaswag"]),
        guess: 0.25,
        median: 0.70,
    },
    Spec {
        name: "mmlu",
        items: 14042,
        tasks: Tasks::Numbered("mmlu_subject", 57),
        guess: 0.25,
        median: 0.55,
    },
    Spec {
        name: TRUTHFULQA,
        items: 817,
        tasks: Tasks::Named(&["truthfulqa_mc"]),
        guess: 0.0,
        median: 0.48,
    },
    Spec {
        name: "winogrande",
        items: 1267,
        tasks: Tasks::Named(&["winogrande"]),
        guess: 0.5,
        median: 0.72,
    },
    Spec {
        name: "gsm8k",
        items: 1319,
        tasks: Tasks::Named(&["gsm8k"]),
        guess: 0.0,
        median: 0.40,
    },
    Spec {
        name: "ifeval",
        items: 541,
        tasks: Tasks::Named(&["ifeval"]),
        guess: 0.0,
        median: 0.45,
    },
    Spec {
        name: "bbh",
        items: 5760,
        tasks: Tasks::Numbered("bbh_task", 27),
        guess: 0.2,
        median: 0.42,
    },
    Spec {
        name: "gpqa",
        items: 1192,
        tasks: Tasks::Named(&["gpqa_diamond", "gpqa_main", "gpqa_extended"]),
        guess: 0.25,
        median: 0.30,
    },
    Spec {
        name: "musr",
        items: 756,
        tasks: Tasks::Named(&[
            "musr_murder_mysteries",
            "musr_object_placements",
            "musr_team_allocation",
        ]),
        guess: 0.3,
        median: 0.42,
    },
    Spec {
        name: "math",
        items: 1324,
        tasks: Tasks::Named(&[
            "algebra",
            "counting_and_probability",
            "geometry",
            "intermediate_algebra",
            "number_theory",
            "prealgebra",
            "precalculus",
        ]),
        guess: 0.0,
        median: 0.18,
    },
    Spec {
        name: "mmlu_pro",
        items: 12032,
        tasks: Tasks::Numbered("mmlu_pro_category", 14),
        guess: 0.1,
        median: 0.32,
    },
];

/// Looks a benchmark of the suite up by name (`truthfulqa` is accepted for TruthfulQA).
pub fn spec(name: &str) -> Option<&'static Spec> {
    let name = if name == "truthfulqa" {
        TRUTHFULQA
    } else {
        name
    };
    SUITE.iter().find(|s| s.name == name)
}

/// What to synthesise.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Seed of everything (the split and pool draws included).
    pub seed: u64,
    /// Population size.
    pub models: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Item counts are RouterEval's times this (at least 20 items per benchmark).
    pub scale: f64,
    /// Benchmarks, by name [`SUITE`] order when empty.
    pub benchmarks: Vec<String>,
    /// Pool sizes and draws.
    pub build: BuildOptions,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 42,
            models: 2000,
            dim: 768,
            scale: 1.0,
            benchmarks: Vec::new(),
            build: BuildOptions::default(),
        }
    }
}

impl SynthOptions {
    /// The benchmarks asked for, checked.
    ///
    /// # Errors
    /// An unknown name (the message lists the known ones), or impossible sizes.
    pub fn specs(&self) -> Result<Vec<&'static Spec>> {
        if self.models == 0 || self.dim == 0 || !(self.scale > 0.0 && self.scale.is_finite()) {
            bail!("synth needs at least one model, a positive dimension and a positive scale");
        }
        if self.benchmarks.is_empty() {
            return Ok(SUITE.iter().collect());
        }
        self.benchmarks
            .iter()
            .map(|b| {
                spec(b).with_context(|| {
                    let names: Vec<&str> = SUITE.iter().map(|s| s.name).collect();
                    format!(
                        "unknown benchmark `{b}`; the suite has {}",
                        names.join(", ")
                    )
                })
            })
            .collect()
    }
}

/// A stream of its own for `tag`: the dataset builder's derivation, in a `synth/` namespace
/// (the builder's tags are `split/...` and `strong_to_weak/...`).
fn stream(seed: u64, tag: &str) -> Rng {
    crate::data::build::stream(seed, &format!("synth/{tag}"))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Splits `total` into parts proportional to `weights` (largest remainders), each at least 1
/// when `total` allows.
fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut parts: Vec<usize> = exact.iter().map(|&e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut left = total - parts.iter().sum::<usize>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    // Every part non-empty: take from the largest.
    while let Some(empty) = parts.iter().position(|&p| p == 0) {
        let (big, &size) = parts.iter().enumerate().max_by_key(|&(_, p)| *p).unwrap();
        if size < 2 {
            break;
        }
        parts[big] -= 1;
        parts[empty] += 1;
    }
    parts
}

/// The items of one benchmark, before any model answers them.
struct Items {
    tasks: Vec<String>,
    task: Vec<usize>,
    topic: Vec<usize>,
    topic_names: Vec<String>,
    latent_topics: bool,
    difficulty: Vec<f64>,
    discrimination: Vec<f64>,
}

/// Latent skill topics of a benchmark with fewer than five sub-benchmarks.
pub const LATENT_TOPICS: usize = 8;

/// The share of guesses that follow the item's attractive answer (the rest are the model's own).
/// Independent guesses would make every pool's oracle far higher than real leaderboards show:
/// three models at 0.55 would reach 0.8 together; with shared guesses they reach about 0.7, as in
/// the LLMRouter data (0.60 -> 0.74).
pub const SHARED_GUESS: f64 = 0.8;

/// The chance that a model gets wrong an item it knows or guessed right (a malformed answer, a
/// sampling accident): without slips a strong model is never beaten by a weak one where it
/// knows the answer, and strong_to_weak pools would gain nothing from their weaker members. At
/// 8% the oracle of a small split (ifeval's 54 validation items) still tied the best single model
/// now and then; at 10% it beat it in every pool and split for each of the seeds 1, 5, 7, 42 and
/// 123. It also caps any model's accuracy at 0.9, so no model is too strong for the pools.
pub const SLIP: f64 = 0.1;

/// The chance of a right answer at `logit = a (s - d)`.
fn correct(guess: f64, logit: f64) -> f64 {
    (1.0 - SLIP) * (guess + (1.0 - guess) * sigmoid(logit))
}

fn items(spec: &Spec, n: usize, seed: u64) -> Items {
    let mut rng = stream(seed, &format!("items/{}", spec.name));
    let tasks = spec.tasks.names();
    let weights: Vec<f64> = tasks.iter().map(|_| 0.5 + rng.next_f64()).collect();
    let sizes = apportion(n, &weights);
    let task: Vec<usize> = sizes
        .iter()
        .enumerate()
        .flat_map(|(t, &k)| std::iter::repeat_n(t, k))
        .collect();
    let latent_topics = tasks.len() < 5;
    let (topic, topic_names) = if latent_topics {
        let topic = (0..n)
            .map(|_| rng.below(LATENT_TOPICS as u64) as usize)
            .collect();
        let names = (0..LATENT_TOPICS).map(|t| format!("topic {t}")).collect();
        (topic, names)
    } else {
        (task.clone(), tasks.clone())
    };
    let offsets: Vec<f64> = (0..n).map(|_| 1.5 * rng.normal()).collect();
    let discrimination: Vec<f64> = (0..n).map(|_| 2.5 * (0.25 * rng.normal()).exp()).collect();
    // mu: a model of ability 0 scores `median` (bisection; accuracy falls as mu rises).
    let accuracy = |mu: f64| -> f64 {
        let total: f64 = offsets
            .iter()
            .zip(&discrimination)
            .map(|(&o, &a)| correct(spec.guess, -a * (mu + o)))
            .sum();
        total / n as f64
    };
    let (mut lo, mut hi) = (-8.0, 8.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if accuracy(mid) > spec.median {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mu = 0.5 * (lo + hi);
    Items {
        tasks,
        task,
        topic,
        topic_names,
        latent_topics,
        difficulty: offsets.iter().map(|o| mu + o).collect(),
        discrimination,
    }
}

fn unit_vector(rng: &mut Rng, dim: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn embeddings(spec: &Spec, it: &Items, dim: usize, seed: u64) -> Matrix<f32> {
    let mut rng = stream(seed, &format!("embeddings/{}", spec.name));
    let bench = unit_vector(&mut rng, dim);
    let tasks: Vec<Vec<f64>> = it
        .tasks
        .iter()
        .map(|_| unit_vector(&mut rng, dim))
        .collect();
    let topics: Vec<Vec<f64>> = if it.latent_topics {
        it.topic_names
            .iter()
            .map(|_| unit_vector(&mut rng, dim))
            .collect()
    } else {
        Vec::new()
    };
    let hard = unit_vector(&mut rng, dim);
    // Noise per coordinate such that its norm is about 0.9.
    let noise = 0.9 / (dim as f64).sqrt();
    let n = it.task.len();
    let mut data = Vec::with_capacity(n * dim);
    let mut v = vec![0.0f64; dim];
    for i in 0..n {
        let d = it.difficulty[i].tanh();
        for (k, x) in v.iter_mut().enumerate() {
            *x = bench[k] + 0.8 * tasks[it.task[i]][k] + 0.25 * d * hard[k] + noise * rng.normal();
            if it.latent_topics {
                *x += 0.8 * topics[it.topic[i]][k];
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        data.extend(v.iter().map(|&x| (x / norm) as f32));
    }
    Matrix::new(n, dim, data)
}

/// The population of one benchmark of the suite: every model scored on every item.
///
/// # Errors
/// Only for impossible options (see [`SynthOptions::specs`]).
pub fn population(spec: &Spec, opts: &SynthOptions) -> Result<Population> {
    let n = ((spec.items as f64 * opts.scale).round() as usize).max(20);
    let seed = opts.seed;
    let it = items(spec, n, seed);
    let k = opts.models;
    // General abilities: one stream for the whole suite, so a model is the same model on every
    // benchmark.
    let mut rng = stream(seed, "models");
    let general: Vec<f64> = (0..k).map(|_| rng.normal()).collect();
    let mut rng = stream(seed, &format!("abilities/{}", spec.name));
    let topics = it.topic_names.len();
    // skills[model * topics + topic]
    let mut skills = Vec::with_capacity(k * topics);
    for &g in &general {
        let theta = g + 0.5 * rng.normal();
        skills.extend((0..topics).map(|_| theta + 0.5 * rng.normal()));
    }
    let fractional = spec.name == TRUTHFULQA;
    let mut rng = stream(seed, &format!("responses/{}", spec.name));
    let mut scores = Vec::with_capacity(n * k);
    for i in 0..n {
        let (a, d, t) = (it.discrimination[i], it.difficulty[i], it.topic[i]);
        // The item's attractive answer: right or wrong for most of the models that guess.
        let shared_guess = rng.next_f64() < spec.guess;
        for model in 0..k {
            let logit = a * (skills[model * topics + t] - d);
            let score = if fractional {
                sigmoid(logit + 1.5 * rng.normal())
            } else {
                let knows = rng.next_f64() < sigmoid(logit);
                let right = knows
                    || if rng.next_f64() < SHARED_GUESS {
                        shared_guess
                    } else {
                        rng.next_f64() < spec.guess
                    };
                f64::from(u8::from(right && rng.next_f64() >= SLIP))
            };
            scores.push(score);
        }
    }
    let width = (k.max(2) - 1).to_string().len().max(4);
    Ok(Population {
        benchmark: spec.name.to_string(),
        source: format!("synth:{}:seed={seed}", spec.name),
        models: (0..k).map(|j| format!("synth-llm-{j:0width$}")).collect(),
        prompts: (0..n)
            .map(|i| {
                format!(
                    "[{} / {}] synthetic item {i} on {}",
                    spec.name, it.tasks[it.task[i]], it.topic_names[it.topic[i]]
                )
            })
            .collect(),
        tasks: it.task.iter().map(|&t| it.tasks[t].clone()).collect(),
        embeddings: embeddings(spec, &it, opts.dim, seed),
        scores: Matrix::new(n, k, scores),
    })
}

/// One benchmark's dataset and what could not be built.
pub fn benchmark(spec: &Spec, opts: &SynthOptions) -> Result<(RouterDataset, Vec<Skipped>)> {
    let pop = population(spec, opts)?;
    let build_opts = BuildOptions {
        seed: opts.seed,
        ..opts.build.clone()
    };
    build(&pop, &build_opts)
}

/// What `synth` wrote for one benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    /// Benchmark.
    pub benchmark: String,
    /// The file.
    pub path: PathBuf,
    /// Queries (train, val, test).
    pub queries: [usize; 3],
    /// Pools built.
    pub pools: usize,
    /// Pools that could not be built, with the reason.
    pub skipped: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds to synthesise, build and write it.
    pub seconds: f64,
}

/// Synthesises the benchmarks of `opts` and writes each to
/// `dir/<benchmark>_router_dataset.pkl` (atomically), in parallel; `progress` hears about each
/// file as it is written. Returns them in suite order.
///
/// # Errors
/// Bad options, or a file that cannot be written (files already written stay).
pub fn write_suite(
    opts: &SynthOptions,
    dir: &Path,
    progress: &(dyn Fn(&Written) + Sync),
) -> Result<Vec<Written>> {
    let specs = opts.specs()?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output directory `{}`", dir.display()))?;
    // Largest first, so the two biggest do not end up last on one thread.
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(specs[i].items));
    let mut written: Vec<(usize, Written)> = order
        .par_iter()
        .map(|&i| -> Result<(usize, Written)> {
            let start = Instant::now();
            let spec = specs[i];
            let (ds, skipped) = benchmark(spec, opts)?;
            let path = dir.join(format!("{}{PICKLE_SUFFIX}", spec.name));
            crate::data::export::write_routereval_pickle(&ds, &path)?;
            let w = Written {
                benchmark: spec.name.to_string(),
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                path,
                queries: [ds.train.len(), ds.val.len(), ds.test.len()],
                pools: ds.pools.len(),
                skipped: skipped
                    .iter()
                    .map(|s| format!("m={} {}: {}", s.m, s.group, s.reason))
                    .collect(),
                seconds: start.elapsed().as_secs_f64(),
            };
            progress(&w);
            Ok((i, w))
        })
        .collect::<Result<_>>()?;
    written.sort_by_key(|(i, _)| *i);
    Ok(written.into_iter().map(|(_, w)| w).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_non_empty() {
        let p = apportion(100, &[1.0, 1.0, 1.0]);
        assert_eq!(p.iter().sum::<usize>(), 100);
        assert!(p.iter().all(|&x| x == 33 || x == 34), "{p:?}");
        let p = apportion(5, &[100.0, 1.0, 1.0]);
        assert_eq!(p.iter().sum::<usize>(), 5);
        assert!(p.iter().all(|&x| x >= 1), "{p:?}");
    }

    #[test]
    fn the_median_model_scores_the_target() {
        for spec in &SUITE {
            let it = items(spec, 2000, 1);
            let acc: f64 = it
                .difficulty
                .iter()
                .zip(&it.discrimination)
                .map(|(&d, &a)| correct(spec.guess, -a * d))
                .sum::<f64>()
                / 2000.0;
            assert!((acc - spec.median).abs() < 1e-6, "{}: {acc}", spec.name);
        }
    }

    #[test]
    fn a_benchmark_is_the_same_whatever_else_is_built() {
        let opts = SynthOptions {
            models: 30,
            dim: 16,
            scale: 0.05,
            ..SynthOptions::default()
        };
        let a = population(spec("gsm8k").unwrap(), &opts).unwrap();
        let b = population(
            spec("gsm8k").unwrap(),
            &SynthOptions {
                benchmarks: vec!["mmlu".into()],
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(a, b);
        let c = population(spec("gsm8k").unwrap(), &SynthOptions { seed: 7, ..opts }).unwrap();
        assert_ne!(a.scores, c.scores);
        assert!(a.scores.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

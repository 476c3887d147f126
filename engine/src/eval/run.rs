//! Planning and executing evaluations: every (benchmark, pool, contestant) is one task; tasks run
//! in parallel with rayon, and results come back in plan order whatever the thread count.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use routereval_sdk::RouterError;

use crate::data::{Difficulty, Pool, RouterDataset};
use crate::eval::contestant::{Job, SharedContestant, TaskShape};
use crate::eval::metrics::{self, Metrics};
pub use crate::eval::outcome::EvalResult;
use crate::eval::outcome::{Answer, Attempt};
use crate::eval::validate::validate;
use crate::failure::{Failure, FailureKind};

/// Which pools to evaluate; `None` means all.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only pools of this difficulty.
    pub difficulty: Option<Difficulty>,
    /// Only pools of these sizes.
    pub candidates: Option<Vec<usize>>,
    /// Only pools of these groups.
    pub groups: Option<Vec<String>>,
}

impl Selection {
    /// Whether `pool` is selected.
    pub fn accepts(&self, pool: &Pool) -> bool {
        self.difficulty.is_none_or(|d| d == pool.difficulty)
            && self
                .candidates
                .as_ref()
                .is_none_or(|c| c.contains(&pool.m()))
            && self.groups.as_ref().is_none_or(|g| g.contains(&pool.group))
    }
}

/// One evaluation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    /// Index into the datasets.
    pub dataset: usize,
    /// Index into that dataset's pools.
    pub pool: usize,
    /// Index into the contestants.
    pub contestant: usize,
}

/// Every selected (dataset, pool, contestant), in a fixed order.
pub fn plan(
    datasets: &[RouterDataset],
    contestants: &[SharedContestant],
    sel: &Selection,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (d, ds) in datasets.iter().enumerate() {
        for (p, pool) in ds.pools.iter().enumerate() {
            if !sel.accepts(pool) {
                continue;
            }
            for c in 0..contestants.len() {
                tasks.push(Task {
                    dataset: d,
                    pool: p,
                    contestant: c,
                });
            }
        }
    }
    tasks
}

/// The estimated cost of a task in seconds on one core: the contestant's
/// [`Contestant::cost`](crate::eval::contestant::Contestant::cost) for its pool's shape, plus
/// what every task costs (validation and metrics, a pass over the test scores). What workers
/// start largest-first and shards are balanced by.
pub fn estimate(datasets: &[RouterDataset], contestants: &[SharedContestant], t: &Task) -> f64 {
    let ds = &datasets[t.dataset];
    let pool = &ds.pools[t.pool];
    let shape = TaskShape {
        train_rows: pool.train_scores.rows() as f64,
        test_rows: ds.test.len() as f64,
        dim: ds.train.embeddings.cols() as f64,
        m: pool.m() as f64,
    };
    contestants[t.contestant].cost(&shape) + 1e-8 * shape.test_rows * shape.m
}

/// The tasks (indices into `estimates`) of shard `index` of `count`: the longest-processing-time
/// rule (tasks by estimate, largest first, each to the shard with the least estimated work so
/// far; ties to the lower index), so that the shards finish at about the same time. A pure
/// function of the estimates: every shard of a plan computes the same partition.
pub fn shard_tasks(estimates: &[f64], index: usize, count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&a, &b| estimates[b].total_cmp(&estimates[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; count.max(1)];
    let mut mine = Vec::new();
    for i in order {
        let s = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("at least one shard");
        load[s] += estimates[i];
        if s == index {
            mine.push(i);
        }
    }
    mine.sort_unstable();
    mine
}

/// Where an evaluation runs, for messages: `router `knn` on gsm8k easy m=3 all_strong`.
fn context(label: &str, ds: &RouterDataset, pool: &Pool) -> String {
    format!(
        "router `{label}` on {} {} m={} {}",
        ds.benchmark,
        pool.difficulty,
        pool.m(),
        pool.group
    )
}

/// Validates a routing of `n` queries over `m` candidates: the engine's one check, as the
/// evaluation's `invalid_output` failure.
///
/// # Errors
/// What is wrong with it.
pub fn check_routing(routing: &routereval_sdk::Routing, n: usize, m: usize) -> Result<(), Failure> {
    validate(routing, n, m)
        .map_err(|why| Failure::new(FailureKind::InvalidOutput, format!("invalid output: {why}")))
}

/// Validates and scores a contestant's answer: a routing is checked (shape, values, choices)
/// before any metric is computed; metrics a contestant computed (a bound, a self-reporting
/// program) are taken as they are, the latter flagged on the row.
/// Also gives the score behind `mu` per test query, when known.
fn score(
    answer: Answer,
    ds: &RouterDataset,
    pool: &Pool,
) -> Result<(Metrics, Option<Vec<f64>>), Failure> {
    match answer {
        Answer::Metrics { metrics, per_query } => Ok((metrics, per_query)),
        Answer::Routing(routing) => {
            check_routing(&routing, ds.test.len(), pool.m())?;
            let test = &pool.test_scores;
            let choices = metrics::choices(routing.belief(), test.cols(), routing.choices());
            Ok((
                metrics::evaluate(test, ds.acc_ref, routing.belief(), routing.choices()),
                Some(metrics::per_query(test, &choices)),
            ))
        }
    }
}

/// Runs one task: the contestant's attempt (a panic that escapes it is the engine's, and fails
/// this evaluation only), then validation and metrics.
pub fn execute_one(
    datasets: &[RouterDataset],
    contestants: &[SharedContestant],
    task: Task,
) -> EvalResult {
    let start = Instant::now();
    let ds = &datasets[task.dataset];
    let pool = &ds.pools[task.pool];
    let contestant = &contestants[task.contestant];
    let label = contestant.label();
    let job = Job { dataset: ds, pool };
    let attempt =
        catch_unwind(AssertUnwindSafe(|| contestant.evaluate(&job))).unwrap_or_else(|payload| {
            Attempt::of(Err(Failure::new(
                FailureKind::Panic,
                format!(
                    "the engine panicked running it: {}",
                    RouterError::from_panic(&*payload).message()
                ),
            )))
        });
    let (outcome, query_scores) = match attempt.answer.and_then(|answer| score(answer, ds, pool)) {
        Ok((m, per_query)) => (Ok(m), per_query.map(Into::into)),
        Err(f) => (Err(f.within(&context(label, ds, pool))), None),
    };
    EvalResult {
        router: label.to_string(),
        kind: contestant.kind(),
        self_reported: contestant.self_reported(),
        benchmark: ds.benchmark.clone(),
        difficulty: pool.difficulty,
        m: pool.m(),
        group: pool.group.clone(),
        outcome,
        query_scores,
        seconds: start.elapsed().as_secs_f64(),
        fuel: attempt.fuel,
        log: Some(attempt.log).filter(|l| !l.is_empty()),
    }
}

/// Runs every task in parallel on the current rayon pool; `on_start(i)` is called as task `i`
/// (an index into `tasks`) starts and `on_done(i, result)` as it finishes, from worker threads.
/// Results are in task order.
///
/// The workers take tasks largest first (by [`estimate`]), each the next one as it becomes
/// free: so a sweep does not end with one core training the biggest pool while the other idles.
pub fn execute(
    datasets: &[RouterDataset],
    contestants: &[SharedContestant],
    tasks: &[Task],
    on_start: &(dyn Fn(usize) + Sync),
    on_done: &(dyn Fn(usize, &EvalResult) + Sync),
) -> Vec<EvalResult> {
    let cost: Vec<f64> = tasks
        .iter()
        .map(|t| estimate(datasets, contestants, t))
        .collect();
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by(|&a, &b| cost[b].total_cmp(&cost[a]).then(a.cmp(&b)));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<EvalResult>>> =
        tasks.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = rayon::current_num_threads().min(tasks.len());
    rayon::scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    on_start(i);
                    let r = execute_one(datasets, contestants, tasks[i]);
                    on_done(i, &r);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every task ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::shard_tasks;

    #[test]
    fn shards_partition_the_plan_and_balance_it() {
        // 40 tasks: a few large, many small.
        let est: Vec<f64> = (0..40)
            .map(|i| {
                if i % 10 == 0 {
                    50.0
                } else {
                    f64::from(i % 7) + 1.0
                }
            })
            .collect();
        let total: f64 = est.iter().sum();
        let mut all: Vec<usize> = Vec::new();
        for i in 0..4 {
            let mine = shard_tasks(&est, i, 4);
            let load: f64 = mine.iter().map(|&t| est[t]).sum();
            assert!(load <= total / 4.0 * 1.1, "shard {i}: {load} of {total}");
            all.extend(mine);
        }
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        assert_eq!(shard_tasks(&est, 0, 1).len(), 40);
    }
}

//! Planning and executing evaluations: every (benchmark, pool, contender) is one task; tasks run
//! in parallel with rayon, and results come back in plan order whatever the thread count.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use routereval_sdk::{Queries, RouterError, Routing, Split};

use crate::data::{Difficulty, Pool, RouterDataset, SplitData};
use crate::exec::Reported;
use crate::metrics::{self, Metrics};
use crate::native::NativePlugin;
use crate::routers::{Contender, Registry};
use crate::validate::validate;
use crate::wasm::{Outcome, WasmPlugin};

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
    /// Index into the contenders.
    pub contender: usize,
}

/// Every selected (dataset, pool, contender), in a fixed order.
pub fn plan(datasets: &[RouterDataset], contenders: &[Contender], sel: &Selection) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (d, ds) in datasets.iter().enumerate() {
        for (p, pool) in ds.pools.iter().enumerate() {
            if !sel.accepts(pool) {
                continue;
            }
            for c in 0..contenders.len() {
                tasks.push(Task {
                    dataset: d,
                    pool: p,
                    contender: c,
                });
            }
        }
    }
    tasks
}

/// Why an evaluation failed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EvalError {
    /// Stable snake_case kind: `router_error`, `panic`, `invalid_output`; for plugins also
    /// `abi_mismatch`, `missing_export`; for WebAssembly plugins `out_of_fuel`, `timeout`,
    /// `out_of_memory`, `stack_overflow`, `trap` (see [`crate::wasm`]); for isolated native
    /// plugins `crash`, `abort`, `timeout`, `load_error` (the library changed or vanished
    /// during the run), `worker_error` (see [`crate::isolate`]); for exec routers
    /// `exec_failed` (it could not start or exited with an error), `crash`, `timeout`,
    /// `invalid_output` (see [`crate::exec`]).
    pub kind: String,
    /// What happened, naming the router and the pool.
    pub message: String,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// The contender's label.
    pub router: String,
    /// Whether the contender is a reference bound.
    pub is_bound: bool,
    /// Whether the metrics are the router's own word (an exec router that prints them): the
    /// engine did not compute them, and they are never a verified result.
    pub self_reported: bool,
    /// How the contender was loaded: `builtin`, `wasm`, `native`, `exec` or `bound`.
    pub kind: &'static str,
    /// Benchmark name.
    pub benchmark: String,
    /// Pool difficulty.
    pub difficulty: Difficulty,
    /// Pool size.
    pub m: usize,
    /// Pool group.
    pub group: String,
    /// The metrics, when the evaluation succeeded.
    pub metrics: Option<Metrics>,
    /// The failure, when it did not.
    pub error: Option<EvalError>,
    /// Wall time of the evaluation (fit, route, validation and metrics).
    pub seconds: f64,
    /// Fuel a WebAssembly plugin consumed: its deterministic compute cost.
    pub fuel: Option<u64>,
    /// What a WebAssembly plugin or an isolated native plugin logged (capped by the policy),
    /// when anything.
    pub log: Option<String>,
}

impl EvalResult {
    /// Whether it succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

fn queries(split: &SplitData) -> Result<Queries<'_>, RouterError> {
    Queries::new(
        split.len(),
        split.embeddings.cols(),
        split.embeddings.as_slice(),
        &split.prompts,
    )
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The views a router sees of one pool: train and val splits, and the test queries.
fn views<'a>(
    ds: &'a RouterDataset,
    pool: &'a Pool,
) -> Result<(Split<'a>, Split<'a>, Queries<'a>), RouterError> {
    let train = Split::new(
        queries(&ds.train)?,
        ds.training_scores(pool).as_slice(),
        &pool.models,
    )?;
    let val = Split::new(queries(&ds.val)?, pool.val_scores.as_slice(), &pool.models)?;
    Ok((train, val, queries(&ds.test)?))
}

/// Fits the router on the pool's train / val splits and routes its test queries.
fn fit_and_route(
    registry: &Registry,
    name: &str,
    params: &routereval_sdk::Params,
    ds: &RouterDataset,
    pool: &Pool,
) -> Result<Routing, RouterError> {
    let info = registry
        .get(name)
        .ok_or_else(|| RouterError::Other(format!("no router named `{name}`")))?;
    let mut router = (info.factory)(params)?;
    let (train, val, test) = views(ds, pool)?;
    router.fit(&train, &val)?;
    router.route(&test)
}

/// Runs a WebAssembly plugin on the pool; the failure kinds are the sandbox's.
fn run_wasm(
    plugin: &WasmPlugin,
    params: &routereval_sdk::Params,
    ds: &RouterDataset,
    pool: &Pool,
) -> Outcome {
    match views(ds, pool) {
        Ok((train, val, test)) => plugin.evaluate(params, &train, &val, &test),
        Err(e) => Outcome {
            routing: Err(EvalError {
                kind: "router_error".into(),
                message: e.to_string(),
            }),
            fuel: None,
            log: String::new(),
        },
    }
}

/// Runs a native plugin on the pool (no fuel: native code is not metered).
fn run_native(
    plugin: &NativePlugin,
    params: &routereval_sdk::Params,
    ds: &RouterDataset,
    pool: &Pool,
) -> Outcome {
    let (routing, log) = match views(ds, pool) {
        Ok((train, val, test)) => plugin.evaluate(params, &train, &val, &test),
        Err(e) => (
            Err(EvalError {
                kind: "router_error".into(),
                message: e.to_string(),
            }),
            None,
        ),
    };
    Outcome {
        routing,
        fuel: None,
        log: log.unwrap_or_default(),
    }
}

/// A plugin evaluation's result (WebAssembly or native): the engine's own panic, the plugin's
/// typed failure, or the routing validated and scored; the fuel and log go to `by_products`.
fn plugin_outcome(
    caught: std::thread::Result<Outcome>,
    ds: &RouterDataset,
    pool: &Pool,
    where_: &str,
    by_products: (&mut Option<u64>, &mut Option<String>),
) -> Result<Metrics, EvalError> {
    match caught {
        Err(payload) => Err(EvalError {
            kind: "panic".into(),
            message: format!(
                "{where_}: the engine panicked running the plugin: {}",
                panic_message(&*payload)
            ),
        }),
        Ok(out) => {
            *by_products.0 = out.fuel;
            *by_products.1 = Some(out.log).filter(|l| !l.is_empty());
            match out.routing {
                Err(e) => Err(EvalError {
                    kind: e.kind,
                    message: format!("{where_}: {}", e.message),
                }),
                Ok(routing) => check_and_score(routing, ds, pool, where_),
            }
        }
    }
}

fn check_and_score(
    routing: Routing,
    ds: &RouterDataset,
    pool: &Pool,
    where_: &str,
) -> Result<Metrics, EvalError> {
    match validate(&routing, ds.test.len(), pool.m()) {
        Err(why) => Err(EvalError {
            kind: "invalid_output".into(),
            message: format!("{where_}: invalid output: {why}"),
        }),
        Ok(()) => Ok(metrics::evaluate(
            &pool.test_scores,
            ds.acc_ref,
            routing.belief(),
            routing.choices(),
        )),
    }
}

/// Runs one task.
pub fn execute_one(
    registry: &Registry,
    datasets: &[RouterDataset],
    contenders: &[Contender],
    task: Task,
) -> EvalResult {
    let start = Instant::now();
    let ds = &datasets[task.dataset];
    let pool = &ds.pools[task.pool];
    let contender = &contenders[task.contender];
    let label = contender.label();
    let where_ = format!(
        "router `{label}` on {} {} m={} {}",
        ds.benchmark,
        pool.difficulty,
        pool.m(),
        pool.group
    );
    let (mut fuel, mut log) = (None, None);
    let outcome: Result<Metrics, EvalError> = match contender {
        Contender::Bound(b) => Ok(b.evaluate(&pool.test_scores, ds.acc_ref)),
        Contender::Wasm { plugin, params, .. } => plugin_outcome(
            catch_unwind(AssertUnwindSafe(|| run_wasm(plugin, params, ds, pool))),
            ds,
            pool,
            &where_,
            (&mut fuel, &mut log),
        ),
        Contender::Native { plugin, params, .. } => plugin_outcome(
            catch_unwind(AssertUnwindSafe(|| run_native(plugin, params, ds, pool))),
            ds,
            pool,
            &where_,
            (&mut fuel, &mut log),
        ),
        Contender::Exec(router) => {
            match catch_unwind(AssertUnwindSafe(|| router.evaluate(ds, pool, &where_))) {
                Err(payload) => Err(EvalError {
                    kind: "panic".into(),
                    message: format!(
                        "{where_}: the engine panicked running the command: {}",
                        panic_message(&*payload)
                    ),
                }),
                Ok(out) => {
                    log = Some(out.log).filter(|l| !l.is_empty());
                    match out.result {
                        Err(e) => Err(e),
                        Ok(Reported::Metrics(m)) => Ok(m),
                        Ok(Reported::Routing(routing)) => {
                            check_and_score(routing, ds, pool, &where_)
                        }
                    }
                }
            }
        }
        Contender::Router { name, params, .. } => {
            let routed = catch_unwind(AssertUnwindSafe(|| {
                fit_and_route(registry, name, params, ds, pool)
            }));
            match routed {
                Err(payload) => Err(EvalError {
                    kind: "panic".into(),
                    message: format!("{where_}: panicked: {}", panic_message(&*payload)),
                }),
                Ok(Err(e)) => Err(EvalError {
                    kind: "router_error".into(),
                    message: format!("{where_}: {e}"),
                }),
                Ok(Ok(routing)) => check_and_score(routing, ds, pool, &where_),
            }
        }
    };
    let (metrics, error) = match outcome {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    EvalResult {
        router: label,
        is_bound: contender.is_bound(),
        self_reported: contender.is_self_reported(),
        kind: contender.kind(),
        benchmark: ds.benchmark.clone(),
        difficulty: pool.difficulty,
        m: pool.m(),
        group: pool.group.clone(),
        metrics,
        error,
        seconds: start.elapsed().as_secs_f64(),
        fuel,
        log,
    }
}

/// Runs every task in parallel on the current rayon pool; `on_done` is called as each one
/// finishes (from worker threads, in completion order). Results are in task order.
///
/// The workers take tasks largest first (by the size of the training split, queries x
/// (dimension + candidates)), each the next one as it becomes free: so a sweep does not end
/// with one core training the biggest pool while the other idles.
pub fn execute(
    registry: &Registry,
    datasets: &[RouterDataset],
    contenders: &[Contender],
    tasks: &[Task],
    on_done: &(dyn Fn(&EvalResult) + Sync),
) -> Vec<EvalResult> {
    let size = |t: &Task| {
        if contenders[t.contender].is_bound() {
            return 0;
        }
        let ds = &datasets[t.dataset];
        let pool = &ds.pools[t.pool];
        pool.train_scores.rows() * (ds.train.embeddings.cols() + pool.m())
    };
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&tasks[i])));
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
                    let r = execute_one(registry, datasets, contenders, tasks[i]);
                    on_done(&r);
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

//! The routers the engine can run by name: the built-in baselines, plus any a program embedding
//! the engine registers.

use std::sync::Arc;

use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

use crate::bounds::Bound;
use crate::exec::{ExecRouter, Reporting};
use crate::native::NativePlugin;
use crate::wasm::WasmPlugin;

/// An object-safe router, as the engine drives it.
pub trait DynRouter: Send {
    /// See [`Router::fit`].
    ///
    /// # Errors
    /// As the router's.
    fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError>;
    /// See [`Router::route`].
    ///
    /// # Errors
    /// As the router's.
    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError>;
}

impl<R: Router + Send> DynRouter for R {
    fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError> {
        Router::fit(self, train, val)
    }
    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        Router::route(self, queries)
    }
}

/// Builds a router from its parameters.
pub type Factory = fn(&Params) -> Result<Box<dyn DynRouter>, RouterError>;

fn factory<R: Router + Send + 'static>(p: &Params) -> Result<Box<dyn DynRouter>, RouterError> {
    Ok(Box::new(R::new(p)?))
}

/// One router the engine knows by name.
#[derive(Clone, Debug)]
pub struct RouterInfo {
    /// The name used with `--router`.
    pub name: String,
    /// One line on what it does.
    pub summary: String,
    /// Its parameters and their defaults, one line.
    pub params: String,
    /// Builds it.
    pub factory: Factory,
    /// Whether a run without `--router` includes it (routers that take minutes per pool with
    /// their defaults, such as MLPR, are run only when asked for).
    pub in_default_run: bool,
}

/// The routers available by name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    routers: Vec<RouterInfo>,
}

/// Whether `name` can name a router: letters, digits, `-`, `_` and `.`, not empty.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The name a plugin reports for itself, if it is a usable one: trimmed, at most 64
/// characters, [`is_valid_name`]. (A plugin is then named after its file instead.)
pub fn reported_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    (name.len() <= 64 && is_valid_name(name)).then(|| name.to_string())
}

/// A row's label: `name`, then `:params` when there are any, with `seed=N` among them when the
/// router's own seed differs from the run's (two seeds of one router are two rows).
fn row_label(name: &str, params: &Params, run_seed: u64) -> String {
    let mut shown: Vec<String> = Vec::new();
    if !params.is_empty() {
        shown.push(params.to_string());
    }
    if params.seed() != run_seed {
        shown.push(format!("seed={}", params.seed()));
    }
    if shown.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{}", shown.join(","))
    }
}

/// Names reserved for the reference bounds.
pub const BOUND_NAMES: [&str; 3] = ["oracle", "random", "r_o"];

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The built-in routers.
    pub fn builtin() -> Self {
        let mut r = Registry::new();
        r.register::<routereval_plugin_knn::Knn>(
            "knn",
            "k nearest training queries by cosine similarity; mean of their scores per candidate (RouterEval's PRKnn)",
            "k=5",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_best_on_train::BestOnTrain>(
            "best-on-train",
            "always the candidate with the best mean training score, whatever the query: the bar any router must clear",
            "none",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_cluster::Cluster>(
            "cluster",
            "k-means (k-means++) over the training embeddings; the best candidate of the nearest cluster (RouterEval's C-RoBERTa cluster router)",
            "k=3, iters=300, tol=0.0001",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_linear::Linear>(
            "linear",
            "a linear layer predicting each candidate's correctness, BCE + Adam, cosine lr (RouterEval's LinearR)",
            "lr=0.01, epochs=10, batch=1",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_logreg::LogReg>(
            "logreg",
            "an L2-regularised logistic regression per candidate on the embedding (L-BFGS; scikit-learn's LogisticRegression objective); not in the default run",
            "c=1, iters=100, tol=0.0001",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_mf::Mf>(
            "mf",
            "matrix factorisation: projected query times a learned embedding per candidate, BCE + Adam (RouteLLM's MF, m candidates); not in the default run",
            "rank=64, lr=0.001, epochs=20, batch=32",
        )
        .expect("built-in names are unique");
        r.register::<routereval_plugin_mlp::Mlp>(
            "mlp",
            "d-256-256-m ReLU network predicting each candidate's correctness, BCE + Adam, cosine lr (RouterEval's MLPR); not in the default run: minutes per pool",
            "lr=0.0001, epochs=100, batch=1, hidden=256, layers=2",
        )
        .expect("built-in names are unique");
        r.set_in_default_run("mlp", false);
        // About a third of a second per pool: it would take the default run past its 3 s.
        r.set_in_default_run("logreg", false);
        r.set_in_default_run("mf", false);
        r
    }

    /// Includes or leaves out the router `name` from runs without `--router` (no effect when
    /// there is no such router).
    pub fn set_in_default_run(&mut self, name: &str, yes: bool) {
        if let Some(r) = self.routers.iter_mut().find(|r| r.name == name) {
            r.in_default_run = yes;
        }
    }

    /// Adds a router under `name`.
    ///
    /// # Errors
    /// When the name is taken, reserved for a bound, or not made of letters, digits, `-`, `_`
    /// and `.`.
    pub fn register<R: Router + Send + 'static>(
        &mut self,
        name: &str,
        summary: &str,
        params: &str,
    ) -> Result<(), String> {
        if !is_valid_name(name) {
            return Err(format!(
                "router name `{name}` must be letters, digits, `-`, `_` or `.`"
            ));
        }
        if BOUND_NAMES.contains(&name) || self.get(name).is_some() {
            return Err(format!("router name `{name}` is already taken"));
        }
        self.routers.push(RouterInfo {
            name: name.to_string(),
            summary: summary.to_string(),
            params: params.to_string(),
            factory: factory::<R>,
            in_default_run: true,
        });
        Ok(())
    }

    /// The router called `name`.
    pub fn get(&self, name: &str) -> Option<&RouterInfo> {
        self.routers.iter().find(|r| r.name == name)
    }

    /// All routers, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &RouterInfo> {
        self.routers.iter()
    }
}

/// What one row of the results is: a router with its parameters, or a bound.
#[derive(Clone, Debug)]
pub enum Contender {
    /// A router from the registry.
    Router {
        /// Registry name.
        name: String,
        /// Its parameters (seed included).
        params: Params,
        /// How it is shown: `knn` or `knn:k=7`.
        label: String,
    },
    /// A WebAssembly plugin, run in the sandbox.
    Wasm {
        /// The loaded plugin.
        plugin: Arc<WasmPlugin>,
        /// Its parameters (seed included).
        params: Params,
        /// How it is shown: `knn@wasm` or `knn@wasm:k=7`.
        label: String,
    },
    /// A native plugin (a dynamic library), in-process or isolated in child processes.
    Native {
        /// The loaded plugin.
        plugin: Arc<NativePlugin>,
        /// Its parameters (seed included).
        params: Params,
        /// How it is shown: `knn@native` or `knn@native:k=7`.
        label: String,
    },
    /// A program run per evaluation (`--plugin 'exec:COMMAND'`), RouterEval's own scripts
    /// among them.
    Exec(Arc<ExecRouter>),
    /// A reference bound.
    Bound(Bound),
}

impl Contender {
    /// The row label.
    pub fn label(&self) -> String {
        match self {
            Contender::Router { label, .. }
            | Contender::Wasm { label, .. }
            | Contender::Native { label, .. } => label.clone(),
            Contender::Exec(e) => e.label(),
            Contender::Bound(b) => b.label(),
        }
    }

    /// Whether its metrics are the router's own word (an exec router that prints them).
    pub fn is_self_reported(&self) -> bool {
        matches!(self, Contender::Exec(e) if e.reporting() == Reporting::SelfReported)
    }

    /// Whether it is a reference bound.
    pub fn is_bound(&self) -> bool {
        matches!(self, Contender::Bound(_))
    }

    /// How it is loaded: `builtin`, `wasm`, `native`, `exec` or `bound` (the `kind` of its
    /// results).
    pub fn kind(&self) -> &'static str {
        match self {
            Contender::Router { .. } => "builtin",
            Contender::Wasm { .. } => "wasm",
            Contender::Native { .. } => "native",
            Contender::Exec(_) => "exec",
            Contender::Bound(_) => "bound",
        }
    }

    /// A loaded WebAssembly plugin with its parameters, in a run whose seed is `run_seed`
    /// (labelled `name@wasm`, with its parameters as [`Contender::build_seeded`] shows them).
    pub fn wasm(plugin: Arc<WasmPlugin>, params: Params, run_seed: u64) -> Contender {
        let label = row_label(&format!("{}@wasm", plugin.name()), &params, run_seed);
        Contender::Wasm {
            plugin,
            params,
            label,
        }
    }

    /// A loaded native plugin with its parameters, in a run whose seed is `run_seed` (labelled
    /// `name@native`, with its parameters as [`Contender::build_seeded`] shows them).
    pub fn native(plugin: Arc<NativePlugin>, params: Params, run_seed: u64) -> Contender {
        let label = row_label(&format!("{}@native", plugin.name()), &params, run_seed);
        Contender::Native {
            plugin,
            params,
            label,
        }
    }

    /// Parses `NAME[:key=value,...]`: a registered router or a bound (`oracle`, `random`,
    /// `r_o:p=0.5`). Router parameters are checked by building the router once.
    ///
    /// # Errors
    /// An unknown name (the message lists the known ones) or invalid parameters.
    pub fn parse(spec: &str, seed: u64, registry: &Registry) -> Result<Contender, String> {
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let params = Params::parse(rest, seed).map_err(|e| format!("`{spec}`: {e}"))?;
        Contender::build_seeded(name.trim(), params, seed, registry)
            .map_err(|e| format!("`{spec}`: {e}"))
    }

    /// Builds a contender from a name and parameters (see [`Contender::parse`]); the label
    /// never shows the seed.
    ///
    /// # Errors
    /// An unknown name (the message lists the known ones) or invalid parameters.
    pub fn build(name: &str, params: Params, registry: &Registry) -> Result<Contender, String> {
        let seed = params.seed();
        Contender::build_seeded(name, params, seed, registry)
    }

    /// As [`Contender::build`], in a run whose seed is `run_seed`: a router whose own seed
    /// differs is labelled with it (`mlp:epochs=5,seed=1`), so that two seeds of one router are
    /// two rows.
    ///
    /// # Errors
    /// As [`Contender::build`].
    pub fn build_seeded(
        name: &str,
        params: Params,
        run_seed: u64,
        registry: &Registry,
    ) -> Result<Contender, String> {
        match name {
            "oracle" | "random" => {
                params.expect_only(&[]).map_err(|e| e.to_string())?;
                Ok(Contender::Bound(if name == "oracle" {
                    Bound::Oracle
                } else {
                    Bound::Random
                }))
            }
            "r_o" => {
                params.expect_only(&["p"]).map_err(|e| e.to_string())?;
                let p = params.f64_or("p", 0.5).map_err(|e| e.to_string())?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("`p` must be in [0, 1], got {p}"));
                }
                Ok(Contender::Bound(Bound::OracleMix(p)))
            }
            _ => {
                if name.ends_with(".wasm")
                    || [".so", ".dylib", ".dll"].iter().any(|e| name.ends_with(e))
                {
                    return Err(format!(
                        "`{name}` is a file: load plugins with --plugin {name}"
                    ));
                }
                let Some(info) = registry.get(name) else {
                    let known: Vec<&str> = registry
                        .iter()
                        .map(|r| r.name.as_str())
                        .chain(["oracle", "random", "r_o:p=<p>"])
                        .collect();
                    return Err(format!(
                        "unknown router `{name}`; known: {} (see `routereval-engine routers`)",
                        known.join(", ")
                    ));
                };
                // A router that panics when built fails in each evaluation (kind `panic`), as a
                // plugin would; only an error it returns is a usage error here.
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (info.factory)(&params)
                }));
                if let Ok(Err(e)) = built {
                    return Err(e.to_string());
                }
                let label = row_label(name, &params, run_seed);
                Ok(Contender::Router {
                    name: name.to_string(),
                    params,
                    label,
                })
            }
        }
    }
}

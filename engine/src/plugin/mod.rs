//! The plugin layer: routers the engine does not link, each a [`crate::eval::contestant::Contestant`].
//!
//! **Invariant**: a plugin's failure is its evaluation's failure: nothing a plugin does (trap,
//! limit, bad output, bad ABI, crash) aborts the run or changes another evaluation.
//!
//! - [`policy`]: the sandbox policy (fuel, memory, deadline, caps) every load path reads.
//! - [`wasm`]: WebAssembly components in wasmtime, under the policy.
//! - [`native`]: native libraries through `abi_stable`, in-process or isolated in children.
//! - [`exec`]: programs run per evaluation (RouterEval's own scripts).
//! - [`child`]: a child process under a deadline, shared by `native`'s workers and `exec`.

pub mod child;
pub mod exec;
pub mod native;
pub mod policy;
pub mod wasm;

use std::fmt;
use std::sync::Arc;

use routereval_sdk::{Params, Queries, Split};

use crate::eval::contestant::{Contestant, ContestantKind, Job, row_label};
use crate::eval::outcome::Attempt;
use crate::failure::Failure;

/// A loaded plugin file (a WebAssembly component, a native library): what a
/// [`PluginContestant`] needs of it.
pub trait LoadedPlugin: Send + Sync + fmt::Debug {
    /// How plugins of this type are loaded; also the label's suffix (`knn@wasm`).
    const KIND: ContestantKind;

    /// The router's name (reported by the plugin, else the file's).
    fn name(&self) -> &str;

    /// Runs one evaluation with `params` on the views of a pool.
    fn evaluate(
        &self,
        params: &Params,
        train: &Split<'_>,
        val: &Split<'_>,
        test: &Queries<'_>,
    ) -> Attempt;

    /// What a rerun needs, as a JSON object: the file, its sha256, the SDK version and ABI, how
    /// it runs.
    fn provenance(&self) -> serde_json::Value;
}

/// A loaded plugin with its parameters: one row of the results.
#[derive(Debug)]
pub struct PluginContestant<P> {
    plugin: Arc<P>,
    params: Params,
    label: String,
}

impl<P: LoadedPlugin> PluginContestant<P> {
    /// The plugin with `params`, in a run whose seed is `run_seed` (labelled `name@wasm` or
    /// `name@native`, with its parameters as [`row_label`] shows them).
    pub fn new(plugin: Arc<P>, params: Params, run_seed: u64) -> PluginContestant<P> {
        let label = row_label(&format!("{}@{}", plugin.name(), P::KIND), &params, run_seed);
        PluginContestant {
            plugin,
            params,
            label,
        }
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }
}

impl<P: LoadedPlugin> Contestant for PluginContestant<P> {
    fn label(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> ContestantKind {
        P::KIND
    }

    fn evaluate(&self, job: &Job<'_>) -> Attempt {
        match job.views() {
            Ok((train, val, test)) => self.plugin.evaluate(&self.params, &train, &val, &test),
            Err(e) => Attempt::of(Err(Failure::from_router("prepare", &e))),
        }
    }

    fn provenance(&self) -> Option<serde_json::Value> {
        let mut p = self.plugin.provenance();
        p["router"] = self.label.clone().into();
        Some(p)
    }
}

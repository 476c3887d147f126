//! Run configuration files (TOML), e.g. `configs/default.toml`.
//!
//! ```toml
//! seed = 0
//! datasets = ["data/router_dataset"]    # relative to this file; empty: the embedded data
//! difficulty = "easy"                   # easy | hard | all
//! candidates = [3, 5]
//! groups = ["all_strong", "all_weak", "strong_to_weak"]
//! format = "table"                      # table | json | jsonl | csv | markdown
//! isolate = "auto"                      # native plugins: auto | process | none
//! trusted_plugins = ["<sha256>"]        # native plugins auto runs in-process
//!
//! [[router]]
//! name = "knn"
//! params = { k = 5 }
//!
//! [[router]]
//! name = "r_o"
//! params = { p = 0.5 }
//!
//! [[router]]                            # a WebAssembly plugin, run in the sandbox
//! plugin = "plugins/my_router.wasm"     # relative to this file
//! params = { k = 7 }
//!
//! [[router]]                            # a native plugin: isolated unless trusted
//! plugin = "target/release/libmy_router.so"   # relative to this file
//!
//! [[router]]                            # a program (see crate::plugin::exec); `name` labels its rows
//! exec = "python3 router/PRKnn-knn/knn.py --knearest 5 --data {npz}"  # run in the current directory
//!
//! [sandbox]                             # limits for plugins; defaults in SandboxPolicy
//! fuel = 10_000_000_000_000
//! timeout_secs = 3600
//! memory_mib = 2048
//! ```
//!
//! Command-line options override the file; `--router` and `--plugin` replace its router list.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use routereval_sdk::{ParamValue, Params};
use serde::Deserialize;

use crate::plugin::policy::SandboxPolicy;

/// A run configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed handed to every router.
    pub seed: Option<u64>,
    /// Dataset files or directories, relative to the config file.
    #[serde(default)]
    pub datasets: Vec<PathBuf>,
    /// `easy`, `hard` or `all`.
    pub difficulty: Option<String>,
    /// Pool sizes.
    pub candidates: Option<Vec<usize>>,
    /// Pool groups.
    pub groups: Option<Vec<String>>,
    /// `table`, `json`, `jsonl`, `csv` or `markdown`.
    pub format: Option<String>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
    /// Routers, plugins and bounds, in row order.
    #[serde(default, rename = "router")]
    pub routers: Vec<RouterEntry>,
    /// Limits for WebAssembly plugins.
    pub sandbox: Option<SandboxPolicy>,
    /// Where compiled plugins are cached, relative to the config file.
    pub cache_dir: Option<PathBuf>,
    /// Where native plugins run: `auto` (default), `process` or `none`.
    pub isolate: Option<String>,
    /// SHA-256 digests of native plugins trusted to run in-process under `isolate = "auto"`.
    #[serde(default)]
    pub trusted_plugins: Vec<String>,
}

/// One `[[router]]` table: a router or bound by `name`, or a WebAssembly `plugin` file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterEntry {
    /// Router or bound name.
    pub name: Option<String>,
    /// A plugin file (WebAssembly component or native library), relative to the config file.
    pub plugin: Option<PathBuf>,
    /// A command run per pool, as `--plugin 'exec:COMMAND'` (with `name`, `exec[NAME]:`).
    pub exec: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub params: toml::Table,
}

impl RouterEntry {
    /// The entry's parameters as SDK [`Params`] (a `seed` key overrides the run's seed).
    ///
    /// # Errors
    /// A value that is not a bool, integer, float or string.
    pub fn params(&self, seed: u64) -> Result<Params> {
        let who = self.label();
        let mut p = Params::new(seed);
        for (k, v) in &self.params {
            let v = match v {
                toml::Value::Boolean(b) => ParamValue::Bool(*b),
                toml::Value::Integer(i) => ParamValue::Int(*i),
                toml::Value::Float(f) => ParamValue::Float(*f),
                toml::Value::String(s) => ParamValue::Str(s.clone()),
                other => bail!(
                    "router `{who}`: parameter `{k}` is a {}, expected a bool, number or string",
                    other.type_str()
                ),
            };
            p = p
                .with(k, v)
                .map_err(|e| anyhow::anyhow!("router `{who}`: {e}"))?;
        }
        Ok(p)
    }

    /// The name or plugin path, for messages.
    pub fn label(&self) -> String {
        match (&self.name, &self.plugin, &self.exec) {
            (Some(n), _, _) => n.clone(),
            (None, Some(p), _) => p.display().to_string(),
            (None, None, Some(e)) => e.clone(),
            (None, None, None) => "?".into(),
        }
    }
}

impl RunConfig {
    /// Parses a config from TOML text.
    ///
    /// # Errors
    /// Invalid TOML, an unknown key, or a value of the wrong type.
    pub fn from_toml(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Reads a config file; relative dataset paths are resolved against its directory.
    ///
    /// # Errors
    /// An unreadable or invalid file; the message names it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config `{}`", path.display()))?;
        let mut cfg = RunConfig::from_toml(&text)
            .with_context(|| format!("invalid config `{}`", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rebase = |d: &mut PathBuf| {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        };
        cfg.datasets.iter_mut().for_each(rebase);
        cfg.cache_dir.iter_mut().for_each(rebase);
        for (i, r) in cfg.routers.iter_mut().enumerate() {
            match (&r.name, &mut r.plugin, &r.exec) {
                (Some(_), None, _) | (None, None, Some(_)) => {}
                (None, Some(p), None) => rebase(p),
                (_, Some(_), Some(_)) => bail!(
                    "invalid config `{}`: [[router]] number {} has both `plugin` and `exec`; \
                     give one",
                    path.display(),
                    i + 1
                ),
                _ => bail!(
                    "invalid config `{}`: [[router]] number {} needs exactly one of `name` (a \
                     router or bound), `plugin` (a WebAssembly component or native library) and \
                     `exec` (a command; `name` then labels its rows)",
                    path.display(),
                    i + 1
                ),
            }
        }
        if let Some(s) = &cfg.sandbox {
            s.check()
                .map_err(|e| anyhow::anyhow!("invalid config `{}`: {e}", path.display()))?;
        }
        Ok(cfg)
    }
}

//! Run configuration files (TOML), e.g. `configs/default.toml`.
//!
//! ```toml
//! seed = 0
//! datasets = ["data/router_dataset"]    # relative to this file; empty: the embedded data
//! difficulty = "easy"                   # easy | hard | all
//! candidates = [3, 5]
//! groups = ["all_strong", "all_weak", "strong_to_weak"]
//! format = "table"                      # table | json
//!
//! [[router]]
//! name = "knn"
//! params = { k = 5 }
//!
//! [[router]]
//! name = "r_o"
//! params = { p = 0.5 }
//! ```
//!
//! Command-line options override the file; `--router` replaces its router list.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use routereval_sdk::{ParamValue, Params};
use serde::Deserialize;

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
    /// `table` or `json`.
    pub format: Option<String>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
    /// Routers and bounds, in row order.
    #[serde(default, rename = "router")]
    pub routers: Vec<RouterEntry>,
}

/// One `[[router]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterEntry {
    /// Router or bound name.
    pub name: String,
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
        let mut p = Params::new(seed);
        for (k, v) in &self.params {
            let v = match v {
                toml::Value::Boolean(b) => ParamValue::Bool(*b),
                toml::Value::Integer(i) => ParamValue::Int(*i),
                toml::Value::Float(f) => ParamValue::Float(*f),
                toml::Value::String(s) => ParamValue::Str(s.clone()),
                other => bail!(
                    "router `{}`: parameter `{k}` is a {}, expected a bool, number or string",
                    self.name,
                    other.type_str()
                ),
            };
            p = p
                .with(k, v)
                .map_err(|e| anyhow::anyhow!("router `{}`: {e}", self.name))?;
        }
        Ok(p)
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
        for d in &mut cfg.datasets {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        Ok(cfg)
    }
}

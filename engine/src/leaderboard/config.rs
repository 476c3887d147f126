//! The leaderboard's configuration (`configs/leaderboard.toml`): the datasets it is bound to,
//! its pools, seeds, public/private split, statistics, submission rules and sandbox policy.
//! Read once by `leaderboard init` and stored in the database; later commands read the copy in
//! the database, never the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::Difficulty;
use crate::eval::run::Selection;
use crate::eval::stats::StatsConfig;
use crate::plugin::policy::SandboxPolicy;

/// A whole leaderboard configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// The leaderboard's title (pages and `show`).
    #[serde(default = "default_title")]
    pub title: String,
    /// The seed every router gets (its `Params::seed`).
    #[serde(default)]
    pub seed: u64,
    /// The datasets.
    #[serde(default)]
    pub data: DataConfig,
    /// Which pools of them count.
    #[serde(default)]
    pub pools: PoolsConfig,
    /// The public/private split of each benchmark's test set.
    #[serde(default)]
    pub split: SplitConfig,
    /// Bootstrap intervals and paired comparisons.
    #[serde(default = "default_stats")]
    pub statistics: StatsConfig,
    /// What a submission may be.
    #[serde(default)]
    pub submissions: SubmissionRules,
    /// The sandbox every submission runs in.
    #[serde(default)]
    pub sandbox: SandboxPolicy,
}

fn default_title() -> String {
    "RouterEval leaderboard".into()
}

fn default_stats() -> StatsConfig {
    StatsConfig {
        replicates: 1000,
        seed: 0,
        level: 0.95,
    }
}

/// `[data]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset files or directories of them, relative to the configuration file; empty means
    /// the engine's embedded LLMRouter data.
    #[serde(default)]
    pub datasets: Vec<PathBuf>,
}

/// `[pools]`: a filter over the datasets' pools, as `run`'s `--difficulty`, `--candidates` and
/// `--group`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsConfig {
    /// `easy` or `hard`; absent means both.
    pub difficulty: Option<Difficulty>,
    /// Pool sizes; absent means all.
    pub candidates: Option<Vec<usize>>,
    /// Pool groups; absent means all.
    pub groups: Option<Vec<String>>,
}

impl PoolsConfig {
    /// As the runner's selection.
    pub fn selection(&self) -> Selection {
        Selection {
            difficulty: self.difficulty,
            candidates: self.candidates.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// `[split]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Seed of the split.
    pub seed: u64,
    /// The share of each test set in the public part (the rest is private).
    pub public_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            seed: 0,
            public_fraction: 0.5,
        }
    }
}

/// `[submissions]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionRules {
    /// The largest component accepted, in MiB (a Python router is 30-45 MiB).
    pub max_component_mib: u64,
    /// Submissions one server token may make per UTC day.
    pub daily_quota: u32,
}

impl Default for SubmissionRules {
    fn default() -> Self {
        SubmissionRules {
            max_component_mib: 64,
            daily_quota: 5,
        }
    }
}

impl SubmissionRules {
    /// The size cap in bytes.
    pub fn max_bytes(&self) -> usize {
        usize::try_from(self.max_component_mib << 20).unwrap_or(usize::MAX)
    }
}

impl BoardConfig {
    /// Reads and checks the configuration at `path`; dataset paths become absolute (relative
    /// ones are taken from the file's directory).
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML of this shape, or a value is out of range;
    /// the message names the file and the setting.
    pub fn read(path: &Path) -> Result<BoardConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read leaderboard config `{}`", path.display()))?;
        let mut cfg: BoardConfig = toml::from_str(&text)
            .with_context(|| format!("leaderboard config `{}`", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for d in &mut cfg.data.datasets {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        cfg.check()
            .with_context(|| format!("leaderboard config `{}`", path.display()))?;
        Ok(cfg)
    }

    /// Checks the values are usable.
    ///
    /// # Errors
    /// A message naming the setting and its allowed range.
    pub fn check(&self) -> Result<()> {
        let f = self.split.public_fraction;
        if !(f > 0.0 && f < 1.0) {
            bail!("[split] public_fraction must be between 0 and 1 (exclusive), got {f}");
        }
        if self.statistics.replicates > 100_000 {
            bail!(
                "[statistics] replicates must be at most 100000, got {}",
                self.statistics.replicates
            );
        }
        let level = self.statistics.level;
        if !(level > 0.0 && level < 1.0) {
            bail!("[statistics] level must be between 0 and 1 (exclusive), got {level}");
        }
        if !(1..=1024).contains(&self.submissions.max_component_mib) {
            bail!(
                "[submissions] max_component_mib must be 1 to 1024, got {}",
                self.submissions.max_component_mib
            );
        }
        if self.title.trim().is_empty() || self.title.chars().count() > 200 {
            bail!("title must be 1 to 200 characters");
        }
        self.sandbox
            .check()
            .map_err(|e| anyhow::anyhow!("[sandbox] {e}"))?;
        Ok(())
    }
}

//! One module per command.

pub mod build_dataset;
pub mod cache;
pub mod embed;
pub mod inspect;
pub mod leaderboard;
pub mod merge;
pub mod rerun;
pub mod routers;
pub mod run;
pub mod synth;

//! Integration tests: one binary, driving the engine through its public interface (the CLI, run
//! in-process, and the SDK) on real data from `../shared/data` and the embedded dataset.

mod build;
mod claims;
mod cli;
mod configs;
mod embed;
mod exec;
mod fixtures;
mod hostile;
mod leaderboard;
mod llmrouter;
mod native;
mod pinned;
mod python_sdk;
mod reports;
mod synth;
mod util;
mod validation;
mod wasm;

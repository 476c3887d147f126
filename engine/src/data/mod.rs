//! The data layer: what a benchmark is (the model), how it is read (safely: nothing in a file is
//! ever executed), built, written and made up.
//!
//! **Invariant**: nothing here knows about routers, plugins or metrics; reading a dataset never
//! executes code from it, and every loaded dataset has passed
//! [`RouterDataset::check_values`].
//!
//! - [`model`]: `RouterDataset`, `SplitData`, `Pool`, `Matrix`, the reference accuracies.
//! - [`pickle`]: the pickle interpreter that executes nothing.
//! - [`load`]: RouterEval's layout on top of the decoded value, and every other format.
//! - [`embedded`]: the default data, bundled in the binary.
//! - [`import`], [`build`], [`export`]: populations from researchers' layouts, built into router
//!   datasets by RouterEval's rules, and written in RouterEval's pickle layout.
//! - [`embed`]: embeddings computed from prompts with a local sentence encoder.
//! - [`synth`]: the synthetic 12-benchmark suite.
//! - [`inspect`]: what a dataset file holds.

pub mod build;
pub mod embed;
pub mod embedded;
pub mod export;
pub mod import;
pub mod inspect;
pub mod load;
pub mod model;
pub mod pickle;
pub mod synth;

pub use model::*;

//! The evaluation layer: the plan (datasets x pools x contestants), the one interface every
//! contestant implements, the registry of built-in routers, and the engine's own checks and
//! metrics.
//!
//! **Invariant**: the engine validates every router output before any metric is computed; a
//! router never scores itself. Metrics and bounds are pure functions of the test scores and the
//! router's output. Results are in plan order and bit-identical whatever the thread count.
//!
//! - [`run`]: the plan and its parallel execution; panics caught, outputs validated and scored in
//!   one place.
//! - [`contestant`]: the [`contestant::Contestant`] trait, built-in routers and bounds as
//!   contestants.
//! - [`registry`]: routers by name.
//! - [`outcome`]: what one evaluation gives.
//! - [`validate`], [`metrics`], [`bounds`]: the checks and the numbers.

pub mod bounds;
pub mod contestant;
pub mod metrics;
pub mod outcome;
pub mod registry;
pub mod run;
pub mod stats;
pub mod validate;

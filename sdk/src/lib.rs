//! # routereval-sdk
//!
//! Everything an LLM-router author depends on. A *router* looks at a query (its embedding and
//! its prompt) and picks one LLM out of a pool of `m` candidates. You implement [`Router`]; the
//! `routereval-engine` fits it on the training split, asks it to route the held-out test
//! queries, checks its answer, and computes the benchmark's metrics itself. Your router never
//! sees test scores, and never reports its own accuracy.
//!
//! ## Example
//!
//! A router that always picks the candidate with the best mean score on the training split:
//!
//! ```
//! use routereval_sdk::{argmax, Params, Queries, Router, RouterError, Routing, Split};
//!
//! pub struct BestOnTrain {
//!     best: usize,
//!     m: usize,
//! }
//!
//! impl Router for BestOnTrain {
//!     fn new(params: &Params) -> Result<Self, RouterError> {
//!         params.expect_only(&[])?; // this router takes no hyperparameters
//!         Ok(BestOnTrain { best: 0, m: 0 })
//!     }
//!
//!     fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
//!         let means = train.candidate_means();
//!         self.best = argmax(&means).ok_or_else(|| RouterError::Fit("no candidates".into()))?;
//!         self.m = train.num_candidates();
//!         Ok(())
//!     }
//!
//!     fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
//!         Routing::one_hot(self.m, vec![self.best as u32; queries.len()])
//!     }
//! }
//!
//! // What the engine does, in miniature: 3 training queries, 2 candidates, 2-d embeddings.
//! let names = vec!["model-a".to_string(), "model-b".to_string()];
//! let emb = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let queries = Queries::new(3, 2, &emb, routereval_sdk::Texts::EMPTY)?;
//! let scores = [0.0, 1.0, 1.0, 1.0, 0.0, 1.0];
//! let train = Split::new(queries, &scores, &names)?;
//!
//! let mut router = BestOnTrain::new(&Params::new(0))?;
//! router.fit(&train, &train)?;
//! let routing = router.route(&queries)?;
//! assert_eq!(routing.choices(), Some(&[1, 1, 1][..]));
//! # Ok::<(), RouterError>(())
//! ```
//!
//! ## Core concepts
//!
//! - [`Router`]: `new(params)`, `fit(train, val)`, `route(queries)`; three methods, no more.
//! - [`Split`] and [`Queries`]: borrowed, row-major `f32` views (embeddings `N x d`, scores
//!   `N x m`) plus prompts and candidate names. Nothing is copied to hand them to you; copy what
//!   you keep.
//! - [`Routing`]: your belief, a probability distribution over the candidates for each query,
//!   and optionally your explicit choice per query. The engine validates it (shape, finite,
//!   non-negative, rows summing to 1 within 1e-4, choices in range) and rejects it otherwise.
//! - [`Params`]: typed hyperparameters from the command line (`knn:k=7`) or TOML, and the seed.
//!   Derive all randomness from [`Params::seed`] with [`Rng`].
//! - [`RouterError`]: one error type; its variant becomes the failure's kind in the results.
//! - Helpers: [`softmax_in_place`], [`normalise_in_place`], [`argmax`], [`dot`],
//!   [`cosine_similarity`], [`top_k`], [`matmul_abt`], [`top_k_dot`] (kNN search), [`Rng`];
//!   [`HeldMatrix`] for a matrix kept across calls and handed to kernels (held by the engine in
//!   a WebAssembly plugin, so it crosses once).
//!
//! ## Plugins
//!
//! `routereval_sdk::export_router!(MyRouter);` at the root of a router crate makes it a plugin,
//! two ways from the same source:
//!
//! - **WebAssembly** (untrusted code, sandboxed): built for `wasm32-wasip2` with SIMD, the
//!   crate's `cdylib` is a component the engine runs in its sandbox
//!   (`routereval-engine --plugin my_router.wasm`):
//!
//!   ```text
//!   rustup target add wasm32-wasip2
//!   RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build --release --target wasm32-wasip2
//!   ```
//!
//!   Without `+simd128` the same code runs about 5x slower; `+relaxed-simd` lets
//!   [`matmul_abt`] fuse its multiply-adds (the engine runs relaxed SIMD deterministically).
//!   This workspace's `.cargo/config.toml` sets both for `wasm32-wasip2`, so there a plain
//!   `cargo build --release --target wasm32-wasip2` does.
//! - **Native** (trusted code, full speed): built for the host with the crate's own
//!   `native-plugin` feature, the `cdylib` (`libmy_router.so`, `.dylib`, `my_router.dll`)
//!   exports an `abi_stable` root module ([`native`]):
//!
//!   ```text
//!   cargo build --release --features native-plugin
//!   routereval-engine --plugin target/release/libmy_router.so
//!   ```
//!
//!   The crate declares the feature itself (`[features] native-plugin = []`; the compiler warns
//!   about an unexpected `cfg` until it does). Without it the root module is not emitted, so
//!   the crate's `rlib` can be linked into a program beside other routers: `abi_stable` finds
//!   the module under one fixed symbol name, which two linked routers would both define.
//!
//! [`abi`] describes both contracts and the rules by which they may change.
//!
//! ## Crate features
//!
//! None. The crate is `std`-only and builds for the host and for WebAssembly; the native ABI
//! (and its `abi_stable` dependency) exists on every target but WebAssembly.
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

#[cfg(target_family = "wasm")]
#[doc(hidden)]
#[path = "wasm_guest.rs"]
pub mod __wasm;
pub mod abi;
mod about;
mod data;
mod error;
mod held;
mod log;
mod math;
#[cfg(not(target_family = "wasm"))]
pub mod native;
pub mod nn;
mod params;
mod routing;

pub use about::{About, Describe, ParamDoc};
pub use data::{Queries, Split, Texts};
pub use error::RouterError;
pub use held::{HeldMatrix, RowMeans};
pub use log::{Level, log};
pub use math::{matmul_abt, top_k_dot};
pub use params::{ParamValue, Params};
pub use routereval_kernels::{
    Rng, argmax, cosine_similarity, dot, exp_det, l2_norm, l2_normalise_rows, ln_1p_det,
    normalise_in_place, sigmoid_det, softmax_f64, softmax_in_place, top_k, top_k_dot_local,
};
pub use routing::Routing;

/// The SDK's version; plugins report it so the engine can refuse an incompatible one.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An LLM router.
///
/// The engine calls `new` once per evaluation (one benchmark, one candidate pool), then `fit`
/// once, then `route` on the test queries. Every call may fail with a [`RouterError`]; a panic is
/// caught by the engine and reported as [`RouterError::Panic`], but returning an error is better:
/// say what is wrong and how to fix it.
pub trait Router: Sized {
    /// Builds an unfitted router from its hyperparameters.
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] for an unknown key, a wrong type or an out-of-range value.
    fn new(params: &Params) -> Result<Self, RouterError>;

    /// Trains on the training split; the validation split is there for tuning and early
    /// stopping. Both have the same candidates, in the same column order as the test split.
    ///
    /// # Errors
    /// Any [`RouterError`]; usually [`RouterError::Fit`] or [`RouterError::InvalidInput`].
    fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError>;

    /// Routes queries: one belief row (and optionally one choice) per query.
    ///
    /// # Errors
    /// Any [`RouterError`]; usually [`RouterError::Route`] or [`RouterError::InvalidInput`].
    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError>;
}

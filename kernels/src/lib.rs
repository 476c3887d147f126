//! # routereval-kernels
//!
//! The numeric code of routereval routers, apart from their contract (`routereval-sdk`, whose
//! public items are the plugin ABI): deterministic `exp` / `ln_1p` / sigmoid, softmax, argmax,
//! dot products, `a · bᵀ` ([`matmul_abt`], on `matrixmultiply`'s kernels natively and its own
//! SIMD kernel in WebAssembly), top-k and blocked nearest-neighbour search
//! ([`top_k_dot_local`]), the small dense networks of LinearR / MLPR / MF ([`nn`]) with their
//! hot loops compiled per instruction set, and a seeded [`Rng`].
//!
//! Routers reach all of it through `routereval-sdk`, which re-exports it. The engine's host
//! kernels (what a WebAssembly plugin's `matmul_abt` and `top_k_dot` run on) call this crate
//! directly: the same code on every load path, so the results are bit-identical.
//!
//! Every function gives the same bits on every platform: no reassociation, no fused
//! multiply-add in the dispatched loops, our own `exp`.
#![deny(missing_docs)]

#[macro_use]
mod dispatch;
pub use dispatch::instruction_set;
mod math;
pub mod nn;
mod rng;

pub use math::{
    argmax, cosine_similarity, dot, exp_det, l2_norm, l2_normalise_rows, ln_1p_det, matmul_abt,
    mean_of_row_groups, normalise_in_place, sigmoid_det, softmax_f64, softmax_in_place, top_k,
    top_k_dot_local,
};
pub use rng::Rng;

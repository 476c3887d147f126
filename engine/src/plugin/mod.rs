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

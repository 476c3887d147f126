//! # routereval-engine
//!
//! Evaluates LLM routers the way the RouterEval benchmark does, with the metrics computed by the
//! engine rather than by the router: a router returns, for each test query, its belief over the
//! candidate LLMs (and optionally its choice); the engine validates that output and computes
//! mu, V_R, V_B and Ep from test scores the router never sees.
//!
//! The binary `routereval-engine` is a thin wrapper over [`cli::main_with`]. Programs that embed
//! the engine (to evaluate a router of their own without building a plugin) register it in a
//! [`routers::Registry`] and call the same function:
//!
//! ```no_run
//! use routereval_engine::routers::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::builtin();
//!     // registry.register::<MyRouter>("mine", "what it does", "its parameters").unwrap();
//!     routereval_engine::cli::main_with(&registry)
//! }
//! ```
//!
//! [`cli::run_cli`] takes the arguments and output streams explicitly (the tests use it).
//!
//! Modules, in data-flow order: [`pickle`] and [`dataset`] read datasets (never executing
//! anything), [`embedded`] holds the default data, [`data`] is the data model, [`run`] plans and
//! executes evaluations in parallel, [`wasm`] loads and runs WebAssembly plugins under the
//! [`sandbox`] policy, [`validate`] checks router output, [`metrics`] and [`bounds`]
//! are pure functions, [`report`] renders tables and JSON, [`cli`] and [`config`] are the user
//! interface.

pub mod bounds;
pub mod build;
pub mod cli;
pub mod config;
pub mod data;
pub mod dataset;
pub mod embedded;
pub mod exec;
pub mod export;
pub mod import;
pub mod inspect;
pub mod isolate;
pub mod metrics;
pub mod native;
pub mod pickle;
pub mod report;
pub mod routers;
pub mod run;
pub mod sandbox;
pub mod synth;
pub mod validate;
pub mod wasm;

/// For the unit tests: an allocator that counts each thread's live heap bytes, so a test can
/// bound the memory a decoder uses on hostile input (see `pickle`'s fuzz test).
#[cfg(test)]
pub(crate) mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grew(by: usize) {
        let live = LIVE.with(|l| {
            let v = l.get().saturating_add(by);
            l.set(v);
            v
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }

    fn shrank(by: usize) {
        LIVE.with(|l| l.set(l.get().saturating_sub(by)));
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; the counters are
    // const-initialised thread-locals without destructors, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            p
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Runs `f` and returns its result with the most heap memory this thread held above what it
    /// held before, in bytes.
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, peak.saturating_sub(base))
    }
}

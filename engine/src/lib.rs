//! # routereval-engine
//!
//! Evaluates LLM routers the way the RouterEval benchmark does, with the metrics computed by the
//! engine rather than by the router: a router returns, for each test query, its belief over the
//! candidate LLMs (and optionally its choice); the engine validates that output and computes
//! mu, V_R, V_B and Ep from test scores the router never sees.
//!
//! The binary `routereval-engine` is a thin wrapper over [`cli::main_with`]. Programs that embed
//! the engine (to evaluate a router of their own without building a plugin) register it in a
//! [`Registry`] and call the same function:
//!
//! ```no_run
//! use routereval_engine::Registry;
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
//! The modules are layers, in data-flow order; a layer imports only the layers above it in this
//! list, never one below (see `ARCHITECTURE.md`):
//!
//! 1. [`util`] and [`failure`]: leaves. Text helpers; the vocabulary of failures
//!    ([`failure::FailureKind`]) every layer below reports in.
//! 2. [`data`]: datasets: the model, the pickle reader that executes nothing, RouterEval's
//!    layout and other formats, building, exporting, the synthetic suite, the embedded data.
//! 3. [`eval`]: the plan, the [`eval::contestant::Contestant`] interface, the registry of
//!    built-in routers, validation, metrics and bounds, the runner.
//! 4. [`plugin`]: contestants the engine does not link: WebAssembly components under the
//!    sandbox policy, native libraries (isolated in child processes), `exec:` programs.
//! 5. [`report`]: tables and JSON.
//! 6. [`cli`]: the command line: arguments, settings from config and flags, one module per
//!    command.

pub mod cli;
pub mod data;
pub mod eval;
pub mod failure;
pub mod plugin;
pub mod report;
pub mod util;

pub use eval::registry::Registry;

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

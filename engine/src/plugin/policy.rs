//! The sandbox policy for WebAssembly plugins: what an untrusted router may consume.
//!
//! Set in a run configuration's `[sandbox]` table or with the command line's sandbox options;
//! the defaults are safe for strangers' code and generous enough for RouterEval's largest
//! pools (m = 1000, 11,233 training queries).

use serde::{Deserialize, Serialize};

/// Limits applied to every evaluation of a WebAssembly plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxPolicy {
    /// Fuel budget per evaluation (`create` + `fit` + `route`): about one unit per WebAssembly
    /// instruction. Deterministic: the same plugin on the same data always uses the same fuel,
    /// which the results report as the evaluation's compute cost. `0` means no fuel limit.
    pub fuel: u64,
    /// Wall-clock deadline per evaluation in seconds (enforced by epoch interruption, checked
    /// every 50 ms): a backstop for what fuel does not catch, such as a blocking host call.
    pub timeout_secs: f64,
    /// Linear memory cap per evaluation, in MiB (WebAssembly's 32-bit memories stop at 4096).
    pub memory_mib: u64,
    /// Maximum WebAssembly stack, in KiB; deeper recursion fails as `stack_overflow`.
    pub stack_kib: u64,
    /// Cap on a routing's size (belief and choices), in MiB; larger output is `invalid_output`.
    pub max_output_mib: u64,
    /// Cap on what an evaluation may log (the host log and standard output / error), in KiB;
    /// the rest is dropped and counted.
    pub max_log_kib: u64,
    /// Canonicalise NaN bit patterns after every float operation, so results are bit-identical
    /// on every host. Costs a little speed in float-heavy code.
    pub nan_canonicalization: bool,
    /// Compute the SDK's heavy kernels (`matmul_abt`) natively in the engine, charged to the
    /// plugin's fuel at one unit per 8 multiply-adds, instead of in WebAssembly. Several times
    /// faster; the results then equal a built-in router's (same kernel), but depend on the
    /// host's vector instructions in the last bits, as native code does.
    pub host_kernels: bool,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        SandboxPolicy {
            fuel: 10_000_000_000_000,
            timeout_secs: 3600.0,
            memory_mib: 2048,
            stack_kib: 1024,
            max_output_mib: 256,
            max_log_kib: 64,
            nan_canonicalization: true,
            host_kernels: true,
        }
    }
}

/// The largest stack a plugin may ask for; the worker threads that run plugins get this much
/// plus room for the host.
pub const MAX_STACK_KIB: u64 = 64 * 1024;

impl SandboxPolicy {
    /// Checks the values are usable.
    ///
    /// # Errors
    /// A message naming the setting and its allowed range.
    pub fn check(&self) -> Result<(), String> {
        if !(self.timeout_secs > 0.0 && self.timeout_secs.is_finite()) {
            return Err(format!(
                "sandbox timeout must be a positive number of seconds, got {}",
                self.timeout_secs
            ));
        }
        if !(1..=4096).contains(&self.memory_mib) {
            return Err(format!(
                "sandbox memory limit must be 1 to 4096 MiB, got {}",
                self.memory_mib
            ));
        }
        if !(64..=MAX_STACK_KIB).contains(&self.stack_kib) {
            return Err(format!(
                "sandbox stack limit must be 64 to {MAX_STACK_KIB} KiB, got {}",
                self.stack_kib
            ));
        }
        if self.max_output_mib == 0 {
            return Err("sandbox output cap must be at least 1 MiB".into());
        }
        Ok(())
    }

    /// The threads plugins run on: `threads` of them (all cores when `None`), each with this
    /// policy's WebAssembly stack and room for the host.
    ///
    /// # Errors
    /// `threads` is 0, or the threads cannot start.
    pub fn worker_pool(&self, threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
        use anyhow::Context as _;
        let stack = usize::try_from(self.stack_kib * 1024)? + (8 << 20);
        let mut b = rayon::ThreadPoolBuilder::new().stack_size(stack);
        if let Some(n) = threads {
            if n == 0 {
                anyhow::bail!("--threads must be at least 1");
            }
            b = b.num_threads(n);
        }
        b.build().context("cannot start the worker threads")
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib << 20).unwrap_or(usize::MAX)
    }

    /// The output cap in bytes.
    pub fn max_output_bytes(&self) -> usize {
        usize::try_from(self.max_output_mib << 20).unwrap_or(usize::MAX)
    }

    /// The log cap in bytes.
    pub fn max_log_bytes(&self) -> usize {
        usize::try_from(self.max_log_kib << 10).unwrap_or(usize::MAX)
    }
}

//! The vocabulary of failures: why one evaluation failed, in one place. (A leaf: it imports
//! nothing from the crate but is imported by every layer that can fail an evaluation.)
//!
//! A failure is always its evaluation's alone; the run goes on. Its kind is a stable snake_case
//! string in JSON and CSV ([`FailureKind::as_str`]); new kinds may be added, existing ones never
//! change spelling.
//!
//! A router's own [`RouterError`] becomes a failure through one function,
//! [`Failure::from_router`], whatever the load path (built in, WebAssembly, native in-process or
//! isolated): the variant decides the kind, as the SDK documents.

use std::fmt;

use routereval_sdk::RouterError;
use serde::{Deserialize, Serialize};

/// What kind of failure an evaluation had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    // The router's own word: a `RouterError` it returned, one kind per variant.
    /// [`RouterError::InvalidParams`]: a parameter is unknown, mistyped or out of range.
    InvalidParams,
    /// [`RouterError::InvalidInput`]: the router cannot use the data it was given.
    InvalidInput,
    /// [`RouterError::Fit`]: training failed.
    FitError,
    /// [`RouterError::Route`]: routing failed.
    RouteError,
    /// [`RouterError::Other`] (and variants newer than this engine knows).
    RouterError,
    /// The router panicked ([`RouterError::Panic`], a caught panic, or a WebAssembly trap after
    /// the SDK's panic hook reported the message).
    Panic,

    // The engine's checks.
    /// The routing failed validation (shape, finiteness, non-negativity, row sums, choices).
    InvalidOutput,
    /// A plugin built against an incompatible ABI or SDK version.
    AbiMismatch,
    /// A plugin that does not export what the ABI requires.
    MissingExport,

    // The sandbox's limits (WebAssembly), and the deadline (every plugin kind).
    /// The fuel budget ran out.
    OutOfFuel,
    /// The deadline passed.
    Timeout,
    /// The memory cap was reached.
    OutOfMemory,
    /// The stack overflowed.
    StackOverflow,
    /// Any other WebAssembly trap (unreachable, out-of-bounds access, `exit`).
    Trap,

    // Child processes (isolated native plugins, exec routers).
    /// The child was killed by a signal (segfault, bus error, ...).
    Crash,
    /// The child aborted (SIGABRT).
    Abort,
    /// A native library changed or vanished during the run.
    LoadError,
    /// The engine's worker process failed (could not start, sent garbage).
    WorkerError,
    /// An `exec:` program could not start or exited with an error.
    ExecFailed,
}

impl FailureKind {
    /// The stable snake_case name (`router_error`, `out_of_fuel`, ...), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::InvalidParams => "invalid_params",
            FailureKind::InvalidInput => "invalid_input",
            FailureKind::FitError => "fit_error",
            FailureKind::RouteError => "route_error",
            FailureKind::RouterError => "router_error",
            FailureKind::Panic => "panic",
            FailureKind::InvalidOutput => "invalid_output",
            FailureKind::AbiMismatch => "abi_mismatch",
            FailureKind::MissingExport => "missing_export",
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::StackOverflow => "stack_overflow",
            FailureKind::Trap => "trap",
            FailureKind::Crash => "crash",
            FailureKind::Abort => "abort",
            FailureKind::LoadError => "load_error",
            FailureKind::WorkerError => "worker_error",
            FailureKind::ExecFailed => "exec_failed",
        }
    }

    /// Every kind, in declaration order (for docs and tests).
    pub const ALL: [FailureKind; 19] = [
        FailureKind::InvalidParams,
        FailureKind::InvalidInput,
        FailureKind::FitError,
        FailureKind::RouteError,
        FailureKind::RouterError,
        FailureKind::Panic,
        FailureKind::InvalidOutput,
        FailureKind::AbiMismatch,
        FailureKind::MissingExport,
        FailureKind::OutOfFuel,
        FailureKind::Timeout,
        FailureKind::OutOfMemory,
        FailureKind::StackOverflow,
        FailureKind::Trap,
        FailureKind::Crash,
        FailureKind::Abort,
        FailureKind::LoadError,
        FailureKind::WorkerError,
        FailureKind::ExecFailed,
    ];

    /// The kind a [`RouterError`] of this variant is reported as: the one mapping, used on
    /// every load path.
    pub fn of_router_error(e: &RouterError) -> FailureKind {
        match e {
            RouterError::InvalidParams(_) => FailureKind::InvalidParams,
            RouterError::InvalidInput(_) => FailureKind::InvalidInput,
            RouterError::Fit(_) => FailureKind::FitError,
            RouterError::Route(_) => FailureKind::RouteError,
            RouterError::Panic(_) => FailureKind::Panic,
            // `Other`, and variants a newer SDK may add.
            _ => FailureKind::RouterError,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an evaluation failed: its kind and a message that names what happened (and, once the
/// runner has added it, the router and the pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What happened, and where possible how to fix it.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The failure a router's error at `stage` (`create`, `fit`, `route`) is: the kind from the
    /// variant, the message the router wrote (cut to 4 KiB).
    pub fn from_router(stage: &str, e: &RouterError) -> Failure {
        let kind = FailureKind::of_router_error(e);
        let said = crate::util::clip(e.message(), 4096);
        let message = match kind {
            FailureKind::Panic => format!("`{stage}` panicked: {said}"),
            _ => format!("`{stage}` returned an error: {}: {said}", what(e)),
        };
        Failure { kind, message }
    }

    /// The same failure, its message prefixed by `context` (`router `knn` on ...`).
    pub fn within(self, context: &str) -> Failure {
        Failure {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

/// How a router error's variant reads in a message (as its `Display` begins).
fn what(e: &RouterError) -> &'static str {
    match e {
        RouterError::InvalidParams(_) => "invalid parameters",
        RouterError::InvalidInput(_) => "invalid input",
        RouterError::Fit(_) => "fit failed",
        RouterError::Route(_) => "route failed",
        RouterError::Panic(_) => "router panicked",
        _ => "router error",
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_their_snake_case_names() {
        for kind in FailureKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: FailureKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn every_router_error_variant_has_the_kind_the_sdk_names() {
        let cases = [
            RouterError::InvalidParams("p".into()),
            RouterError::InvalidInput("i".into()),
            RouterError::Fit("f".into()),
            RouterError::Route("r".into()),
            RouterError::Panic("x".into()),
            RouterError::Other("o".into()),
        ];
        for e in &cases {
            let f = Failure::from_router("fit", e);
            // The SDK documents `RouterError::kind` as the evaluation's `error.kind`.
            assert_eq!(f.kind.as_str(), e.kind(), "{e:?}");
            assert!(f.message.contains(e.message()), "{f:?}");
        }
    }
}

//! Logging from inside a router.

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Progress worth knowing.
    Info,
    /// Detail for the router's author.
    Debug,
}

/// Writes one line to the evaluation's log. In a WebAssembly plugin the line goes to the
/// engine, which keeps it (up to its sandbox policy's cap) with the evaluation's result; built
/// in or native, it goes to standard error.
pub fn log(level: Level, message: &str) {
    #[cfg(target_family = "wasm")]
    crate::__wasm::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    eprintln!("[{level:?}] {message}");
}

//! The engine's binary, built inside this package so that the integration tests and benchmarks
//! know its path (`CARGO_BIN_EXE_engine`): they run it as a subprocess, and as the worker of
//! isolated native plugins. The same two lines as `engine/src/main.rs`.

fn main() -> std::process::ExitCode {
    routereval_engine::cli::main_with(&routereval_engine::Registry::builtin())
}

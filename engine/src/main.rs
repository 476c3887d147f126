//! `routereval-engine`: see `routereval-engine --help`.

use std::process::ExitCode;

use routereval_engine::Registry;
use routereval_engine::cli::main_with;

fn main() -> ExitCode {
    main_with(&Registry::builtin())
}

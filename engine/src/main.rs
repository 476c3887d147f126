//! `routereval-engine`: see `routereval-engine --help`.

use std::process::ExitCode;

use routereval_engine::cli::main_with;
use routereval_engine::routers::Registry;

fn main() -> ExitCode {
    main_with(&Registry::builtin())
}

//! `routereval-engine`: see `routereval-engine --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use routereval_engine::cli::{Io, run_cli};
use routereval_engine::routers::Registry;

fn main() -> ExitCode {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let err_is_terminal = err.is_terminal();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        err_is_terminal,
    };
    let status = run_cli(std::env::args_os(), &Registry::builtin(), &mut io);
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}

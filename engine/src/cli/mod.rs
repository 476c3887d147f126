//! The command line: `routereval-engine [run] [OPTIONS]`, `routers`, `inspect`, `build-dataset`,
//! `synth`. [`args`] declares them, [`settings`] merges a run's config file with its flags,
//! [`commands`] has one module per command, [`config`] reads the TOML run configurations.
//!
//! **Invariant**: the CLI is the only layer that touches the process: its arguments, standard
//! streams, current directory and exit status. Everything below takes what it needs as values.

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

use crate::cli::args::{Cli, Command};
use crate::eval::registry::Registry;

pub mod args;
pub mod commands;
pub mod config;
pub mod manifest;
pub mod settings;

/// How a command ended: the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every evaluation succeeded (or the command did what it was asked).
    Success = 0,
    /// Some evaluations failed; the others are still reported.
    SomeFailed = 1,
    /// A usage, config or dataset error: nothing was evaluated.
    UsageError = 2,
}

fn done(_: ()) -> ExitStatus {
    ExitStatus::Success
}

impl ExitStatus {
    /// The numeric exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Where the CLI writes, and whether standard error is a terminal.
#[allow(
    missing_debug_implementations,
    reason = "holds trait objects for the output streams"
)]
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut (dyn Write + Send),
    /// Standard error.
    pub err: &'a mut (dyn Write + Send),
    /// Whether standard error is a terminal (progress is shown by default then).
    pub err_is_terminal: bool,
}

/// The whole program: runs the process's command line with the routers of `registry` on the
/// real standard streams, and turns the status into an exit code. The `routereval-engine`
/// binary is this with the built-in routers; a program that adds its own routers calls it with
/// its registry.
pub fn main_with(registry: &Registry) -> std::process::ExitCode {
    use std::io::IsTerminal;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let err_is_terminal = err.is_terminal();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        err_is_terminal,
    };
    let status = run_cli(std::env::args_os(), registry, &mut io);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(2))
}

/// Runs the command line `args` (including the program name) with the routers of `registry`.
/// Returns the exit status: 0 all evaluations succeeded, 1 some failed, 2 a usage or input error.
pub fn run_cli<I, T>(args: I, registry: &Registry, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = if io.err_is_terminal {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = write!(io.out, "{}", e.render());
                    ExitStatus::Success.code()
                }
                _ => {
                    let _ = write!(io.err, "{text}");
                    ExitStatus::UsageError.code()
                }
            };
        }
    };
    let result = match cli.command {
        // The worker's status is its own protocol's (see `isolate`), not an `ExitStatus`.
        Some(Command::NativeWorker) => return crate::plugin::native::isolate::worker_main(),
        Some(Command::Routers) => commands::routers::list_routers(registry, io.out).map(done),
        Some(Command::BuildDataset(args)) => {
            commands::build_dataset::build_dataset(&args, io.out).map(done)
        }
        Some(Command::Inspect(args)) => commands::inspect::inspect(&args, io.out).map(done),
        Some(Command::Synth(args)) => commands::synth::synth(&args, io.out, io.err).map(done),
        Some(Command::Run(args)) => commands::run::run(&args, registry, io),
        Some(Command::Merge(args)) => commands::merge::merge(&args, io.out, io.err),
        Some(Command::Rerun(args)) => commands::rerun::rerun(&args, registry, io),
        Some(Command::Cache(args)) => commands::cache::cache(&args, io.out),
        Some(Command::Embed(args)) => commands::embed::embed(&args, io.out).map(done),
        Some(Command::Leaderboard(cmd)) => commands::leaderboard::leaderboard(cmd, io),
        None => commands::run::run(&cli.run, registry, io),
    };
    match result {
        Ok(status) => status.code(),
        Err(e) => {
            // Errors quote files and plugins (keys, names, messages): no escape sequences.
            let text = format!("{e:#}");
            let _ = writeln!(
                io.err,
                "error: {}",
                crate::util::terminal_safe_keeping(&text, true)
            );
            ExitStatus::UsageError.code()
        }
    }
}

//! keyhook: scheduled, signed webhooks from a software-license database in QLM's schema.
//!
//! Data flows one way: [`definitions`] (TOML) → [`licenses`] (matches) → [`delivery`] (bytes,
//! signature, POST) → [`state`] (what happened). [`task_source`] turns a task into the plain
//! values the delivery engine takes; [`commands`] wire them together and are the only code
//! that prints.

// Issue 12: no function over 60 lines (the threshold is in clippy.toml); table-driven tests
// may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

mod bytes;
pub mod cli;
pub mod commands;
pub mod definitions;
pub mod delivery;
pub mod demo;
pub mod error;
pub mod events;
pub mod file_access;
pub mod json;
pub mod licenses;
pub mod receiver;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod task_source;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Runs keyhook with the given command-line arguments and returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    state::configure_sqlite();
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match commands::dispatch(cli) {
        Ok(exit) => exit.into(),
        Err(error) if is_broken_pipe(&error.inner) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            error.exit.into()
        }
    }
}

/// `keyhook dry-run x | head` closes the pipe early; that is the reader's choice, not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

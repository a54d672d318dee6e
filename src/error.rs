//! Errors and the exit codes they map to; the README documents the same table.

use std::process::ExitCode;

/// What a run of keyhook ended with, as cron and systemd see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything delivered, or nothing to do.
    Success,
    /// Some deliveries failed.
    DeliveryFailed,
    /// Usage or configuration error: fix something before running again.
    Config,
    /// The license database (or another file keyhook needs) could not be used.
    Runtime,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::DeliveryFailed => 1,
            Exit::Config => 2,
            Exit::Runtime => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// An error that ends a command, with the exit code it ends it with.
#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    pub inner: anyhow::Error,
}

impl Error {
    /// A configuration or usage error (exit 2).
    pub fn config(error: impl Into<anyhow::Error>) -> Error {
        Error {
            exit: Exit::Config,
            inner: error.into(),
        }
    }

    /// An operational error: a database or file could not be used (exit 3).
    pub fn runtime(error: impl Into<anyhow::Error>) -> Error {
        Error {
            exit: Exit::Runtime,
            inner: error.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::runtime(error)
    }
}

/// The result of a command.
pub type Result<T = Exit> = std::result::Result<T, Error>;

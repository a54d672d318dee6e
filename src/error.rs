//! Errors and the exit codes they map to; the README documents the same table.

use std::process::ExitCode;

/// What a run of keyhook ended with, as cron and systemd see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything delivered, or nothing to do.
    Success,
    /// Some deliveries failed.
    DeliveryFailed,
    /// Some license rows could not be read: recorded and not sent; the others were.
    BadRows,
    /// Usage or configuration error: fix something before running again.
    Config,
    /// The license database (or another file keyhook needs) could not be used.
    Runtime,
    /// Another keyhook process holds the task's lock.
    Locked,
    /// Stopped by SIGINT (130) or SIGTERM (143) after recording the request in flight.
    Interrupted(i32),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::DeliveryFailed => 1,
            Exit::Config => 2,
            Exit::BadRows => 4,
            Exit::Runtime => 3,
            Exit::Locked => 75,
            Exit::Interrupted(signal) => (128 + signal).clamp(0, 255) as u8,
        }
    }
}

impl Exit {
    /// The more serious of two outcomes, for commands that run several tasks.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |exit: Exit| match exit {
            Exit::Success => 0,
            Exit::Locked => 1,
            Exit::DeliveryFailed => 2,
            Exit::BadRows => 3,
            Exit::Runtime => 4,
            Exit::Config => 5,
            Exit::Interrupted(_) => 6,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
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

    /// Another process holds a lock (exit 75).
    pub fn locked(error: impl Into<anyhow::Error>) -> Error {
        Error {
            exit: Exit::Locked,
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

/// The state database failing is an operational error (exit 3), with its own message.
impl From<crate::state::StateError> for Error {
    fn from(error: crate::state::StateError) -> Error {
        Error::runtime(error)
    }
}

/// Sending stopped short (the state database, or no thread for a sender): exit 3.
impl From<crate::delivery::dispatch::SendError> for Error {
    fn from(error: crate::delivery::dispatch::SendError) -> Error {
        Error::runtime(error)
    }
}

/// The result of a command.
pub type Result<T = Exit> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_outcome_wins() {
        let ranked = [
            Exit::Success,
            Exit::Locked,
            Exit::DeliveryFailed,
            Exit::BadRows,
            Exit::Runtime,
            Exit::Config,
            Exit::Interrupted(2),
        ];
        for (index, lower) in ranked.iter().enumerate() {
            for higher in &ranked[index..] {
                assert_eq!(lower.worst(*higher), *higher, "{lower:?} vs {higher:?}");
                assert_eq!(higher.worst(*lower), *higher, "{higher:?} vs {lower:?}");
            }
        }
        assert_eq!(Exit::BadRows.code(), 4);
    }
}

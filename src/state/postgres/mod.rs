//! keyhook's state on a PostgreSQL server, shared by several hosts: the same runs, deliveries
//! and attempts as the SQLite state, in a schema of its own (`keyhook`, or `?schema=`), with
//! what several hosts need on top: a claim per (task, slot), delivery leases timed by the
//! database's clock, and per-task session advisory locks.

mod deliveries;
mod events;
mod import;
mod lock;
mod log;
mod migrations;
mod recording;
mod runs;
mod sources;
pub use runs::{SlotClaim, SlotRun};

use std::cell::{Cell, RefCell};
use std::time::Duration;

use postgres::Client;

pub use import::Moved;
pub use lock::{PgLock, SessionLock};
pub use recording::PgRecorder;

use super::StateError;
use crate::licenses::postgres::connect;

/// The schema keyhook's tables go in when the URL names none.
pub const DEFAULT_SCHEMA: &str = "keyhook";

/// Who this process is, and how long its claims last.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The host's name (`--host`, `KEYHOOK_HOST`, else the machine's hostname).
    pub host: String,
    /// How long a claim on a delivery or a slot lasts without its outcome.
    pub lease: Duration,
}

/// An open state on a server.
pub struct PgState {
    client: RefCell<Client>,
    /// The URL as given minus `schema=`, for the lock's own connection.
    url: String,
    /// The URL without its password, for messages.
    shown: String,
    schema: String,
    identity: Identity,
    /// `claimed_by` on this process's claims: host and pid.
    claimer: String,
    /// Outcomes not recorded because the lease had expired and another host held the claim.
    lost: Cell<u64>,
}

impl PgState {
    /// Connects, creates the schema if needed, and migrates it.
    pub fn open(url: &str, identity: Identity) -> Result<PgState, StateError> {
        let shown = connect::redact(url);
        let (url, schema) = split_schema(url).map_err(|error| StateError::Postgres {
            shown: shown.clone(),
            detail: error.to_string(),
        })?;
        let mut client = connect::connect(&url).map_err(|detail| StateError::Postgres {
            shown: shown.clone(),
            detail: format!("could not connect: {detail}"),
        })?;
        let version =
            migrations::migrate(&mut client, &schema).map_err(|e| pg_error(&shown, &e))?;
        if version > migrations::KNOWN {
            return Err(StateError::Postgres {
                shown,
                detail: format!(
                    "schema `{schema}` has state version {version}, newer than this keyhook ({}); \
                     upgrade keyhook",
                    migrations::KNOWN
                ),
            });
        }
        client
            .batch_execute(&format!("SET search_path = \"{schema}\""))
            .map_err(|e| pg_error(&shown, &e))?;
        let claimer = format!("{}:{}", identity.host, std::process::id());
        Ok(PgState {
            client: RefCell::new(client),
            url,
            shown,
            schema,
            identity,
            claimer,
            lost: Cell::new(0),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// This host's name, as `runs.host` and `attempts.host` record it.
    pub fn host(&self) -> &str {
        &self.identity.host
    }

    /// How many outcomes went unrecorded since the last call, their lease lost.
    pub fn take_lost_leases(&self) -> u64 {
        self.lost.replace(0)
    }

    /// How long a claim lasts.
    pub fn lease(&self) -> Duration {
        self.identity.lease
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.identity.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn error(&self, error: &postgres::Error) -> StateError {
        pg_error(&self.shown, error)
    }
}

fn pg_error(shown: &str, error: &postgres::Error) -> StateError {
    StateError::Postgres {
        shown: shown.to_string(),
        detail: connect::error_text(error),
    }
}

/// A `schema=` that is no plain lowercase name, so it cannot go into SQL as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema `{0}` is not a plain lowercase name (letters, digits, `_`)")]
struct SchemaNameError(String);

/// Whether `url` can be read as a state URL (its schema name, its `sslmode`, the rest as the
/// driver reads it), without connecting: a URL that cannot is the user's to fix.
pub fn check_url(url: &str) -> Result<(), String> {
    let (url, _) = split_schema(url).map_err(|error| error.to_string())?;
    connect::parse(&url)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Takes `schema=NAME` out of the URL's query (libpq does not know it); `keyhook` without it.
fn split_schema(url: &str) -> Result<(String, String), SchemaNameError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = DEFAULT_SCHEMA.to_string();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", name)) => schema = name.to_string(),
            _ => kept.push(pair),
        }
    }
    let valid = schema
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()));
    if schema.is_empty() || schema.len() > 63 || !valid {
        return Err(SchemaNameError(schema));
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, schema))
}

/// The machine's hostname, for `--host`'s default.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parameter_is_read_and_removed() {
        let (url, schema) = split_schema("postgres://h/db?schema=ops&sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), schema.as_str()),
            ("postgres://h/db?sslmode=require", "ops")
        );
        let (url, schema) = split_schema("postgres://h/db").unwrap();
        assert_eq!(
            (url.as_str(), schema.as_str()),
            ("postgres://h/db", "keyhook")
        );
        assert!(split_schema("postgres://h/db?schema=a;drop").is_err());
        assert!(split_schema("postgres://h/db?schema=1a").is_err());
    }
}

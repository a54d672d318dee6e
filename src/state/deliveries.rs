//! Deliveries and their attempts: recorded before the first POST (`recording`), claimed
//! before each send and updated as soon as each attempt's outcome is known (`queue`), read
//! back for `keyhook log` (`log`), and pruned once settled (`prune`).

mod claims;
mod log;
mod outcomes;
mod prune;
pub(super) mod queue;
mod recording;

use std::borrow::Cow;

use rusqlite::types::{Type, ValueRef};

use crate::licenses::license_info::{Damaged, unpack_body};

pub use claims::ClaimBook;
pub use log::{AttemptEntry, BadRowEntry, LogEntry, LogFilter};
pub use recording::RunRecorder;
pub(super) use recording::{RECORDED, bodies_sql, next_seq};

/// Column `index` of `row`, a body as the SQLite state stores it, as it is sent (unpacked:
/// see [`pack_body`](crate::licenses::license_info::pack_body)), or why it cannot be. Not a
/// blob: SQLite's own error for a column that is not bytes.
pub(super) fn stored_body(
    row: &rusqlite::Row,
    index: usize,
) -> rusqlite::Result<Result<Vec<u8>, Damaged>> {
    match row.get_ref(index)? {
        ValueRef::Blob(stored) => Ok(unpack_body(stored).map(Cow::into_owned)),
        _ => row.get(index).map(Ok),
    }
}

/// [`stored_body`], a damaged one an error that names the delivery, `delivery()`.
pub(super) fn stored_body_or_error(
    row: &rusqlite::Row,
    index: usize,
    delivery: impl FnOnce() -> String,
) -> rusqlite::Result<Vec<u8>> {
    stored_body(row, index)?.map_err(|damaged| {
        let damaged = DamagedBody {
            delivery: delivery(),
            damaged,
        };
        rusqlite::Error::FromSqlConversionFailure(index, Type::Blob, Box::new(damaged))
    })
}

/// A stored body that cannot be unpacked, and whose it is.
#[derive(Debug, thiserror::Error)]
#[error("delivery {delivery}: {damaged}")]
struct DamagedBody {
    delivery: String,
    damaged: Damaged,
}

/// What happened to a delivery so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not attempted yet.
    Pending,
    /// The last attempt failed; another is scheduled.
    Failed,
    Delivered,
    /// No more attempts: retries exhausted, or a failure retrying cannot fix.
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Failed => "failed",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Failed,
            Status::Delivered,
            Status::Dead,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A delivery found by its id or a prefix of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: i64,
    pub task: String,
    pub id: String,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub id: String,
    pub task: String,
    pub license_id: i64,
    pub activation_key: String,
    pub body: Vec<u8>,
    pub attempts: i64,
    pub created_at: i64,
    /// The event type, for an event delivery: sent as `X-Keyhook-Event`.
    pub event_type: Option<String>,
}

/// One attempt, as stored.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub excerpt: String,
}

/// An attempt and what it makes of its delivery.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seq: i64,
    /// The attempt's number: one above the delivery's attempts when it was claimed (its
    /// claim keeps anyone else from attempting it meanwhile). A PostgreSQL state numbers
    /// attempts from the row it updates instead: a lease can run out.
    pub n: i64,
    pub attempt: AttemptRecord,
    pub status: Status,
    pub next_attempt_at: i64,
}

/// Which deliveries a sender works through.
#[derive(Debug, Clone, Copy)]
pub enum Queue<'a> {
    /// The deliveries of one run of a task not attempted yet: a run sends each once, and its
    /// failures wait for `retry` (or `run-due`) at their due time.
    Run(&'a str, i64),
    /// Every delivery of one task that is due at the given time.
    DueForTask(&'a str, i64),
    /// One delivery of a task or webhook source, by its sequence number, whenever it is due.
    /// The source is checked too: a seq freed by a deleted run is taken again by the next
    /// insert, of any source.
    One(&'a str, i64),
}

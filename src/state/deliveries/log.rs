//! Reading deliveries back: `keyhook log`, its bad rows, attempts and bodies.

use rusqlite::{OptionalExtension, params};

use super::{RECORDED, Status};
use crate::licenses::license_info::length_sql;
use crate::state::rows::{self, ATTEMPT, BAD_ROW, LOG_ENTRY};
use crate::state::{StateDb, StateError};

/// A delivery as `keyhook log` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub id: String,
    pub task: String,
    pub run_id: i64,
    pub license_id: i64,
    pub activation_key: String,
    pub status: Status,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub bytes: i64,
    /// The event type, for an event delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The earlier delivery of the same entity this one waits for, while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// `<table>:<row key>`, for an event delivery: whose events keep commit order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    /// The host that made the last attempt, on a shared (PostgreSQL) state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A license row a run could not read, as `keyhook log` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadRowEntry {
    pub task: String,
    pub run_id: i64,
    pub license_id: i64,
    pub activation_key: String,
    /// Always `bad`: never sent, never retried.
    pub status: &'static str,
    pub error: String,
    pub created_at: i64,
}

/// One attempt as `keyhook log --attempts` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptEntry {
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub excerpt: Option<String>,
    /// The host that made it, on a shared (PostgreSQL) state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What `keyhook log` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub task: Option<String>,
    pub status: Option<Status>,
    pub since: Option<i64>,
    pub limit: Option<u64>,
    /// A webhook's name: its deliveries to every URL.
    pub webhook: Option<String>,
    /// An event type (canonical name).
    pub event: Option<String>,
}

impl StateDb {
    /// Deliveries, newest first; an event delivery held back by an earlier one of its entity
    /// names it.
    pub fn log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {LOG_ENTRY}, (SELECT {length} FROM delivery_bodies AS b WHERE b.seq = d.seq),
                        CASE WHEN order_key IS NOT NULL AND status IN ('pending', 'failed') THEN
                            (SELECT e.id FROM deliveries AS e
                             WHERE e.task = d.task AND e.order_key = d.order_key
                               AND e.seq < d.seq AND e.order_key IS NOT NULL
                               AND e.status IN ('pending', 'failed')
                             ORDER BY e.seq LIMIT 1) END,
                        NULL
                 FROM deliveries AS d
                 WHERE (?1 IS NULL OR task = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR created_at >= ?3)
                   AND (?5 IS NULL OR task = ?5 OR substr(task, 1, length(?5) + 1) = ?5 || '#')
                   AND (?6 IS NULL OR event_type = ?6) AND {RECORDED}
                 ORDER BY seq DESC LIMIT ?4",
                length = length_sql("body")
            ))
            .map_err(|e| self.error(e))?;
        let status = filter.status.map(Status::as_str);
        let rows = statement
            .query_map(
                params![
                    filter.task,
                    status,
                    filter.since,
                    limit(filter),
                    filter.webhook,
                    filter.event
                ],
                |row| rows::log_entry(row),
            )
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// License rows that runs could not read, newest first.
    pub fn bad_rows(&self, filter: &LogFilter) -> Result<Vec<BadRowEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {BAD_ROW} FROM bad_rows
                 WHERE (?1 IS NULL OR task = ?1) AND (?2 IS NULL OR created_at >= ?2)
                   AND {RECORDED}
                 ORDER BY id DESC LIMIT ?3"
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![filter.task, filter.since, limit(filter)], |row| {
                rows::bad_row(row)
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// A delivery's attempts, oldest first (the SQLite state records no host for them).
    pub fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT}, NULL
                 FROM attempts a JOIN deliveries d ON d.seq = a.delivery_seq
                 WHERE d.id = ?1 ORDER BY a.n"
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([delivery_id], |row| rows::attempt_entry(row))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The body stored for a delivery.
    pub fn body(&self, delivery_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row(
                "SELECT body FROM delivery_bodies WHERE seq = (SELECT seq FROM deliveries WHERE id = ?1)",
                [delivery_id],
                |row| super::stored_body_or_error(row, 0, || delivery_id.to_string()),
            )
            .optional()
            .map_err(|e| self.error(e))
    }
}

/// `--limit` as SQLite's bound: none is -1; one beyond i64 is no limit, never a wrap to a
/// negative one.
fn limit(filter: &LogFilter) -> i64 {
    filter
        .limit
        .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

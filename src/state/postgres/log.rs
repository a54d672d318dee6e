//! Reading deliveries back on the server: `keyhook log` with the host of each delivery's last
//! attempt, its bad rows, and each attempt with the host that made it.

use super::PgState;
use crate::state::StateError;
use crate::state::deliveries::{AttemptEntry, BadRowEntry, LogEntry, LogFilter, Status};
use crate::state::rows::{self, ATTEMPT, BAD_ROW, LOG_ENTRY};

impl PgState {
    /// Deliveries, newest first; an event delivery held back by an earlier one of its entity
    /// names it, as on SQLite.
    pub fn log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StateError> {
        let sql = format!(
            "SELECT {LOG_ENTRY}, CAST(length(body) AS bigint),
                    CASE WHEN order_key IS NOT NULL AND status IN ('pending', 'failed') THEN
                        (SELECT e.id FROM deliveries AS e
                         WHERE e.task = d.task AND e.order_key = d.order_key AND e.seq < d.seq
                           AND e.order_key IS NOT NULL AND e.status IN ('pending', 'failed')
                         ORDER BY e.seq LIMIT 1) END,
                    (SELECT a.host FROM attempts a WHERE a.delivery_seq = d.seq
                     ORDER BY a.n DESC LIMIT 1)
             FROM deliveries AS d
             WHERE ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::bigint IS NULL OR created_at >= $3)
               AND ($5::text IS NULL OR task = $5 OR left(task, length($5) + 1) = $5 || '#')
               AND ($6::text IS NULL OR event_type = $6)
             ORDER BY seq DESC LIMIT $4"
        );
        let status = filter.status.map(Status::as_str);
        let rows = self
            .client
            .borrow_mut()
            .query(
                &sql,
                &[
                    &filter.task,
                    &status,
                    &filter.since,
                    &limit(filter),
                    &filter.webhook,
                    &filter.event,
                ],
            )
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(rows::log_entry)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))
    }

    pub fn bad_rows(&self, filter: &LogFilter) -> Result<Vec<BadRowEntry>, StateError> {
        let sql = format!(
            "SELECT {BAD_ROW} FROM bad_rows
             WHERE ($1::text IS NULL OR task = $1) AND ($2::bigint IS NULL OR created_at >= $2)
             ORDER BY id DESC LIMIT $3"
        );
        let rows = self
            .client
            .borrow_mut()
            .query(&sql, &[&filter.task, &filter.since, &limit(filter)])
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(rows::bad_row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))
    }

    pub fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptEntry>, StateError> {
        let sql = format!(
            "SELECT {ATTEMPT}, a.host
             FROM attempts a JOIN deliveries d ON d.seq = a.delivery_seq
             WHERE d.id = $1 ORDER BY a.n"
        );
        let rows = self
            .client
            .borrow_mut()
            .query(&sql, &[&delivery_id])
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(rows::attempt_entry)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))
    }
}

/// `--limit` as a bound; none, or one beyond `bigint`, is no limit.
fn limit(filter: &LogFilter) -> i64 {
    filter
        .limit
        .map_or(i64::MAX, |limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

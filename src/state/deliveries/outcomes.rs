//! Committing attempts: each group of outcomes in one transaction, the attempts written a
//! chunk of rows per INSERT rather than one statement each (every execution starts and
//! halts the VM and opens its cursors again).

use std::sync::OnceLock;

use rusqlite::{CachedStatement, ToSql, params};

use super::Outcome;
use crate::state::{StateDb, StateError};

/// How many outcomes one statement writes, largest first: a group is cut greedily into
/// these, so only a few statements (each prepared once, then cached) ever exist.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Values bound per row of the INSERT (delivery seq, at, status, error, duration, excerpt).
const INSERT_VALUES: usize = 6;

impl StateDb {
    /// Stores attempts and their deliveries' new statuses, all in one transaction: outcomes
    /// that arrive together are committed together, none waits for another.
    pub fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        // BEGIN and COMMIT from the statement cache: this runs once per group, and preparing
        // them afresh each time (as `Transaction` does) costs as much as a few outcomes.
        self.cached("BEGIN")?;
        let recorded = self.record_in_transaction(outcomes);
        match recorded {
            Ok(()) => {
                self.cached("COMMIT")?;
                let mut book = self.claims.borrow_mut();
                for outcome in outcomes {
                    book.settle(outcome.seq);
                }
                Ok(())
            }
            Err(error) => {
                let _ = self.cached("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Runs a statement without parameters from the statement cache.
    pub(super) fn cached(&self, sql: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn record_in_transaction(&self, mut outcomes: &[Outcome]) -> Result<(), StateError> {
        while let Some(&size) = CHUNKS.iter().find(|&&size| size <= outcomes.len()) {
            let (chunk, rest) = outcomes.split_at(size);
            self.record_chunk(chunk)?;
            outcomes = rest;
        }
        Ok(())
    }

    /// Writes one chunk (a size from [`CHUNKS`]): its attempts, then its deliveries. The
    /// attempt number is read before the delivery's count goes up, in the same transaction;
    /// a chunk never holds a delivery twice (each is claimed once).
    fn record_chunk(&self, chunk: &[Outcome]) -> Result<(), StateError> {
        let mut insert = self.chunk_statement(insert_sql(chunk.len()))?;
        for (row, outcome) in chunk.iter().enumerate() {
            let attempt = &outcome.attempt;
            let values: [&dyn ToSql; INSERT_VALUES] = [
                &outcome.seq,
                &attempt.at_ms,
                &attempt.status,
                &attempt.error,
                &attempt.duration_ms,
                &attempt.excerpt,
            ];
            self.bind_row(&mut insert, row * INSERT_VALUES, &values)?;
        }
        insert.raw_execute().map_err(|e| self.error(e))?;
        let mut update = self.chunk_statement(UPDATE)?;
        for outcome in chunk {
            let attempt = &outcome.attempt;
            update
                .execute(params![
                    outcome.seq,
                    outcome.status.as_str(),
                    outcome.next_attempt_at,
                    attempt.at_ms / 1000,
                    attempt.status,
                    attempt.error
                ])
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    fn chunk_statement(&self, sql: &str) -> Result<CachedStatement<'_>, StateError> {
        self.conn.prepare_cached(sql).map_err(|e| self.error(e))
    }

    /// Binds one row's values, the first at parameter `offset + 1`.
    fn bind_row(
        &self,
        statement: &mut CachedStatement<'_>,
        offset: usize,
        values: &[&dyn ToSql],
    ) -> Result<(), StateError> {
        for (index, value) in values.iter().enumerate() {
            statement
                .raw_bind_parameter(offset + index + 1, *value)
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }
}

/// A delivery's new status, found by seq. One execution per delivery: an UPDATE ... FROM
/// (VALUES ...) for a whole chunk goes through two temporary tables and cost more.
const UPDATE: &str =
    "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3,
         updated_at = ?4, last_status = ?5, last_error = ?6
     WHERE seq = ?1";

/// The INSERT for a chunk of `rows` attempts (a size from [`CHUNKS`]), each numbered one
/// above its delivery's count so far; built once.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let sql = SQL.get_or_init(|| CHUNKS.iter().map(|&rows| build_insert(rows)).collect());
    let index = CHUNKS
        .iter()
        .position(|&size| size == rows)
        .expect("a chunk size");
    &sql[index]
}

fn build_insert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p = row * INSERT_VALUES;
            format!(
                "(?{s}, (SELECT attempts + 1 FROM deliveries WHERE seq = ?{s}), ?{}, ?{}, ?{}, ?{}, ?{})",
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                s = p + 1
            )
        })
        .collect();
    format!(
        "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms, excerpt) VALUES {}",
        values.join(", ")
    )
}

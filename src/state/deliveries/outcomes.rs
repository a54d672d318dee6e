//! Committing attempts: each group of outcomes in one transaction, the attempts written a
//! chunk of rows per INSERT, and deliveries that come to the same values (most of a group:
//! delivered, in the same second) moved on by one UPDATE, rather than two statements per
//! delivery: every execution starts and halts the VM and opens its cursors again.

use std::sync::OnceLock;

use rusqlite::{CachedStatement, ToSql};

use super::Outcome;
use crate::state::{StateDb, StateError};

/// How many outcomes one statement writes, largest first: a group is cut greedily into
/// these, so only a few statements (each prepared once, then cached) ever exist.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// How many deliveries one UPDATE moves on, largest first (each also in [`CHUNKS`]). Not 4:
/// below 16 the temporary index an IN list builds costs more than the executions it saves.
const UPDATE_RUNS: [usize; 3] = [64, 16, 1];

/// Values bound per row of the INSERT (delivery seq, n, at, status, error, duration, excerpt).
const INSERT_VALUES: usize = 7;
/// Values bound once per UPDATE (status, next attempt, updated, HTTP status, error), before
/// its deliveries' seqs.
const UPDATE_VALUES: usize = 5;

/// The statements of one group, each taken from the cache once: a lookup hashes the SQL
/// (kilobytes for 64 rows) going in and again coming back, as much as a few outcomes cost.
#[derive(Default)]
struct Statements<'c> {
    /// By index in [`CHUNKS`].
    inserts: [Option<CachedStatement<'c>>; CHUNKS.len()],
    /// By index in [`UPDATE_RUNS`].
    updates: [Option<CachedStatement<'c>>; UPDATE_RUNS.len()],
    /// [`UPDATE_RANGE`].
    range: Option<CachedStatement<'c>>,
}

impl StateDb {
    /// Stores attempts and their deliveries' new statuses, all in one transaction: outcomes
    /// that arrive together are committed together, none waits for another.
    pub fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        // The foreign keys stay checked here: switching them off and on around each group
        // (as the run's recording does once) makes SQLite prepare every statement again.
        self.record_group(outcomes)?;
        let mut book = self.claims.borrow_mut();
        for outcome in outcomes {
            book.settle(outcome.seq);
        }
        Ok(())
    }

    /// [`StateDb::record_attempts`]' transaction: committed whole, or rolled back.
    fn record_group(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        // BEGIN and COMMIT from the statement cache: this runs once per group, and preparing
        // them afresh each time (as `Transaction` does) costs as much as a few outcomes.
        self.cached("BEGIN")?;
        let recorded = self
            .record_in_transaction(outcomes)
            .and_then(|()| self.cached("COMMIT"));
        if recorded.is_err() {
            let _ = self.cached("ROLLBACK");
        }
        recorded
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
        let mut statements = Statements::default();
        while let Some(index) = CHUNKS.iter().position(|&size| size <= outcomes.len()) {
            let (chunk, rest) = outcomes.split_at(CHUNKS[index]);
            let insert = self.held(&mut statements.inserts[index], chunk_sql(index).0)?;
            self.insert_chunk(insert, chunk)?;
            self.update_chunk(&mut statements, chunk)?;
            outcomes = rest;
        }
        Ok(())
    }

    /// Writes one chunk's attempts, numbered by their outcomes (no lookup of the delivery's
    /// count: its claim kept it from being attempted by anyone else since).
    fn insert_chunk(
        &self,
        insert: &mut CachedStatement<'_>,
        chunk: &[Outcome],
    ) -> Result<(), StateError> {
        for (row, outcome) in chunk.iter().enumerate() {
            let attempt = &outcome.attempt;
            let values: [&dyn ToSql; INSERT_VALUES] = [
                &outcome.seq,
                &outcome.n,
                &attempt.at_ms,
                &attempt.status,
                &attempt.error,
                &attempt.duration_ms,
                &attempt.excerpt,
            ];
            self.bind_row(insert, row * INSERT_VALUES, &values)?;
        }
        insert.raw_execute().map(drop).map_err(|e| self.error(e))
    }

    /// Moves the chunk's deliveries on: those that come to the same values (a group's
    /// answers mostly do: delivered, at the same second) in one UPDATE: by a range of seqs
    /// when theirs follow each other (one worker answers in order), else `WHERE seq IN`.
    fn update_chunk<'c>(
        &'c self,
        statements: &mut Statements<'c>,
        mut chunk: &[Outcome],
    ) -> Result<(), StateError> {
        while let Some(first) = chunk.first() {
            let same = chunk
                .iter()
                .take_while(|outcome| same_update(first, outcome))
                .count();
            let following = chunk[..same]
                .iter()
                .zip(first.seq..)
                .take_while(|(outcome, seq)| outcome.seq == *seq)
                .count();
            if following > 1 {
                let (run, rest) = chunk.split_at(following);
                let update = self.held(&mut statements.range, UPDATE_RANGE)?;
                let ends = [run[0].seq, run[run.len() - 1].seq];
                self.update_run(update, run, ends.into_iter())?;
                chunk = rest;
                continue;
            }
            let index = UPDATE_RUNS
                .into_iter()
                .position(|size| size <= same)
                .expect("1 is a chunk size");
            let (run, rest) = chunk.split_at(UPDATE_RUNS[index]);
            let sql = chunk_sql(chunk_index(UPDATE_RUNS[index])).1;
            let update = self.held(&mut statements.updates[index], sql)?;
            self.update_run(update, run, run.iter().map(|outcome| outcome.seq))?;
            chunk = rest;
        }
        Ok(())
    }

    /// The statement in `slot`, taken from the cache the first time.
    fn held<'s, 'c>(
        &'c self,
        slot: &'s mut Option<CachedStatement<'c>>,
        sql: &str,
    ) -> Result<&'s mut CachedStatement<'c>, StateError> {
        Ok(match slot {
            Some(statement) => statement,
            None => slot.insert(self.conn.prepare_cached(sql).map_err(|e| self.error(e))?),
        })
    }

    /// Writes the values of `run`'s first outcome to each of its deliveries, which `update`
    /// finds by `seqs`: every seq of the run (`WHERE seq IN`), or its first and last when
    /// they follow each other (`WHERE seq BETWEEN`: the range holds them and nothing else).
    fn update_run(
        &self,
        update: &mut CachedStatement<'_>,
        run: &[Outcome],
        seqs: impl Iterator<Item = i64>,
    ) -> Result<(), StateError> {
        self.bind_update(update, &run[0])?;
        for (index, seq) in seqs.enumerate() {
            update
                .raw_bind_parameter(UPDATE_VALUES + index + 1, seq)
                .map_err(|e| self.error(e))?;
        }
        update.raw_execute().map(drop).map_err(|e| self.error(e))
    }

    /// Binds the values an UPDATE writes: those of `outcome`.
    fn bind_update(
        &self,
        update: &mut CachedStatement<'_>,
        outcome: &Outcome,
    ) -> Result<(), StateError> {
        let attempt = &outcome.attempt;
        let values: [&dyn ToSql; UPDATE_VALUES] = [
            &outcome.status.as_str(),
            &outcome.next_attempt_at,
            &(attempt.at_ms / 1000),
            &attempt.status,
            &attempt.error,
        ];
        self.bind_row(update, 0, &values)
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

/// Whether two outcomes leave their deliveries with the same values.
fn same_update(a: &Outcome, b: &Outcome) -> bool {
    a.status == b.status
        && a.next_attempt_at == b.next_attempt_at
        && a.attempt.at_ms / 1000 == b.attempt.at_ms / 1000
        && a.attempt.status == b.attempt.status
        && a.attempt.error == b.attempt.error
}

/// The INSERT and the UPDATE for a chunk of `CHUNKS[index]` rows, built once. Parameters
/// are anonymous (`?`) where they can be: the statement cache hashes the whole text.
fn chunk_sql(index: usize) -> (&'static str, &'static str) {
    static SQL: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&rows| (build_insert(rows), build_update(rows)))
            .collect()
    });
    let (insert, update) = &sql[index];
    (insert, update)
}

/// Where `rows` is in [`CHUNKS`].
fn chunk_index(rows: usize) -> usize {
    CHUNKS
        .iter()
        .position(|&size| size == rows)
        .expect("a chunk size")
}

/// Deliveries whose seqs follow each other: one seek, then the next row, where an IN list
/// builds a temporary index of its seqs and seeks each one.
///
/// Both UPDATEs say `OR ROLLBACK`: a failed constraint ends the whole group's transaction, as
/// [`StateDb::record_attempts`] does with any error anyway, and SQLite then keeps no statement
/// journal (a copy of each page the statement touches, to undo it alone): 3% of committing
/// an outcome.
const UPDATE_RANGE: &str = "UPDATE OR ROLLBACK deliveries SET status = ?1, attempts = attempts + 1,
         next_attempt_at = ?2, updated_at = ?3, last_status = ?4, last_error = ?5
     WHERE seq BETWEEN ?6 AND ?7";

/// `rows` deliveries' new status, all the same, found by seq.
fn build_update(rows: usize) -> String {
    format!(
        "UPDATE OR ROLLBACK deliveries SET status = ?1, attempts = attempts + 1, next_attempt_at = ?2,
             updated_at = ?3, last_status = ?4, last_error = ?5
         WHERE seq IN ({})",
        vec!["?"; rows].join(",")
    )
}

/// `rows` attempts, each numbered by its outcome.
fn build_insert(rows: usize) -> String {
    format!(
        "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms, excerpt) VALUES {}",
        vec!["(?,?,?,?,?,?,?)"; rows].join(",")
    )
}

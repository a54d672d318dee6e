//! Recording a run: its deliveries and bad rows, in one transaction.

use std::fmt::Write as _;
use std::ops::Range;

use std::sync::LazyLock;

use rusqlite::{Statement, Transaction, params};

use crate::state::{StateDb, StateError};

/// Adds deliveries to a run inside one transaction.
pub struct RunRecorder<'a> {
    transaction: Transaction<'a>,
    run_id: i64,
    task: String,
    now: i64,
    /// The state file, for errors.
    path: std::path::PathBuf,
    /// Deliveries added so far.
    added: u64,
    /// The `seq` of the next delivery inserted.
    next_seq: i64,
    /// Deliveries added but not inserted yet.
    pending: Pending,
}

/// Deliveries are inserted this many to a statement (and their bodies as many to another):
/// each statement opens a cursor on the table and on each of its indexes, and at one row
/// a statement that was half the cost of an insert.
const ROWS_PER_INSERT: usize = 64;

/// The two statements for [`ROWS_PER_INSERT`] rows, built once.
static FULL_SQL: LazyLock<(String, String)> =
    LazyLock::new(|| (deliveries_sql(ROWS_PER_INSERT), bodies_sql(ROWS_PER_INSERT)));

/// Deliveries waiting to be inserted, their text and bodies end to end.
#[derive(Default)]
struct Pending {
    text: String,
    bodies: Vec<u8>,
    rows: Vec<PendingRow>,
}

struct PendingRow {
    id: Range<usize>,
    license_id: i64,
    activation_key: Range<usize>,
    body: Range<usize>,
}

/// From this many deliveries, a run's WAL frames are copied into the state file by a thread
/// of their own after the commit ([`checkpoint_behind`]) rather than by the commit itself.
const CHECKPOINT_BEHIND_FROM: u64 = 1024;

impl StateDb {
    /// Starts recording a run: nothing is visible to other processes until `commit`.
    pub fn begin_run(
        &mut self,
        task: &str,
        name: &str,
        slot: Option<i64>,
        now: i64,
        sent: bool,
    ) -> Result<RunRecorder<'_>, StateError> {
        let path = self.path().to_path_buf();
        let error = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        // Every row the run inserts hangs off the run's row or a delivery it inserted just
        // before: the foreign keys' checks (a b-tree seek per delivery and per body) are off
        // until the recorder ends, committed or not (see its `Drop`). SQLite takes the
        // setting only outside a transaction.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(error)?;
        let transaction = match self.conn.unchecked_transaction() {
            Ok(transaction) => transaction,
            Err(source) => {
                let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
                return Err(error(source));
            }
        };
        let mut recorder = RunRecorder {
            transaction,
            run_id: 0,
            task: task.to_string(),
            now,
            path: path.clone(),
            added: 0,
            next_seq: 0,
            pending: Pending::default(),
        };
        let transaction = &recorder.transaction;
        transaction
            .execute(
                "INSERT INTO runs (task, name, slot, started_at, sent, host)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![task, name, slot, now, sent, self.host],
            )
            .map_err(error)?;
        let run_id = transaction.last_insert_rowid();
        // The run's insert holds the write lock.
        let next_seq = next_seq(transaction).map_err(error)?;
        recorder.run_id = run_id;
        recorder.next_seq = next_seq;
        Ok(recorder)
    }
}

impl Drop for RunRecorder<'_> {
    /// Rolls back what was not committed, and turns the foreign keys' checks back on.
    fn drop(&mut self) {
        if !self.transaction.is_autocommit() {
            let _ = self.transaction.execute_batch("ROLLBACK");
        }
        let _ = self.transaction.execute_batch("PRAGMA foreign_keys = ON");
    }
}

impl RunRecorder<'_> {
    /// Records one pending delivery, its body the `body` pieces end to end (inserted with the
    /// next [`ROWS_PER_INSERT`], or at the commit).
    pub fn add(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        body: &[&[u8]],
    ) -> Result<(), StateError> {
        self.added += 1;
        self.pending.push(id, license_id, activation_key, body);
        if self.pending.rows.len() < ROWS_PER_INSERT {
            return Ok(());
        }
        self.flush().map_err(|source| self.error(source))
    }

    /// Inserts the pending deliveries and their bodies.
    fn flush(&mut self) -> rusqlite::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        for rows in pending.rows.chunks(ROWS_PER_INSERT) {
            self.insert_rows(&pending, rows)?;
            self.next_seq += rows.len() as i64;
        }
        // The buffers are kept for the next rows.
        self.pending = pending.emptied();
        Ok(())
    }

    fn insert_rows(&self, pending: &Pending, rows: &[PendingRow]) -> rusqlite::Result<()> {
        let conn = &self.transaction;
        if rows.len() == ROWS_PER_INSERT {
            let mut deliveries = conn.prepare_cached(&FULL_SQL.0)?;
            let mut bodies = conn.prepare_cached(&FULL_SQL.1)?;
            self.execute(&mut deliveries, &mut bodies, pending, rows)
        } else {
            // Only a run's last rows: not worth a place in the statement cache.
            let mut deliveries = conn.prepare(&deliveries_sql(rows.len()))?;
            let mut bodies = conn.prepare(&bodies_sql(rows.len()))?;
            self.execute(&mut deliveries, &mut bodies, pending, rows)
        }
    }

    /// Runs [`deliveries_sql`] and [`bodies_sql`] for `rows`.
    fn execute(
        &self,
        deliveries: &mut Statement,
        bodies: &mut Statement,
        pending: &Pending,
        rows: &[PendingRow],
    ) -> rusqlite::Result<()> {
        deliveries.raw_bind_parameter(1, self.next_seq)?;
        deliveries.raw_bind_parameter(2, self.run_id)?;
        deliveries.raw_bind_parameter(3, &self.task)?;
        deliveries.raw_bind_parameter(4, self.now)?;
        bodies.raw_bind_parameter(1, self.next_seq)?;
        for (n, row) in rows.iter().enumerate() {
            deliveries.raw_bind_parameter(5 + 3 * n, &pending.text[row.id.clone()])?;
            deliveries.raw_bind_parameter(6 + 3 * n, row.license_id)?;
            deliveries.raw_bind_parameter(7 + 3 * n, &pending.text[row.activation_key.clone()])?;
            bodies.raw_bind_parameter(2 + n, &pending.bodies[row.body.clone()])?;
        }
        deliveries.raw_execute()?;
        bodies.raw_execute()?;
        Ok(())
    }

    /// Records a license row that could not be read: never sent, kept with the run.
    pub fn add_bad(
        &mut self,
        license_id: i64,
        activation_key: &str,
        reason: &str,
    ) -> Result<(), StateError> {
        self.insert_bad(license_id, activation_key, reason)
            .map_err(|source| self.error(source))
    }

    fn insert_bad(
        &self,
        license_id: i64,
        activation_key: &str,
        reason: &str,
    ) -> rusqlite::Result<()> {
        let mut statement = self.transaction.prepare_cached(
            "INSERT INTO bad_rows (run_id, task, license_id, activation_key, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        statement.execute(params![
            self.run_id,
            self.task,
            license_id,
            activation_key,
            reason,
            self.now
        ])?;
        Ok(())
    }

    /// Commits the run (with `matched`, every row the search reached) and all its deliveries
    /// at once; returns the run id.
    ///
    /// A big run's commit does not also checkpoint: copying its WAL frames into the file (two
    /// `fsync`s and every page read and written again, a third of the time before the first
    /// POST at 40k deliveries) is left to a thread of its own, beside the sending.
    pub fn commit(mut self, matched: u64) -> Result<i64, StateError> {
        let run_id = self.run_id;
        let flushed = self.flush();
        let conn: &rusqlite::Connection = &self.transaction;
        let behind = self.added >= CHECKPOINT_BEHIND_FROM;
        let committed = flushed
            .and_then(|()| {
                conn.execute(
                    "UPDATE runs SET matched = ?2 WHERE id = ?1",
                    params![run_id, i64::try_from(matched).unwrap_or(i64::MAX)],
                )
            })
            .and_then(|_| match behind {
                true => commit_without_checkpoint(conn),
                false => conn.execute_batch("COMMIT"),
            });
        committed.map_err(|source| self.error(source))?;
        if behind {
            checkpoint_behind(self.path.clone());
        }
        Ok(run_id)
    }

    /// Recording errors are reported as the state database's, whatever their kind.
    fn error(&self, source: rusqlite::Error) -> StateError {
        StateError::Sql {
            path: self.path.clone(),
            source,
        }
    }
}

impl Pending {
    fn push(&mut self, id: &str, license_id: i64, activation_key: &str, body: &[&[u8]]) {
        let id = self.append_text(id);
        let activation_key = self.append_text(activation_key);
        let start = self.bodies.len();
        for piece in body {
            self.bodies.extend_from_slice(piece);
        }
        self.rows.push(PendingRow {
            id,
            license_id,
            activation_key,
            body: start..self.bodies.len(),
        });
    }

    fn append_text(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(text);
        start..self.text.len()
    }

    /// The same buffers, empty.
    fn emptied(mut self) -> Pending {
        self.text.clear();
        self.bodies.clear();
        self.rows.clear();
        self
    }
}

/// Inserts `rows` deliveries: `seq` from `?1` on, then run, task and time (`?2`-`?4`) shared,
/// then each row's id, license id and key.
fn deliveries_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key,
             created_at, next_attempt_at, updated_at) VALUES ",
    );
    for n in 0..rows {
        let comma = if n == 0 { "" } else { ", " };
        let at = 5 + 3 * n;
        let _ = write!(
            sql,
            "{comma}(?1 + {n}, ?{at}, ?2, ?3, ?{}, ?{}, ?4, ?4, ?4)",
            at + 1,
            at + 2
        );
    }
    sql
}

/// The `seq` the next delivery inserted takes: the one SQLite would pick itself. Asked inside
/// a transaction that holds the write lock, so that no other process adds a delivery before
/// the caller's own, numbered from here, are in.
pub(in crate::state) fn next_seq(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(seq), 0) + 1 FROM deliveries",
        [],
        |row| row.get(0),
    )
}

/// Inserts the bodies of `rows` deliveries, `seq` from `?1` on.
pub(in crate::state) fn bodies_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO delivery_bodies (seq, body) VALUES ");
    for n in 0..rows {
        let comma = if n == 0 { "" } else { ", " };
        let _ = write!(sql, "{comma}(?1 + {n}, ?{})", 2 + n);
    }
    sql
}

/// Commits with the connection's automatic checkpoint off for that commit.
fn commit_without_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let setting: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let committed = conn.execute_batch("COMMIT");
    let restored = conn.pragma_update(None, "wal_autocheckpoint", setting);
    committed.and(restored)
}

/// Copies the WAL's frames into the state file on a thread with a connection of its own (a
/// passive checkpoint: it never blocks the sender's commits). If the process ends first, the
/// frames stay in the WAL, as safe as in the file, for the next checkpoint.
fn checkpoint_behind(path: std::path::PathBuf) {
    std::thread::spawn(move || {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    });
}

#[cfg(test)]
mod tests;

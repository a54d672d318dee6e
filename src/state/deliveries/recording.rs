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
        let transaction = self.conn.transaction().map_err(error)?;
        transaction
            .execute(
                "INSERT INTO runs (task, name, slot, started_at, sent, host)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![task, name, slot, now, sent, self.host],
            )
            .map_err(error)?;
        let run_id = transaction.last_insert_rowid();
        // The run's insert holds the write lock: no other process adds a delivery before
        // this transaction ends. The next `seq` is the one SQLite would pick itself.
        let next_seq = transaction
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM deliveries",
                [],
                |row| row.get(0),
            )
            .map_err(error)?;
        Ok(RunRecorder {
            transaction,
            run_id,
            task: task.to_string(),
            now,
            path,
            added: 0,
            next_seq,
            pending: Pending::default(),
        })
    }
}

impl RunRecorder<'_> {
    /// Records one pending delivery (inserted with the next [`ROWS_PER_INSERT`], or at the
    /// commit).
    pub fn add(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        body: &[u8],
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
    fn push(&mut self, id: &str, license_id: i64, activation_key: &str, body: &[u8]) {
        let id = self.append_text(id);
        let activation_key = self.append_text(activation_key);
        let start = self.bodies.len();
        self.bodies.extend_from_slice(body);
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

/// Inserts the bodies of `rows` deliveries, `seq` from `?1` on.
fn bodies_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO delivery_bodies (seq, body) VALUES ");
    for n in 0..rows {
        let comma = if n == 0 { "" } else { ", " };
        let _ = write!(sql, "{comma}(?1 + {n}, ?{})", 2 + n);
    }
    sql
}

/// Commits with the connection's automatic checkpoint off for that commit.
fn commit_without_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let committed = conn.execute_batch("COMMIT");
    let restored = conn.pragma_update(None, "wal_autocheckpoint", crate::state::WAL_AUTOCHECKPOINT);
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
mod tests {
    use crate::state::StateDb;

    #[test]
    fn a_big_run_commits_whole_and_leaves_the_automatic_checkpoint_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut state = StateDb::open(&path).unwrap();
        let count = super::CHECKPOINT_BEHIND_FROM + 10;
        let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
        for n in 0..count {
            let id = format!("msg_{n:028}");
            run.add(&id, n as i64, "K", &[b'x'; 1200]).unwrap();
        }
        run.commit(count).unwrap();
        let setting: i64 = state
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        assert_eq!(setting, crate::state::WAL_AUTOCHECKPOINT);
        // Another connection sees the whole run, bodies included, checkpointed or not.
        let other = rusqlite::Connection::open(&path).unwrap();
        let stored: (i64, i64) = other
            .query_row(
                "SELECT count(*), sum(length(body)) FROM delivery_bodies",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(stored, (count as i64, count as i64 * 1200));
    }

    #[test]
    fn batched_deliveries_keep_their_own_bodies_and_seq_follows_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
        let count = super::ROWS_PER_INSERT as i64 + 7;
        for run in 0..2 {
            let mut recorder = state.begin_run("t", "T", None, 1000, true).unwrap();
            for n in 0..count {
                let id = format!("msg_{run}_{n:026}");
                recorder
                    .add(&id, n, &format!("K{n}"), id.as_bytes())
                    .unwrap();
            }
            recorder.commit(count as u64).unwrap();
        }
        let rows: Vec<(i64, String, String, i64, Vec<u8>)> = state
            .conn
            .prepare(
                "SELECT d.seq, d.id, d.activation_key, d.license_id, b.body
                 FROM deliveries d JOIN delivery_bodies b USING (seq) ORDER BY d.seq",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len() as i64, 2 * count);
        for (index, (seq, id, key, license_id, body)) in rows.into_iter().enumerate() {
            assert_eq!(seq, index as i64 + 1);
            assert_eq!(id.as_bytes(), body.as_slice());
            assert_eq!(key, format!("K{license_id}"));
            assert_eq!(id, format!("msg_{}_{license_id:026}", index as i64 / count));
        }
    }
}

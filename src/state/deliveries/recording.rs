//! Recording a run: its deliveries and bad rows, in pieces that stay out of sight until the
//! last one commits.

use std::fmt::Write as _;
use std::ops::Range;

use std::sync::LazyLock;

use rusqlite::{Connection, Statement, params};

use crate::licenses::license_info::{PackedInfo, pack_body};
use crate::state::{StateDb, StateError};

/// Adds deliveries to a run. A small run is one transaction; a big one is committed in pieces
/// of about `PIECE_BYTES`, its run marked `recording` until the last piece clears the mark
/// with the run's count. A run still marked is not a run: its slot has not run
/// ([`StateDb::slot_ran`]), and the task's next lock holder removes it
/// ([`StateDb::clear_killed_recordings`]). Dropped uncommitted, the recorder removes its
/// pieces itself.
pub struct RunRecorder<'a> {
    conn: &'a Connection,
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
    /// A piece's transaction is open.
    open: bool,
    /// A piece is committed: the run and some of its rows are in the file, marked.
    pieces: bool,
    /// Bytes inserted since the last piece's commit (bodies, and [`ROW_BYTES`] per row).
    piece_bytes: usize,
    /// The connection's automatic checkpoint setting, off while the run records.
    autocheckpoint: i64,
    /// The last piece committed.
    committed: bool,
}

/// Deliveries are inserted this many to a statement (and their bodies as many to another):
/// each statement opens a cursor on the table and on each of its indexes, and at one row
/// a statement that was half the cost of an insert.
const ROWS_PER_INSERT: usize = 64;

/// A piece is committed once this much is inserted: well inside SQLite's page cache (2 MB by
/// default). A transaction that outgrows the cache writes pages to the WAL as it goes, writes
/// some (the b-trees' upper pages) again in place, and at its commit SQLite reads back every
/// frame written since the first of those: at 40k deliveries, ~6,000 frames and 50 MB.
const PIECE_BYTES: usize = 1024 * 1024;

/// What a delivery's row and its index entries add to a piece, beside its body.
const ROW_BYTES: usize = 160;

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

/// The runs of a task still marked as being recorded.
const MARKED: &str = "SELECT id FROM runs WHERE task = ?1 AND recording IS NOT NULL";

/// A condition on a row with a `run_id`: its run is no longer marked as being recorded. Only
/// the lock holder's cleanup and the recorder itself see the rows of a marked run.
pub(in crate::state) const RECORDED: &str =
    "run_id NOT IN (SELECT id FROM runs WHERE recording IS NOT NULL)";

impl StateDb {
    /// Starts recording a run: nothing is visible to other processes as a run until `commit`.
    /// The caller holds the task's lock: a run of the task still marked as recording was
    /// killed, and is removed first.
    pub fn begin_run(
        &mut self,
        task: &str,
        name: &str,
        slot: Option<i64>,
        now: i64,
        sent: bool,
    ) -> Result<RunRecorder<'_>, StateError> {
        self.clear_killed_recordings(task)?;
        let path = self.path().to_path_buf();
        let error = |source| StateError::Sql {
            path: path.clone(),
            source,
        };
        let autocheckpoint: i64 = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .map_err(error)?;
        let mut recorder = RunRecorder {
            conn: &self.conn,
            run_id: 0,
            task: task.to_string(),
            now,
            path: path.clone(),
            added: 0,
            next_seq: 0,
            pending: Pending::default(),
            open: false,
            pieces: false,
            piece_bytes: 0,
            autocheckpoint,
            committed: false,
        };
        // Every row the run inserts hangs off the run's row or a delivery it inserted just
        // before: the foreign keys' checks (a b-tree seek per delivery and per body) are off
        // until the recorder ends, committed or not (see its `Drop`). SQLite takes the
        // setting only outside a transaction. No piece's commit checkpoints: a big run's
        // frames are copied into the file behind it ([`checkpoint_behind`]).
        recorder
            .conn
            .execute_batch("PRAGMA foreign_keys = OFF; PRAGMA wal_autocheckpoint = 0")
            .map_err(error)?;
        recorder.begin_piece().map_err(error)?;
        recorder
            .conn
            .execute(
                "INSERT INTO runs (task, name, slot, started_at, sent, host, recording)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![task, name, slot, now, sent, self.host],
            )
            .map_err(error)?;
        recorder.run_id = recorder.conn.last_insert_rowid();
        Ok(recorder)
    }

    /// The tasks with a run still marked as being recorded: killed while it was, or being
    /// recorded right now.
    pub fn tasks_recording(&self) -> Result<Vec<String>, StateError> {
        self.conn
            .prepare_cached("SELECT DISTINCT task FROM runs WHERE recording IS NOT NULL")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| self.error(e))
    }

    /// Removes `task`'s runs that a kill left marked as being recorded, with every row they
    /// hold: none of it was ever sent (only the lock's holder sends, and it sends after the
    /// last piece). Only the holder of the task's lock may call this: a run being recorded
    /// right now is marked too. Returns how many runs went.
    pub fn clear_killed_recordings(&self, task: &str) -> Result<usize, StateError> {
        let runs: Vec<i64> = self
            .conn
            .prepare_cached(MARKED)
            .and_then(|mut statement| {
                statement
                    .query_map([task], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| self.error(e))?;
        if runs.is_empty() {
            return Ok(0);
        }
        let transaction = self.write_transaction().map_err(|e| self.error(e))?;
        for &run_id in &runs {
            delete_run(&transaction, run_id).map_err(|e| self.error(e))?;
        }
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(runs.len())
    }
}

/// Deletes a run and everything it holds (the foreign keys may be off: each table by hand).
fn delete_run(conn: &Connection, run_id: i64) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "DELETE FROM delivery_bodies WHERE seq IN (SELECT seq FROM deliveries WHERE run_id = {run_id});
         DELETE FROM attempts WHERE delivery_seq IN
             (SELECT seq FROM deliveries WHERE run_id = {run_id});
         DELETE FROM deliveries WHERE run_id = {run_id};
         DELETE FROM bad_rows WHERE run_id = {run_id};
         DELETE FROM runs WHERE id = {run_id};"
    ))
}

impl Drop for RunRecorder<'_> {
    /// Rolls back what was not committed and removes the pieces that were; turns the foreign
    /// keys' checks and the automatic checkpoint back on. (If the pieces cannot be removed
    /// here, the task's next lock holder removes them.)
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if self.pieces && !self.committed {
            let _ = self
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .and_then(|()| delete_run(self.conn, self.run_id))
                .and_then(|()| self.conn.execute_batch("COMMIT"));
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
        let _ = self
            .conn
            .pragma_update(None, "wal_autocheckpoint", self.autocheckpoint);
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
        self.pending.push(id, license_id, activation_key, body);
        self.added_one()
    }

    /// [`RunRecorder::add`] for a task's body, stored packed: the envelope's `head` and `tail`
    /// around its `LicenseInfo`, whose keys are left out (more than half the bytes a run
    /// writes, copies at the checkpoint and reads back to send); claims unpack it.
    pub fn add_packed(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        head: &[u8],
        info: PackedInfo,
        tail: &[u8],
    ) -> Result<(), StateError> {
        let body = (head, info, tail);
        self.pending
            .push_packed(id, license_id, activation_key, body);
        self.added_one()
    }

    /// Counts the delivery just added, and inserts the pending ones once there are
    /// [`ROWS_PER_INSERT`].
    fn added_one(&mut self) -> Result<(), StateError> {
        self.added += 1;
        if self.pending.rows.len() < ROWS_PER_INSERT {
            return Ok(());
        }
        self.flush()
            .and_then(|()| match self.piece_bytes >= PIECE_BYTES {
                true => self.next_piece(),
                false => Ok(()),
            })
            .map_err(|source| self.error(source))
    }

    /// Opens a piece's transaction, write-locked from the start: the run's `seq`s go on from
    /// the highest in the file, which another process may have raised since the last piece.
    fn begin_piece(&mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.open = true;
        self.piece_bytes = 0;
        self.next_seq = next_seq(self.conn)?;
        Ok(())
    }

    /// Commits the piece so far (the run still marked) and opens the next.
    fn next_piece(&mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        self.pieces = true;
        self.begin_piece()
    }

    /// Inserts the pending deliveries and their bodies.
    fn flush(&mut self) -> rusqlite::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        for rows in pending.rows.chunks(ROWS_PER_INSERT) {
            self.insert_rows(&pending, rows)?;
            self.next_seq += rows.len() as i64;
        }
        self.piece_bytes += pending.bodies.len() + ROW_BYTES * pending.rows.len();
        // The buffers are kept for the next rows.
        self.pending = pending.emptied();
        Ok(())
    }

    fn insert_rows(&self, pending: &Pending, rows: &[PendingRow]) -> rusqlite::Result<()> {
        let conn = self.conn;
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
        let mut statement = self.conn.prepare_cached(
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

    /// Commits the run (with `matched`, every row the search reached) and the rest of its
    /// deliveries, and clears its mark: the run and all its deliveries appear at once; returns
    /// the run id.
    ///
    /// A big run's commit does not also checkpoint: copying its WAL frames into the file (two
    /// `fsync`s and every page read and written again, a third of the time before the first
    /// POST at 40k deliveries) is left to a thread of its own, beside the sending.
    pub fn commit(mut self, matched: u64) -> Result<i64, StateError> {
        let run_id = self.run_id;
        let behind = self.added >= CHECKPOINT_BEHIND_FROM;
        let conn = self.conn;
        let committed = self
            .flush()
            .and_then(|()| {
                conn.execute(
                    "UPDATE runs SET matched = ?2, recording = NULL WHERE id = ?1",
                    params![run_id, i64::try_from(matched).unwrap_or(i64::MAX)],
                )
            })
            .and_then(|_| match behind {
                true => Ok(()),
                // A small run's commit checkpoints as any commit would.
                false => conn.pragma_update(None, "wal_autocheckpoint", self.autocheckpoint),
            })
            .and_then(|()| conn.prepare_cached("COMMIT")?.execute([]));
        committed.map_err(|source| self.error(source))?;
        self.open = false;
        self.committed = true;
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
        self.push_with(id, license_id, activation_key, |bodies| {
            for piece in body {
                bodies.extend_from_slice(piece);
            }
        });
    }

    /// [`Pending::push`] for a task's body packed: see [`RunRecorder::add_packed`].
    fn push_packed(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        (head, info, tail): (&[u8], PackedInfo, &[u8]),
    ) {
        self.push_with(id, license_id, activation_key, |bodies| {
            pack_body(head, info, tail, bodies)
        });
    }

    /// A row whose body `write` appends to the bodies.
    fn push_with(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let id = self.append_text(id);
        let activation_key = self.append_text(activation_key);
        let start = self.bodies.len();
        write(&mut self.bodies);
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

/// Copies the WAL's frames into the state file on a thread with a connection of its own (a
/// passive checkpoint: it never blocks the sender's commits). If the process ends first, the
/// frames stay in the WAL, as safe as in the file, for the next checkpoint.
fn checkpoint_behind(path: std::path::PathBuf) {
    // Without a thread for it (no thread could be started), the frames are copied all the
    // same by the next automatic checkpoint, on the sending path.
    let _ = std::thread::Builder::new()
        .name("keyhook-checkpt".into())
        .spawn(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) {
                let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        });
}

#[cfg(test)]
mod tests;

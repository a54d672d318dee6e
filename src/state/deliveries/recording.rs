//! Recording a run: its deliveries and bad rows, in one transaction.

use rusqlite::{Transaction, params};

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
        Ok(RunRecorder {
            transaction,
            run_id,
            task: task.to_string(),
            now,
            path,
            added: 0,
        })
    }
}

impl RunRecorder<'_> {
    /// Records one pending delivery.
    pub fn add(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        body: &[u8],
    ) -> Result<(), StateError> {
        self.added += 1;
        self.insert_delivery(id, license_id, activation_key, body)
            .map_err(|source| self.error(source))
    }

    fn insert_delivery(
        &self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        body: &[u8],
    ) -> rusqlite::Result<()> {
        let mut delivery = self.transaction.prepare_cached(
            "INSERT INTO deliveries (id, run_id, task, license_id, activation_key,
                 created_at, next_attempt_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
        )?;
        delivery.execute(params![
            id,
            self.run_id,
            self.task,
            license_id,
            activation_key,
            self.now
        ])?;
        let seq = self.transaction.last_insert_rowid();
        let mut stored = self
            .transaction
            .prepare_cached("INSERT INTO delivery_bodies (seq, body) VALUES (?1, ?2)")?;
        stored.execute(params![seq, body])?;
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
    pub fn commit(self, matched: u64) -> Result<i64, StateError> {
        let run_id = self.run_id;
        let conn: &rusqlite::Connection = &self.transaction;
        let behind = self.added >= CHECKPOINT_BEHIND_FROM;
        let committed = conn
            .execute(
                "UPDATE runs SET matched = ?2 WHERE id = ?1",
                params![run_id, i64::try_from(matched).unwrap_or(i64::MAX)],
            )
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
}

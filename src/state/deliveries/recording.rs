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
}

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
    pub fn commit(self, matched: u64) -> Result<i64, StateError> {
        let run_id = self.run_id;
        let path = self.path.clone();
        let committed = self
            .transaction
            .execute(
                "UPDATE runs SET matched = ?2 WHERE id = ?1",
                params![run_id, i64::try_from(matched).unwrap_or(i64::MAX)],
            )
            .and_then(|_| self.transaction.commit());
        committed.map_err(|source| StateError::Sql { path, source })?;
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

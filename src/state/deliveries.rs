//! Deliveries and their attempts: recorded before the first POST, claimed before each send,
//! and updated as soon as each attempt's outcome is known.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{StateDb, StateError};

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

/// A delivery claimed for sending.
/// A delivery found by its id or a prefix of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: i64,
    pub task: String,
    pub id: String,
}

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
    /// One delivery, by its sequence number, whenever it is due.
    One(i64),
}

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
}

/// What `keyhook log` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub task: Option<String>,
    pub status: Option<Status>,
    pub since: Option<i64>,
    pub limit: Option<u64>,
}

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
                "INSERT INTO runs (task, name, slot, started_at, sent) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task, name, slot, now, sent],
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

    /// Claims up to `limit` deliveries from `queue` for `claimer`, oldest first.
    pub fn claim(
        &self,
        queue: Queue,
        claimer: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError> {
        // Every queue is read through the task's queue index (task, seq), which holds only
        // what is still to send.
        let (filter, task, key, due) = match queue {
            Queue::Run(task, run_id) => (
                "run_id = ?5 AND status = 'pending'",
                task,
                Value::Integer(run_id),
                now,
            ),
            Queue::DueForTask(task, at) => ("?5 IS NULL", task, Value::Null, at),
            Queue::One(seq) => ("seq = ?5", "", Value::Integer(seq), i64::MAX),
        };
        // The planner would rather use the run_id index and sort every pending row.
        let (source, task_filter) = match queue {
            Queue::One(_) => ("deliveries", "?1 = ?1"),
            _ => ("deliveries INDEXED BY deliveries_task_queue", "task = ?1"),
        };
        let sql = format!(
            "UPDATE deliveries SET claimed_by = ?3
             WHERE seq IN (SELECT seq FROM {source}
                           WHERE {task_filter} AND {filter} AND next_attempt_at <= ?2
                             AND status IN ('pending', 'failed') AND claimed_by IS NULL
                           ORDER BY seq LIMIT ?4)
             RETURNING seq, id, task, license_id, activation_key, body, attempts, created_at"
        );
        let mut statement = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(
                params![task, due, claimer, limit.min(1 << 20) as i64, key],
                |row| {
                    Ok(Claimed {
                        seq: row.get(0)?,
                        id: row.get(1)?,
                        task: row.get(2)?,
                        license_id: row.get(3)?,
                        activation_key: row.get(4)?,
                        body: row.get(5)?,
                        attempts: row.get(6)?,
                        created_at: row.get(7)?,
                    })
                },
            )
            .map_err(|e| self.error(e))?;
        let mut claimed: Vec<Claimed> =
            rows.collect::<Result<_, _>>().map_err(|e| self.error(e))?;
        claimed.sort_by_key(|delivery| delivery.seq);
        Ok(claimed)
    }

    /// Gives back claims: of one process that stopped early, or (`None`) every claim on a
    /// task, which only the holder of the task's lock may do.
    pub fn release_claims(&self, task: &str, claimer: Option<&str>) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE deliveries SET claimed_by = NULL
                 WHERE task = ?1 AND claimed_by IS NOT NULL AND (?2 IS NULL OR claimed_by = ?2)",
                params![task, claimer],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Stores attempts and their deliveries' new statuses, all in one transaction: outcomes
    /// that arrive together are committed together, none waits for another.
    pub fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        // BEGIN and COMMIT from the statement cache: this runs once per delivery, and
        // preparing them afresh each time (as `Transaction` does) was a tenth of its cost.
        self.cached("BEGIN")?;
        let recorded = self.record_in_transaction(outcomes);
        match recorded {
            Ok(()) => self.cached("COMMIT"),
            Err(error) => {
                let _ = self.cached("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Runs a statement without parameters from the statement cache.
    fn cached(&self, sql: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn record_in_transaction(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        // The attempt number is read before the delivery's count goes up, in the same
        // transaction.
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms, excerpt)
                 VALUES (?1, (SELECT attempts + 1 FROM deliveries WHERE seq = ?1),
                         ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(|e| self.error(e))?;
        let mut update = self
            .conn
            .prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3,
                     updated_at = ?4, last_status = ?5, last_error = ?6, claimed_by = NULL
                 WHERE seq = ?1",
            )
            .map_err(|e| self.error(e))?;
        for outcome in outcomes {
            let attempt = &outcome.attempt;
            insert
                .execute(params![
                    outcome.seq,
                    attempt.at_ms,
                    attempt.status,
                    attempt.error,
                    attempt.duration_ms,
                    attempt.excerpt
                ])
                .map_err(|e| self.error(e))?;
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

    /// The tasks that have deliveries due at `now`.
    pub fn tasks_with_due(&self, now: i64) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT task FROM deliveries
                 WHERE status IN ('pending', 'failed') AND next_attempt_at <= ?1 ORDER BY task",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([now], |row| row.get(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The deliveries whose id is `id` (that one alone) or starts with it: at most `limit`.
    pub fn find_deliveries(&self, id: &str, limit: usize) -> Result<Vec<Found>, StateError> {
        let escaped = id
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("{escaped}%");
        let mut statement = self
            .conn
            .prepare(
                "SELECT seq, task, id FROM deliveries
                 WHERE id = ?1 OR (id LIKE ?2 ESCAPE '\\'
                                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE id = ?1))
                 ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![id, pattern, limit as i64], |row| {
                Ok(Found {
                    seq: row.get(0)?,
                    task: row.get(1)?,
                    id: row.get(2)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Puts one delivery back in the queue, due `now`, whatever its status.
    pub fn requeue(&self, seq: i64, now: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = CASE status WHEN 'pending' THEN 'pending' ELSE 'failed' END,
                     next_attempt_at = ?2, claimed_by = NULL WHERE seq = ?1",
                params![seq, now],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Deliveries, newest first.
    pub fn log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, task, run_id, license_id, activation_key, status, attempts, created_at,
                        updated_at, next_attempt_at, last_status, last_error, length(body)
                 FROM deliveries
                 WHERE (?1 IS NULL OR task = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR created_at >= ?3)
                 ORDER BY seq DESC LIMIT ?4",
            )
            .map_err(|e| self.error(e))?;
        // A limit beyond i64 is no limit, never a wrap to a negative one.
        let limit = filter
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let status = filter.status.map(Status::as_str);
        let rows = statement
            .query_map(params![filter.task, status, filter.since, limit], |row| {
                let status: String = row.get(5)?;
                let status = Status::parse(&status).unwrap_or(Status::Pending);
                Ok(LogEntry {
                    id: row.get(0)?,
                    task: row.get(1)?,
                    run_id: row.get(2)?,
                    license_id: row.get(3)?,
                    activation_key: row.get(4)?,
                    status,
                    attempts: row.get(6)?,
                    created_at: row.get(7)?,
                    updated_at: row.get(8)?,
                    next_attempt_at: matches!(status, Status::Pending | Status::Failed)
                        .then(|| row.get(9))
                        .transpose()?,
                    last_status: row.get(10)?,
                    last_error: row.get(11)?,
                    bytes: row.get(12)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// License rows that runs could not read, newest first.
    pub fn bad_rows(&self, filter: &LogFilter) -> Result<Vec<BadRowEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT task, run_id, license_id, activation_key, reason, created_at
                 FROM bad_rows
                 WHERE (?1 IS NULL OR task = ?1) AND (?2 IS NULL OR created_at >= ?2)
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(|e| self.error(e))?;
        let limit = filter
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = statement
            .query_map(params![filter.task, filter.since, limit], |row| {
                Ok(BadRowEntry {
                    task: row.get(0)?,
                    run_id: row.get(1)?,
                    license_id: row.get(2)?,
                    activation_key: row.get(3)?,
                    status: "bad",
                    error: row.get(4)?,
                    created_at: row.get(5)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// A delivery's attempts, oldest first.
    pub fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptEntry>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT a.at, a.status, a.error, a.duration_ms, a.excerpt
                 FROM attempts a JOIN deliveries d ON d.seq = a.delivery_seq
                 WHERE d.id = ?1 ORDER BY a.n",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([delivery_id], |row| {
                Ok(AttemptEntry {
                    at_ms: row.get(0)?,
                    status: row.get(1)?,
                    error: row.get(2)?,
                    duration_ms: row.get(3)?,
                    excerpt: row.get(4)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The body stored for a delivery.
    pub fn body(&self, delivery_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row(
                "SELECT body FROM deliveries WHERE id = ?1",
                [delivery_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Deletes runs that started before `before` and whose deliveries are all settled
    /// (delivered or dead), with their deliveries and attempts; returns how many deliveries.
    pub fn prune(&self, before: i64) -> Result<u64, StateError> {
        let transaction = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.error(e))?;
        let old_runs = "SELECT id FROM runs WHERE started_at < ?1 AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.run_id = runs.id
                AND d.status IN ('pending', 'failed'))";
        let deliveries = transaction
            .execute(
                &format!("DELETE FROM attempts WHERE delivery_seq IN (SELECT seq FROM deliveries WHERE run_id IN ({old_runs}))"),
                [before],
            )
            .and_then(|_| {
                transaction.execute(
                    &format!("DELETE FROM deliveries WHERE run_id IN ({old_runs})"),
                    [before],
                )
            })
            .map_err(|e| self.error(e))?;
        transaction
            .execute(
                &format!("DELETE FROM runs WHERE id IN ({old_runs})"),
                [before],
            )
            .map_err(|e| self.error(e))?;
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(deliveries as u64)
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
        let mut statement = self.transaction.prepare_cached(
            "INSERT INTO deliveries (id, run_id, task, license_id, activation_key, body,
                 created_at, next_attempt_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
        )?;
        statement.execute(params![
            id,
            self.run_id,
            self.task,
            license_id,
            activation_key,
            body,
            self.now
        ])?;
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

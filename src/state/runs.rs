//! Runs and per-task state: when a task was first seen, last ran, and for which slot.

use rusqlite::{OptionalExtension, params};

use super::rows::{self, RUN_SUMMARY, TASK_STATE};
use super::{StateDb, StateError};

/// A task's row in the state database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskState {
    pub first_seen: i64,
    pub last_run: Option<i64>,
    pub last_slot: Option<i64>,
    pub webhook_gone: Option<i64>,
}

/// A run as recorded, with its deliveries counted by status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub task: String,
    pub name: String,
    pub slot: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub matched: i64,
    pub sent: bool,
    /// Why `run-due` skipped this slot, for a skipped one.
    pub skipped: Option<String>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
    pub dead: i64,
    /// License rows the run could not read: recorded, never sent.
    pub bad_rows: i64,
    /// The host that ran it, on a shared (PostgreSQL) state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl StateDb {
    /// The task's state, recording it as first seen `now` if it is new.
    pub fn task_state(&self, task: &str, now: i64) -> Result<TaskState, StateError> {
        self.conn
            .execute(
                "INSERT INTO tasks (task, first_seen) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![task, now],
            )
            .map_err(|e| self.error(e))?;
        self.conn
            .query_row(
                &format!("SELECT {TASK_STATE} FROM tasks WHERE task = ?1"),
                [task],
                |row| rows::task_state(row, 0),
            )
            .map_err(|e| self.error(e))
    }

    /// Every task's state, by task stem.
    pub fn task_states(&self) -> Result<Vec<(String, TaskState)>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT task, {TASK_STATE} FROM tasks ORDER BY task"
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, rows::task_state(row, 1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Records every task in `tasks` not seen before as first seen `now`, in one transaction
    /// (and none at all when every task is known, so an idle `run-due` writes nothing).
    pub fn see_tasks(
        &self,
        tasks: &[&str],
        now: i64,
    ) -> Result<Vec<(String, TaskState)>, StateError> {
        let mut known = self.task_states()?;
        let new: Vec<&&str> = tasks
            .iter()
            .filter(|task| !known.iter().any(|(stem, _)| stem == **task))
            .collect();
        if new.is_empty() {
            return Ok(known);
        }
        let transaction = self.write_transaction().map_err(|e| self.error(e))?;
        for task in new {
            transaction
                .execute(
                    "INSERT INTO tasks (task, first_seen) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![task, now],
                )
                .map_err(|e| self.error(e))?;
        }
        transaction.commit().map_err(|e| self.error(e))?;
        known = self.task_states()?;
        Ok(known)
    }

    /// Records a slot `run-due` skipped, so it is logged once and not looked at again.
    pub fn record_skip(
        &self,
        task: &str,
        name: &str,
        slot: i64,
        now: i64,
        why: &str,
    ) -> Result<(), StateError> {
        let transaction = self.write_transaction().map_err(|e| self.error(e))?;
        transaction
            .execute(
                "INSERT INTO runs (task, name, slot, started_at, finished_at, sent, skipped, host)
                 VALUES (?1, ?2, ?3, ?4, ?4, 0, ?5, ?6) ON CONFLICT DO NOTHING",
                params![task, name, slot, now, why, self.host],
            )
            .map_err(|e| self.error(e))?;
        transaction
            .execute(
                "UPDATE tasks SET last_slot = max(coalesce(last_slot, ?2), ?2) WHERE task = ?1",
                params![task, slot],
            )
            .map_err(|e| self.error(e))?;
        transaction.commit().map_err(|e| self.error(e))
    }

    /// Sets (or rewinds) when the task last ran. A last slot or first sighting later than
    /// `now` (left by a wrong clock or `--now`) is moved back: the slot to `slot` (the latest
    /// at or before `at`), the sighting to `at`, so `run-due` runs the task again.
    pub fn set_last_run(
        &self,
        task: &str,
        at: i64,
        slot: Option<i64>,
        now: i64,
    ) -> Result<(), StateError> {
        // A task not seen before is first seen now, as `run-due` would note it: a sighting
        // back at `at` made it run at once for slots `next` never showed.
        self.task_state(task, now)?;
        self.conn
            .execute(
                "UPDATE tasks SET last_run = ?2,
                     last_slot = CASE WHEN last_slot > ?4 THEN ?3 ELSE last_slot END,
                     first_seen = CASE WHEN first_seen > ?4 THEN min(first_seen, ?2)
                                       ELSE first_seen END
                 WHERE task = ?1",
                params![task, at, slot, now],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Records that the receiver answered 410 Gone (or, with `None`, re-enables the webhook):
    /// on the task, or the webhook source, called `source`.
    pub fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE tasks SET webhook_gone = ?2 WHERE task = ?1",
                params![source, at],
            )
            .and_then(|_| {
                self.conn.execute(
                    "UPDATE webhook_sources SET webhook_gone = ?2 WHERE source = ?1",
                    params![source, at],
                )
            })
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Whether a run for this task and slot was already recorded (a run still being
    /// recorded, or killed while it was, is not one yet).
    pub fn slot_ran(&self, task: &str, slot: i64) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT 1 FROM runs WHERE task = ?1 AND slot = ?2 AND recording IS NULL",
                params![task, slot],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.error(e))
    }

    /// The run of `slot` that never finished sending (a kill, a stop), if there is one: one
    /// killed while it was recorded never started.
    pub fn unfinished_run(&self, task: &str, slot: i64) -> Result<Option<i64>, StateError> {
        self.conn
            .query_row(
                "SELECT id FROM runs
                 WHERE task = ?1 AND slot = ?2 AND finished_at IS NULL AND recording IS NULL",
                params![task, slot],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Marks a run finished and, for a completed run, advances the task's last run.
    pub fn finish_run(&self, run_id: i64, now: i64) -> Result<(), StateError> {
        let transaction = self.write_transaction().map_err(|e| self.error(e))?;
        transaction
            .execute(
                "UPDATE runs SET finished_at = ?2 WHERE id = ?1",
                params![run_id, now],
            )
            .map_err(|e| self.error(e))?;
        transaction
            .execute(
                "UPDATE tasks SET last_run = runs.started_at,
                     last_slot = coalesce(runs.slot, tasks.last_slot)
                 FROM runs WHERE runs.id = ?1 AND tasks.task = runs.task",
                [run_id],
            )
            .map_err(|e| self.error(e))?;
        transaction.commit().map_err(|e| self.error(e))
    }

    /// The latest run of each task, with its deliveries counted by status; a slot that
    /// `run-due` skipped is not a run (see [`StateDb::latest_skips`]), nor is a run still
    /// being recorded.
    pub fn latest_runs(&self) -> Result<Vec<RunSummary>, StateError> {
        self.run_summaries(
            "WHERE r.id IN (SELECT max(id) FROM runs
                            WHERE skipped IS NULL AND recording IS NULL GROUP BY task)
             ORDER BY r.task",
        )
    }

    /// Per task, the slot `run-due` skipped last, if nothing ran after it.
    pub fn latest_skips(&self) -> Result<Vec<RunSummary>, StateError> {
        self.run_summaries(
            "WHERE r.id IN (SELECT max(id) FROM runs WHERE recording IS NULL GROUP BY task)
               AND r.skipped IS NOT NULL
             ORDER BY r.task",
        )
    }

    /// A run by id.
    pub fn run(&self, run_id: i64) -> Result<Option<RunSummary>, StateError> {
        let mut runs = self.run_summaries(&format!("WHERE r.id = {run_id}"))?;
        Ok(runs.pop())
    }

    fn run_summaries(&self, filter: &str) -> Result<Vec<RunSummary>, StateError> {
        let sql = format!(
            "SELECT {RUN_SUMMARY}, r.host FROM runs r LEFT JOIN deliveries d ON d.run_id = r.id \
             {filter} "
        );
        let sql = match sql.find("ORDER BY") {
            Some(at) => format!("{} GROUP BY r.id {}", &sql[..at], &sql[at..]),
            None => format!("{sql} GROUP BY r.id"),
        };
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| rows::run_summary(row))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }
}

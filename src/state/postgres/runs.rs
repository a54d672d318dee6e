//! Runs, per-task state and slot claims on the server: the same questions as the SQLite
//! state's `runs.rs`, and who gets to run a slot.

use super::PgState;
use crate::state::StateError;
use crate::state::rows::{self, RUN_SUMMARY, TASK_STATE};
use crate::state::runs::{RunSummary, TaskState};

/// Where the run of a slot another host claimed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRun {
    /// Recorded and not finished: its deliveries are being sent.
    Sending(i64),
    /// Claimed, not recorded yet (the search is running).
    Waiting,
    /// Finished, or never to be: the claim was given back or expired.
    Over,
}

/// Who runs a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotClaim {
    /// This host: it runs the slot.
    Won,
    /// Another host claimed it (or ran it) first.
    Taken { host: String },
}

impl PgState {
    pub fn task_state(&self, task: &str, now: i64) -> Result<TaskState, StateError> {
        let mut client = self.client.borrow_mut();
        client
            .execute(
                "INSERT INTO tasks (task, first_seen) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&task, &now],
            )
            .map_err(|e| self.error(&e))?;
        client
            .query_one(
                &format!("SELECT {TASK_STATE} FROM tasks WHERE task = $1"),
                &[&task],
            )
            .and_then(|row| rows::task_state(&row, 0))
            .map_err(|e| self.error(&e))
    }

    pub fn task_states(&self) -> Result<Vec<(String, TaskState)>, StateError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!("SELECT task, {TASK_STATE} FROM tasks ORDER BY task"),
                &[],
            )
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, rows::task_state(row, 1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(|e| self.error(&e))
    }

    /// Records the tasks not seen before as first seen `now` (one statement, all or none).
    pub fn see_tasks(
        &self,
        tasks: &[&str],
        now: i64,
    ) -> Result<Vec<(String, TaskState)>, StateError> {
        let tasks: Vec<String> = tasks.iter().map(|task| task.to_string()).collect();
        self.client
            .borrow_mut()
            .execute(
                "INSERT INTO tasks (task, first_seen) SELECT unnest($1::text[]), $2
                 ON CONFLICT DO NOTHING",
                &[&tasks, &now],
            )
            .map_err(|e| self.error(&e))?;
        self.task_states()
    }

    pub fn record_skip(
        &self,
        task: &str,
        name: &str,
        slot: i64,
        now: i64,
        why: &str,
    ) -> Result<(), StateError> {
        let mut client = self.client.borrow_mut();
        let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
        transaction
            .execute(
                "INSERT INTO runs (task, name, slot, started_at, finished_at, sent, skipped, host)
                 VALUES ($1, $2, $3, $4, $4, false, $5, $6) ON CONFLICT DO NOTHING",
                &[&task, &name, &slot, &now, &why, &self.identity.host],
            )
            .map_err(|e| self.error(&e))?;
        transaction
            .execute(
                "UPDATE tasks SET last_slot = greatest(coalesce(last_slot, $2), $2) WHERE task = $1",
                &[&task, &slot],
            )
            .map_err(|e| self.error(&e))?;
        transaction.commit().map_err(|e| self.error(&e))
    }

    pub fn slot_ran(&self, task: &str, slot: i64) -> Result<bool, StateError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT 1 FROM runs WHERE task = $1 AND slot = $2",
                &[&task, &slot],
            )
            .map(|found| found.is_some())
            .map_err(|e| self.error(&e))
    }

    /// The run of `slot` that never finished (a kill, a stop), if there is one.
    pub fn unfinished_run(&self, task: &str, slot: i64) -> Result<Option<i64>, StateError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT id FROM runs WHERE task = $1 AND slot = $2 AND finished_at IS NULL",
                &[&task, &slot],
            )
            .map(|found| found.map(|row| row.get(0)))
            .map_err(|e| self.error(&e))
    }

    /// Claims `slot` of `task` for this host until the lease ends (by the server's clock). A
    /// claim is taken over only when it expired and its run was never recorded.
    pub fn claim_slot(&self, task: &str, slot: i64) -> Result<SlotClaim, StateError> {
        let mut client = self.client.borrow_mut();
        let won = client
            .query_opt(
                "INSERT INTO slot_claims AS c (task, slot, host, claimed_until)
                 VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
                 ON CONFLICT (task, slot) DO UPDATE
                     SET host = excluded.host, claimed_at = now(),
                         claimed_until = excluded.claimed_until
                     WHERE c.claimed_until < now()
                       AND NOT EXISTS (SELECT 1 FROM runs r
                                       WHERE r.task = c.task AND r.slot = c.slot)
                 RETURNING host",
                &[&task, &slot, &self.identity.host, &self.lease_ms()],
            )
            .map_err(|e| self.error(&e))?;
        if won.is_some() {
            return Ok(SlotClaim::Won);
        }
        let holder = client
            .query_opt(
                "SELECT coalesce((SELECT host FROM runs WHERE task = $1 AND slot = $2),
                                 (SELECT host FROM slot_claims WHERE task = $1 AND slot = $2))",
                &[&task, &slot],
            )
            .map_err(|e| self.error(&e))?
            .and_then(|row| row.get::<_, Option<String>>(0));
        Ok(SlotClaim::Taken {
            host: holder.unwrap_or_else(|| "another host".into()),
        })
    }

    /// Where the run of `slot` stands, for a host that would help send it.
    pub fn slot_run(&self, task: &str, slot: i64) -> Result<SlotRun, StateError> {
        let row = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT r.id, r.finished_at IS NOT NULL,
                        EXISTS (SELECT 1 FROM slot_claims c WHERE c.task = $1 AND c.slot = $2
                                  AND c.claimed_until > now())
                 FROM (SELECT 1) AS one
                 LEFT JOIN runs r ON r.task = $1 AND r.slot = $2",
                &[&task, &slot],
            )
            .map_err(|e| self.error(&e))?;
        let (run, finished, claimed): (Option<i64>, Option<bool>, bool) =
            (row.get(0), row.get(1), row.get(2));
        Ok(match (run, finished, claimed) {
            (Some(run), Some(false), _) => SlotRun::Sending(run),
            (None, _, true) => SlotRun::Waiting,
            _ => SlotRun::Over,
        })
    }

    /// Gives a slot claim back, its run not started (the task's lock was busy).
    pub fn release_slot(&self, task: &str, slot: i64) -> Result<(), StateError> {
        self.client
            .borrow_mut()
            .execute(
                "DELETE FROM slot_claims WHERE task = $1 AND slot = $2 AND host = $3
                   AND NOT EXISTS (SELECT 1 FROM runs WHERE task = $1 AND slot = $2)",
                &[&task, &slot, &self.identity.host],
            )
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    pub fn set_last_run(
        &self,
        task: &str,
        at: i64,
        slot: Option<i64>,
        now: i64,
    ) -> Result<(), StateError> {
        // A task not seen before is first seen now (see the SQLite state's).
        self.task_state(task, now)?;
        self.client
            .borrow_mut()
            .execute(
                "UPDATE tasks SET last_run = $2,
                     last_slot = CASE WHEN last_slot > $4 THEN $3 ELSE last_slot END,
                     first_seen = CASE WHEN first_seen > $4 THEN least(first_seen, $2)
                                       ELSE first_seen END
                 WHERE task = $1",
                &[&task, &at, &slot, &now],
            )
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    pub fn finish_run(&self, run_id: i64, now: i64) -> Result<(), StateError> {
        let mut client = self.client.borrow_mut();
        let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
        transaction
            .execute(
                "UPDATE runs SET finished_at = $2 WHERE id = $1",
                &[&run_id, &now],
            )
            .map_err(|e| self.error(&e))?;
        // A later slot finished first (by another host) keeps its place.
        transaction
            .execute(
                "UPDATE tasks SET last_run = greatest(runs.started_at, coalesce(tasks.last_run, 0)),
                     last_slot = greatest(coalesce(runs.slot, tasks.last_slot), tasks.last_slot)
                 FROM runs WHERE runs.id = $1 AND tasks.task = runs.task",
                &[&run_id],
            )
            .map_err(|e| self.error(&e))?;
        transaction.commit().map_err(|e| self.error(&e))
    }

    pub fn latest_runs(&self) -> Result<Vec<RunSummary>, StateError> {
        self.run_summaries(
            "WHERE r.id IN (SELECT max(id) FROM runs WHERE skipped IS NULL GROUP BY task)",
            "ORDER BY r.task",
        )
    }

    pub fn latest_skips(&self) -> Result<Vec<RunSummary>, StateError> {
        self.run_summaries(
            "WHERE r.id IN (SELECT max(id) FROM runs GROUP BY task) AND r.skipped IS NOT NULL",
            "ORDER BY r.task",
        )
    }

    pub fn run(&self, run_id: i64) -> Result<Option<RunSummary>, StateError> {
        Ok(self
            .run_summaries(&format!("WHERE r.id = {run_id}"), "")?
            .pop())
    }

    fn run_summaries(&self, filter: &str, order: &str) -> Result<Vec<RunSummary>, StateError> {
        let sql = format!(
            "SELECT {RUN_SUMMARY}, r.host
             FROM runs r LEFT JOIN deliveries d ON d.run_id = r.id {filter}
             GROUP BY r.id {order}"
        );
        let rows = self
            .client
            .borrow_mut()
            .query(&sql, &[])
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(rows::run_summary)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))
    }
}

//! Deliveries on the server: recorded with their run in one transaction, claimed with a lease
//! (`FOR UPDATE SKIP LOCKED`, `claimed_until` by the server's clock) committed before the
//! POST, and their outcomes committed only while the claim is still this process's.

use postgres::Statement;

use super::PgState;
use crate::state::StateError;
use crate::state::deliveries::{Claimed, Found, Outcome, Queue};
use crate::state::rows::{self, CLAIMED};

/// A run being recorded: an open transaction on the state's connection, rolled back if
/// dropped before [`PgRecorder::commit`].
pub struct PgRecorder<'a> {
    state: &'a PgState,
    run_id: i64,
    task: String,
    now: i64,
    insert: Statement,
    done: bool,
}

impl PgState {
    /// Starts recording a run. For a slot, the run's row is the slot's final claim: when
    /// another host recorded it first, this is [`StateError::SlotTaken`].
    pub fn begin_run(
        &self,
        task: &str,
        name: &str,
        slot: Option<i64>,
        now: i64,
        sent: bool,
    ) -> Result<PgRecorder<'_>, StateError> {
        let mut client = self.client.borrow_mut();
        client.batch_execute("BEGIN").map_err(|e| self.error(&e))?;
        let inserted = client.query_opt(
            "INSERT INTO runs (task, name, slot, started_at, sent, host)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task, slot) DO NOTHING RETURNING id",
            &[&task, &name, &slot, &now, &sent, &self.identity.host],
        );
        let insert = client.prepare(
            "INSERT INTO deliveries (id, run_id, task, license_id, activation_key, body,
                 created_at, next_attempt_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
        );
        let (inserted, insert) = match (inserted, insert) {
            (Ok(inserted), Ok(insert)) => (inserted, insert),
            (Err(e), _) | (_, Err(e)) => {
                let _ = client.batch_execute("ROLLBACK");
                return Err(self.error(&e));
            }
        };
        let Some(row) = inserted else {
            let _ = client.batch_execute("ROLLBACK");
            return Err(StateError::SlotTaken {
                task: task.to_string(),
                slot: slot.unwrap_or_default(),
            });
        };
        Ok(PgRecorder {
            state: self,
            run_id: row.get(0),
            task: task.to_string(),
            now,
            insert,
            done: false,
        })
    }
}

impl PgRecorder<'_> {
    pub fn add(
        &mut self,
        id: &str,
        license_id: i64,
        activation_key: &str,
        body: &[u8],
    ) -> Result<(), StateError> {
        let state = self.state;
        state
            .client
            .borrow_mut()
            .execute(
                &self.insert,
                &[
                    &id,
                    &self.run_id,
                    &self.task,
                    &license_id,
                    &activation_key,
                    &body,
                    &self.now,
                ],
            )
            .map(drop)
            .map_err(|e| state.error(&e))
    }

    pub fn add_bad(
        &mut self,
        license_id: i64,
        activation_key: &str,
        reason: &str,
    ) -> Result<(), StateError> {
        let state = self.state;
        state
            .client
            .borrow_mut()
            .execute(
                "INSERT INTO bad_rows (run_id, task, license_id, activation_key, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &self.run_id,
                    &self.task,
                    &license_id,
                    &activation_key,
                    &reason,
                    &self.now,
                ],
            )
            .map(drop)
            .map_err(|e| state.error(&e))
    }

    pub fn commit(mut self, matched: u64) -> Result<i64, StateError> {
        let state = self.state;
        let matched = i64::try_from(matched).unwrap_or(i64::MAX);
        let mut client = state.client.borrow_mut();
        client
            .execute(
                "UPDATE runs SET matched = $2 WHERE id = $1",
                &[&self.run_id, &matched],
            )
            .and_then(|_| client.batch_execute("COMMIT"))
            .map_err(|e| state.error(&e))?;
        self.done = true;
        Ok(self.run_id)
    }
}

impl Drop for PgRecorder<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut client) = self.state.client.try_borrow_mut()
        {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}

/// An event delivery waits while an earlier one (lower seq) of the same source and entity is
/// pending or failed, claimed (by any host) or not, as on SQLite; a dead one no longer holds
/// it back. The subquery reads committed rows, locked ones too, so a predecessor that another
/// host is sending right now holds its followers back. Event deliveries are recorded one
/// transaction at a time (see `events.rs`), so a predecessor is never committed after its
/// follower.
const IN_ORDER: &str = "(d.order_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.task = d.task AND e.order_key = d.order_key AND e.seq < d.seq
      AND e.order_key IS NOT NULL AND e.status IN ('pending', 'failed')))";

impl PgState {
    /// Claims up to `limit` deliveries of `queue`: unclaimed ones and those whose lease ran
    /// out, skipping rows another host is claiming right now. Committed before any POST.
    pub fn claim(&self, queue: Queue, now: i64, limit: usize) -> Result<Vec<Claimed>, StateError> {
        let (filter, task, key, due) = match queue {
            Queue::Run(task, run_id) => (
                "task = $1 AND run_id = $6::bigint AND status = 'pending'",
                task,
                run_id,
                now,
            ),
            Queue::DueForTask(task, at) => ("task = $1 AND $6::bigint IS NOT NULL", task, 0, at),
            Queue::One(seq) => (
                "$1::text IS NOT NULL AND seq = $6::bigint",
                "",
                seq,
                i64::MAX,
            ),
        };
        let sql = format!(
            "UPDATE deliveries SET claimed_by = $3,
                 claimed_until = now() + $5::bigint * interval '1 millisecond'
             WHERE seq IN (SELECT seq FROM deliveries AS d
                           WHERE {filter} AND next_attempt_at <= $2
                             AND status IN ('pending', 'failed')
                             AND (claimed_by IS NULL OR claimed_until < now())
                             AND {IN_ORDER}
                           ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING {CLAIMED}"
        );
        let limit = limit.min(1 << 20) as i64;
        let rows = self
            .client
            .borrow_mut()
            .query(
                &sql,
                &[&task, &due, &self.claimer, &limit, &self.lease_ms(), &key],
            )
            .map_err(|e| self.error(&e))?;
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(rows::claimed)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))?;
        claimed.sort_by_key(|delivery| delivery.seq);
        Ok(claimed)
    }

    /// Gives back this process's claims on `task`, and clears expired ones. Another host's
    /// live claim is never touched: it ends by its outcome or its lease.
    pub fn release_claims(&self, task: &str) -> Result<(), StateError> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL
                 WHERE task = $1 AND claimed_by IS NOT NULL
                   AND (claimed_by = $2 OR claimed_until < now())",
                &[&task, &self.claimer],
            )
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    /// Stores the outcomes whose claim is still this process's, in one transaction; the
    /// others (the lease ran out and another host took the delivery) are counted as lost.
    pub fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        let mut client = self.client.borrow_mut();
        let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
        let mut lost = 0;
        for outcome in outcomes {
            let attempt = &outcome.attempt;
            let http = attempt.status.map(i64::from);
            let updated = transaction
                .query_opt(
                    "UPDATE deliveries SET status = $2, attempts = attempts + 1,
                         next_attempt_at = $3, updated_at = $4, last_status = $5, last_error = $6,
                         claimed_by = NULL, claimed_until = NULL
                     WHERE seq = $1 AND claimed_by = $7 RETURNING attempts",
                    &[
                        &outcome.seq,
                        &outcome.status.as_str(),
                        &outcome.next_attempt_at,
                        &(attempt.at_ms / 1000),
                        &http,
                        &attempt.error,
                        &self.claimer,
                    ],
                )
                .map_err(|e| self.error(&e))?;
            let Some(row) = updated else {
                lost += 1;
                continue;
            };
            let n: i64 = row.get(0);
            transaction
                .execute(
                    "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms,
                                           excerpt, host)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &outcome.seq,
                        &n,
                        &attempt.at_ms,
                        &http,
                        &attempt.error,
                        &attempt.duration_ms,
                        &attempt.excerpt,
                        &self.identity.host,
                    ],
                )
                .map_err(|e| self.error(&e))?;
        }
        transaction.commit().map_err(|e| self.error(&e))?;
        self.lost.set(self.lost.get() + lost);
        Ok(())
    }

    pub fn tasks_with_due(&self, now: i64) -> Result<Vec<String>, StateError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT DISTINCT task FROM deliveries
                 WHERE status IN ('pending', 'failed') AND next_attempt_at <= $1 ORDER BY task",
                &[&now],
            )
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub fn find_deliveries(&self, id: &str, limit: usize) -> Result<Vec<Found>, StateError> {
        let escaped = id
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("{escaped}%");
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT seq, task, id FROM deliveries
                 WHERE id = $1 OR (id LIKE $2 ESCAPE '\\'
                                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE id = $1))
                 ORDER BY id LIMIT $3",
                &[&id, &pattern, &(limit as i64)],
            )
            .map_err(|e| self.error(&e))?;
        Ok(rows
            .iter()
            .map(|row| Found {
                seq: row.get(0),
                task: row.get(1),
                id: row.get(2),
            })
            .collect())
    }

    /// Puts one delivery back in the queue, due `now`; a live claim of another host stays.
    pub fn requeue(&self, seq: i64, now: i64) -> Result<(), StateError> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE deliveries SET status = CASE status WHEN 'pending' THEN 'pending'
                                                            ELSE 'failed' END,
                     next_attempt_at = $2,
                     claimed_by = CASE WHEN claimed_until < now() THEN NULL ELSE claimed_by END
                 WHERE seq = $1",
                &[&seq, &now],
            )
            .map(drop)
            .map_err(|e| self.error(&e))
    }
}

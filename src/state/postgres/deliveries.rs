//! Deliveries on the server (recorded with their run by `recording.rs`): claimed with a lease
//! (`FOR UPDATE SKIP LOCKED`, `claimed_until` by the server's clock) committed before the
//! POST, and their outcomes committed only while the claim is still this process's.

use super::PgState;
use crate::state::StateError;
use crate::state::deliveries::{Claimed, Found, Outcome, Queue};
use crate::state::rows::{self, CLAIMED};

/// An event delivery waits while an earlier one (lower seq) of the same source and entity is
/// pending or failed, claimed (by any host) or not, as on SQLite; a dead one no longer holds
/// it back. The subquery reads committed rows, locked ones too, so a predecessor that another
/// host is sending right now holds its followers back. Event deliveries are recorded one
/// transaction at a time (see `events.rs`), so a predecessor is never committed after its
/// follower.
pub(in crate::state) const IN_ORDER: &str = "(d.order_key IS NULL OR NOT EXISTS (
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
            Queue::One(source, seq) => ("task = $1 AND seq = $6::bigint", source, seq, i64::MAX),
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

    /// Extends this process's claims on `task` by a lease from now (the server's clock): a
    /// batch of slow POSTs keeps its claims while it is being sent.
    pub fn renew_claims(&self, task: &str) -> Result<(), StateError> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE deliveries
                 SET claimed_until = now() + $3::bigint * interval '1 millisecond'
                 WHERE task = $1 AND claimed_by = $2 AND status IN ('pending', 'failed')",
                &[&task, &self.claimer, &self.lease_ms()],
            )
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    /// Stores the outcomes whose claim is still this process's, in one transaction of two
    /// statements whatever their number; the others (the lease ran out and another host took
    /// the delivery) are counted as lost.
    pub fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        let column = Columns::of(outcomes);
        let mut client = self.client.borrow_mut();
        let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
        let updated = transaction
            .query(
                "UPDATE deliveries d SET status = o.status, attempts = d.attempts + 1,
                     next_attempt_at = o.next_attempt_at, updated_at = o.updated_at,
                     last_status = o.http, last_error = o.error,
                     claimed_by = NULL, claimed_until = NULL
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                             $6::text[]) AS o (seq, status, next_attempt_at, updated_at, http, error)
                 WHERE d.seq = o.seq AND d.claimed_by = $7
                 RETURNING d.seq, d.attempts",
                &[
                    &column.seqs,
                    &column.statuses,
                    &column.next,
                    &column.updated,
                    &column.http,
                    &column.errors,
                    &self.claimer,
                ],
            )
            .map_err(|e| self.error(&e))?;
        let numbers: std::collections::HashMap<i64, i64> =
            updated.iter().map(|row| (row.get(0), row.get(1))).collect();
        let n: Vec<Option<i64>> = column
            .seqs
            .iter()
            .map(|seq| numbers.get(seq).copied())
            .collect();
        transaction
            .execute(
                "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms, excerpt,
                                       host)
                 SELECT a.seq, a.n, a.at, a.http, a.error, a.duration_ms, a.excerpt, $8
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                             $6::bigint[], $7::text[])
                      AS a (seq, n, at, http, error, duration_ms, excerpt)
                 WHERE a.n IS NOT NULL",
                &[
                    &column.seqs,
                    &n,
                    &column.at,
                    &column.http,
                    &column.errors,
                    &column.durations,
                    &column.excerpts,
                    &self.identity.host,
                ],
            )
            .map_err(|e| self.error(&e))?;
        transaction.commit().map_err(|e| self.error(&e))?;
        let lost = (outcomes.len() - numbers.len()) as u64;
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

    /// Gives up the waiting deliveries of `task` that no host holds: dead, with `reason` as
    /// their last error. Returns how many.
    pub fn give_up(&self, task: &str, reason: &str, now: i64) -> Result<u64, StateError> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE deliveries SET status = 'dead', last_error = $2, updated_at = $3,
                     claimed_by = NULL
                 WHERE task = $1 AND status IN ('pending', 'failed')
                   AND (claimed_by IS NULL OR claimed_until < now())",
                &[&task, &reason, &now],
            )
            .map_err(|e| self.error(&e))
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

/// Outcomes column by column, as `unnest` takes them.
struct Columns {
    seqs: Vec<i64>,
    statuses: Vec<&'static str>,
    next: Vec<i64>,
    updated: Vec<i64>,
    http: Vec<Option<i64>>,
    errors: Vec<Option<String>>,
    at: Vec<i64>,
    durations: Vec<i64>,
    excerpts: Vec<String>,
}

impl Columns {
    fn of(outcomes: &[Outcome]) -> Columns {
        let attempts = || outcomes.iter().map(|outcome| &outcome.attempt);
        Columns {
            seqs: outcomes.iter().map(|outcome| outcome.seq).collect(),
            statuses: outcomes
                .iter()
                .map(|outcome| outcome.status.as_str())
                .collect(),
            next: outcomes
                .iter()
                .map(|outcome| outcome.next_attempt_at)
                .collect(),
            updated: attempts().map(|attempt| attempt.at_ms / 1000).collect(),
            http: attempts()
                .map(|attempt| attempt.status.map(i64::from))
                .collect(),
            errors: attempts().map(|attempt| attempt.error.clone()).collect(),
            at: attempts().map(|attempt| attempt.at_ms).collect(),
            durations: attempts().map(|attempt| attempt.duration_ms).collect(),
            excerpts: attempts().map(|attempt| attempt.excerpt.clone()).collect(),
        }
    }
}

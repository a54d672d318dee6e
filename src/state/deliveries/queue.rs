//! The queue: claiming deliveries for a sender, giving claims back, and committing attempts.

use rusqlite::params;
use rusqlite::types::Value;

use super::{Claimed, Found, Queue, RECORDED};
use crate::licenses::license_info::Damaged;
use crate::state::{StateDb, StateError};

/// An event delivery waits while an earlier one (lower seq) of the same source and entity
/// is pending or failed, claimed or not; a dead one no longer holds it back. Task deliveries
/// (no order key) skip the check, and the lookup reads an index of waiting event deliveries.
pub(in crate::state) const IN_ORDER: &str = "(d.order_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries AS e INDEXED BY deliveries_order
    WHERE e.task = d.task AND e.order_key = d.order_key AND e.seq < d.seq
      AND e.order_key IS NOT NULL AND e.status IN ('pending', 'failed')))";

impl StateDb {
    /// Claims up to `limit` deliveries from `queue` for `claimer`, oldest first.
    ///
    /// A claim on a SQLite state is kept in this process ([`ClaimBook`](super::ClaimBook)): only the holder of
    /// the source's lock sends from it. It looks above the highest seq handed out first, and
    /// below it (where only deliveries held back or given back can be) only when that comes
    /// back short.
    pub fn claim(
        &self,
        queue: Queue,
        claimer: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError> {
        let source = match queue {
            Queue::Run(task, _) | Queue::DueForTask(task, _) => task,
            Queue::One(source, _) => source,
        };
        let cursor = self.claims.borrow().cursor(source);
        let mut claimed = self.waiting(queue, now, (cursor + 1, i64::MAX), limit)?;
        if claimed.len() < limit && cursor > 0 {
            // Below the cursor most waiting deliveries are held (claimed, not answered yet):
            // their seqs are read first and only the others are read whole. Read whole, the
            // held ones (bodies and all) came back on every claim at a run's end, when a
            // claim follows each commit: half again the rows a 40k run claimed.
            let held = self.claims.borrow().held_count();
            let free: Vec<i64> = {
                let seqs = self.waiting_seqs(queue, now, cursor, limit + held)?;
                let book = self.claims.borrow();
                seqs.into_iter()
                    .filter(|&seq| !book.is_held(seq))
                    .take(limit - claimed.len())
                    .collect()
            };
            for seq in free {
                claimed.extend(self.waiting(queue, now, (seq, seq), 1)?);
            }
        }
        claimed.sort_by_key(|delivery| delivery.seq);
        claimed.truncate(limit);
        let mut book = self.claims.borrow_mut();
        claimed.retain(|delivery| !book.is_held(delivery.seq));
        book.hold_all(
            claimed
                .iter()
                .map(|delivery| (delivery.seq, delivery.task.as_str())),
            claimer,
        );
        Ok(claimed)
    }

    /// The seqs of up to `limit` deliveries of `queue` due at `now` at or below `cursor`,
    /// oldest first: [`StateDb::waiting`]'s rows without reading them whole.
    fn waiting_seqs(
        &self,
        queue: Queue,
        now: i64,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StateError> {
        let (sql, params) = waiting_query(queue, now, (i64::MIN, cursor), SEQ_ONLY);
        let mut statement = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| row.get(0))
            .map_err(|e| self.error(e))?;
        rows.take(limit)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))
    }

    /// Up to `limit` deliveries of `queue` due at `now` with a seq in `seqs`, oldest first.
    fn waiting(
        &self,
        queue: Queue,
        now: i64,
        seqs: (i64, i64),
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError> {
        let (sql, params) = waiting_query(queue, now, seqs, WHOLE);
        let mut statement = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        // A delivery whose stored body is damaged cannot be sent as it was recorded: it is
        // not claimed but given up below, and the others go on.
        let mut damaged: Vec<(i64, Damaged)> = Vec::new();
        // No LIMIT: the scan stops after `limit` rows all the same, and a bound LIMIT makes
        // SQLite prepare the statement again whenever its value changes (every claim).
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                let seq = row.get(0)?;
                let body = match super::stored_body(row, 5)? {
                    Ok(body) => body,
                    Err(problem) => {
                        damaged.push((seq, problem));
                        return Ok(None);
                    }
                };
                Ok(Some(Claimed {
                    seq,
                    id: row.get(1)?,
                    task: row.get(2)?,
                    license_id: row.get(3)?,
                    activation_key: row.get(4)?,
                    body,
                    attempts: row.get(6)?,
                    created_at: row.get(7)?,
                    event_type: row.get(8)?,
                }))
            })
            .map_err(|e| self.error(e))?;
        let claimed = rows
            .filter_map(Result::transpose)
            .take(limit)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))?;
        for (seq, problem) in damaged {
            self.give_up_damaged(seq, &problem, now)?;
        }
        Ok(claimed)
    }

    /// Gives up a delivery whose stored body is damaged: dead, `problem` its last error (in
    /// `log` and `status`), never sent with other bytes.
    fn give_up_damaged(&self, seq: i64, problem: &Damaged, now: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = 'dead', last_error = ?2, updated_at = ?3,
                     claimed_by = NULL
                 WHERE seq = ?1",
                params![seq, problem.to_string(), now],
            )
            .map_err(|e| self.error(e))?;
        self.given_up.set(self.given_up.get() + 1);
        Ok(())
    }

    /// Gives back claims: of one process that stopped early, or (`None`) every claim on a
    /// task, which only the holder of the task's lock may do (claims written to the file by
    /// an earlier version included; and a run a kill left half recorded goes).
    pub fn release_claims(&self, task: &str, claimer: Option<&str>) -> Result<(), StateError> {
        self.claims.borrow_mut().release(task, claimer);
        if claimer.is_some() {
            return Ok(());
        }
        // The lock's new holder also removes a run a kill left half recorded.
        self.clear_killed_recordings(task)?;
        self.conn
            .prepare_cached(
                "UPDATE deliveries SET claimed_by = NULL
                 WHERE task = ?1 AND claimed_by IS NOT NULL",
            )
            .and_then(|mut statement| statement.execute([task]))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// The tasks that have deliveries due at `now`.
    pub fn tasks_with_due(&self, now: i64) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT DISTINCT task FROM deliveries
                 WHERE status IN ('pending', 'failed') AND next_attempt_at <= ?1 AND {RECORDED}
                 ORDER BY task"
            ))
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
            .prepare(&format!(
                "SELECT seq, task, id FROM deliveries
                 WHERE (id = ?1 OR (id LIKE ?2 ESCAPE '\\'
                                    AND NOT EXISTS (SELECT 1 FROM deliveries WHERE id = ?1)))
                   AND {RECORDED}
                 ORDER BY id LIMIT ?3"
            ))
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

    /// Gives up the waiting (pending or failed) deliveries of `task`: dead, with `reason` as
    /// their last error, never sent again. Returns how many.
    pub fn give_up(&self, task: &str, reason: &str, now: i64) -> Result<u64, StateError> {
        self.conn
            .execute(
                &format!(
                    "UPDATE deliveries SET status = 'dead', last_error = ?2, updated_at = ?3,
                         claimed_by = NULL
                     WHERE task = ?1 AND status IN ('pending', 'failed') AND {RECORDED}"
                ),
                params![task, reason, now],
            )
            .map(|changed| changed as u64)
            .map_err(|e| self.error(e))
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
}

/// What a claim reads of each delivery: the whole of it, its body by a (left: a missing one
/// is still an error) join, not a subquery per row: the join opens its cursor once; a claim
/// cost ~2k instructions less per row.
const WHOLE: &str = "d.seq, d.id, d.task, d.license_id, d.activation_key, b.body, d.attempts,
     d.created_at, d.event_type";
const BODY_JOIN: &str = "LEFT JOIN delivery_bodies AS b ON b.seq = d.seq";
/// Only its seq.
const SEQ_ONLY: &str = "d.seq";

/// The SELECT of `columns` for the deliveries of `queue` due at `now` with a seq in `seqs`,
/// oldest first, and its parameters.
fn waiting_query(queue: Queue, now: i64, seqs: (i64, i64), columns: &str) -> (String, [Value; 5]) {
    let (filter, task, key, due) = match queue {
        Queue::Run(task, run_id) => (
            "d.run_id = ?5 AND d.status = 'pending'",
            task,
            Value::Integer(run_id),
            now,
        ),
        Queue::DueForTask(task, at) => ("?5 IS NULL", task, Value::Null, at),
        Queue::One(source, seq) => ("d.seq = ?5", source, Value::Integer(seq), i64::MAX),
    };
    // Every queue but one delivery is read through the task's queue index (task, seq), which
    // holds only what is still to send: the planner would rather use the run_id index and
    // sort every pending row.
    let index = match queue {
        Queue::One(..) => "",
        _ => "INDEXED BY deliveries_task_queue",
    };
    let join = if columns == WHOLE { BODY_JOIN } else { "" };
    let sql = format!(
        "SELECT {columns} FROM deliveries AS d {index} {join}
         WHERE d.task = ?1 AND {filter} AND d.next_attempt_at <= ?2
           AND d.status IN ('pending', 'failed') AND d.claimed_by IS NULL
           AND d.seq BETWEEN ?3 AND ?4 AND {IN_ORDER}
         ORDER BY d.seq"
    );
    let params = [
        Value::Text(task.to_string()),
        Value::Integer(due),
        Value::Integer(seqs.0),
        Value::Integer(seqs.1),
        key,
    ];
    (sql, params)
}

#[cfg(test)]
mod tests;

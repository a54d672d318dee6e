//! A run recorded on the server: its row, then its deliveries in multi-row inserts of up to
//! [`ROWS_PER_INSERT`] (one round trip each, not one per match), all in one transaction.

use super::PgState;
use crate::state::StateError;

/// Deliveries buffered before one `INSERT ... SELECT FROM unnest(...)` sends them: about a
/// megabyte of bodies, and a round trip shared by a thousand matches.
const ROWS_PER_INSERT: usize = 1000;

/// A run being recorded: an open transaction on the state's connection, rolled back if
/// dropped before [`PgRecorder::commit`].
pub struct PgRecorder<'a> {
    state: &'a PgState,
    run_id: i64,
    task: String,
    now: i64,
    pending: Pending,
    done: bool,
}

/// Deliveries not inserted yet, column by column, as `unnest` takes them.
#[derive(Default)]
struct Pending {
    ids: Vec<String>,
    license_ids: Vec<i64>,
    keys: Vec<String>,
    bodies: Vec<Vec<u8>>,
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
        let inserted = match inserted {
            Ok(inserted) => inserted,
            Err(e) => {
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
            pending: Pending::default(),
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
        let pending = &mut self.pending;
        pending.ids.push(id.to_string());
        pending.license_ids.push(license_id);
        pending.keys.push(activation_key.to_string());
        pending.bodies.push(body.to_vec());
        if pending.ids.len() >= ROWS_PER_INSERT {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts the buffered deliveries in one statement.
    fn flush(&mut self) -> Result<(), StateError> {
        if self.pending.ids.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let state = self.state;
        state
            .client
            .borrow_mut()
            .execute(
                "INSERT INTO deliveries (id, run_id, task, license_id, activation_key, body,
                     created_at, next_attempt_at, updated_at)
                 SELECT d.id, $1, $2, d.license_id, d.activation_key, d.body, $3, $3, $3
                 FROM unnest($4::text[], $5::bigint[], $6::text[], $7::bytea[])
                      WITH ORDINALITY AS d (id, license_id, activation_key, body, n)
                 ORDER BY d.n",
                &[
                    &self.run_id,
                    &self.task,
                    &self.now,
                    &pending.ids,
                    &pending.license_ids,
                    &pending.keys,
                    &pending.bodies,
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
        self.flush()?;
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

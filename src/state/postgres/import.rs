//! `keyhook state migrate`: a SQLite state copied into an empty server state, ids, sequence
//! numbers and bodies kept, in one transaction: all of it or nothing.

use postgres::Transaction;

use super::PgState;
use crate::state::{StateDb, StateError};

/// What was moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub tasks: u64,
    pub runs: u64,
    pub deliveries: u64,
    /// Deliveries still to send (pending or failed): the next `run-due` on any host sends them.
    pub waiting: u64,
    pub attempts: u64,
    pub bad_rows: u64,
}

/// The event tables `state migrate` copies as they are, and their columns: `true` for an
/// integer one, `false` for text. A row the target holds already stays (its cursor and scan
/// move forward only).
const EVENT_TABLES: [(&str, &[(&str, bool)]); 4] = [
    (
        "webhook_sources",
        &[
            ("source", false),
            ("webhook", false),
            ("url", false),
            ("first_seen", true),
            ("webhook_gone", true),
        ],
    ),
    (
        "outbox_cursors",
        &[("license_db", false), ("taken", true), ("updated_at", true)],
    ),
    (
        "expiries_seen",
        &[
            ("license_db", false),
            ("license_id", true),
            ("expiry", false),
            ("seen_at", true),
        ],
    ),
    (
        "expiry_scans",
        &[
            ("license_db", false),
            ("scanned_to", false),
            ("updated_at", true),
        ],
    ),
];

/// A failure on either side, named by the side.
fn sqlite(from: &StateDb) -> impl Fn(rusqlite::Error) -> StateError + '_ {
    move |error| from.error(error)
}

impl PgState {
    /// Copies `from` in. Refused when this state already holds runs or deliveries, so a
    /// second call never duplicates anything.
    pub fn import(&self, from: &StateDb) -> Result<Moved, StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        // Nobody runs or sends on this state while it fills.
        tx.batch_execute("LOCK TABLE tasks, runs, deliveries IN EXCLUSIVE MODE")
            .map_err(|e| self.error(&e))?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM deliveries)",
                &[],
            )
            .map_err(|e| self.error(&e))?
            .get(0);
        if held > 0 {
            return Err(StateError::Postgres {
                shown: self.shown.clone(),
                detail: format!(
                    "schema `{}` already holds {held} runs and deliveries; `state migrate` \
                     fills an empty state only (nothing was changed)",
                    self.schema
                ),
            });
        }
        let mut moved = Moved::default();
        self.copy_tasks(from, &mut tx, &mut moved)?;
        self.copy_runs(from, &mut tx, &mut moved)?;
        self.copy_deliveries(from, &mut tx, &mut moved)?;
        self.copy_attempts(from, &mut tx, &mut moved)?;
        self.copy_bad_rows(from, &mut tx, &mut moved)?;
        // Without its cursor, dispatch would take every event again; without the rest, a
        // 410 would be forgotten and expiries fire twice.
        for (table, columns) in EVENT_TABLES {
            self.copy_event_table(from, &mut tx, table, columns)?;
        }
        tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('runs', 'id'),
                           greatest((SELECT max(id) FROM runs), 1));
             SELECT setval(pg_get_serial_sequence('deliveries', 'seq'),
                           greatest((SELECT max(seq) FROM deliveries), 1));
             SELECT setval(pg_get_serial_sequence('bad_rows', 'id'),
                           greatest((SELECT max(id) FROM bad_rows), 1));",
        )
        .map_err(|e| self.error(&e))?;
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(moved)
    }

    fn copy_tasks(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        moved: &mut Moved,
    ) -> Result<(), StateError> {
        let mut read = from
            .conn
            .prepare("SELECT task, first_seen, last_run, last_slot, webhook_gone FROM tasks")
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let values: (String, i64, Option<i64>, Option<i64>, Option<i64>) = (
                row.get(0).map_err(sqlite(from))?,
                row.get(1).map_err(sqlite(from))?,
                row.get(2).map_err(sqlite(from))?,
                row.get(3).map_err(sqlite(from))?,
                row.get(4).map_err(sqlite(from))?,
            );
            tx.execute(
                "INSERT INTO tasks (task, first_seen, last_run, last_slot, webhook_gone)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (task) DO UPDATE SET first_seen = excluded.first_seen,
                     last_run = excluded.last_run, last_slot = excluded.last_slot,
                     webhook_gone = excluded.webhook_gone",
                &[&values.0, &values.1, &values.2, &values.3, &values.4],
            )
            .map_err(|e| self.error(&e))?;
            moved.tasks += 1;
        }
        Ok(())
    }

    fn copy_runs(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        moved: &mut Moved,
    ) -> Result<(), StateError> {
        let mut read = from
            .conn
            .prepare(
                "SELECT id, task, name, slot, started_at, finished_at, matched, sent, skipped,
                        host
                 FROM runs ORDER BY id",
            )
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        let insert = tx
            .prepare(
                "INSERT INTO runs (id, task, name, slot, started_at, finished_at, matched, sent,
                                   skipped, host)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .map_err(|e| self.error(&e))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let get = |i| row.get::<_, Option<i64>>(i).map_err(sqlite(from));
            let text = |i| row.get::<_, Option<String>>(i).map_err(sqlite(from));
            let sent = row.get::<_, bool>(7).map_err(sqlite(from))?;
            tx.execute(
                &insert,
                &[
                    &get(0)?,
                    &text(1)?,
                    &text(2)?,
                    &get(3)?,
                    &get(4)?,
                    &get(5)?,
                    &get(6)?,
                    &sent,
                    &text(8)?,
                    &text(9)?,
                ],
            )
            .map_err(|e| self.error(&e))?;
            moved.runs += 1;
        }
        Ok(())
    }

    fn copy_deliveries(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        moved: &mut Moved,
    ) -> Result<(), StateError> {
        let mut read = from
            .conn
            .prepare(
                "SELECT seq, id, run_id, task, license_id, activation_key,
                        (SELECT body FROM delivery_bodies AS b WHERE b.seq = deliveries.seq),
                        status, attempts,
                        created_at, next_attempt_at, updated_at, last_status, last_error,
                        event_type, event_key, order_key
                 FROM deliveries ORDER BY seq",
            )
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        // Claims are not moved: they belonged to processes on the old host.
        let insert = tx
            .prepare(
                "INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, body,
                     status, attempts, created_at, next_attempt_at, updated_at, last_status,
                     last_error, event_type, event_key, order_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17)",
            )
            .map_err(|e| self.error(&e))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let int = |i| row.get::<_, Option<i64>>(i).map_err(sqlite(from));
            let text = |i| row.get::<_, Option<String>>(i).map_err(sqlite(from));
            let body = row.get::<_, Vec<u8>>(6).map_err(sqlite(from))?;
            let status = text(7)?;
            if matches!(status.as_deref(), Some("pending" | "failed")) {
                moved.waiting += 1;
            }
            tx.execute(
                &insert,
                &[
                    &int(0)?,
                    &text(1)?,
                    &int(2)?,
                    &text(3)?,
                    &int(4)?,
                    &text(5)?,
                    &body,
                    &status,
                    &int(8)?,
                    &int(9)?,
                    &int(10)?,
                    &int(11)?,
                    &int(12)?,
                    &text(13)?,
                    &text(14)?,
                    &text(15)?,
                    &text(16)?,
                ],
            )
            .map_err(|e| self.error(&e))?;
            moved.deliveries += 1;
        }
        Ok(())
    }

    fn copy_attempts(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        moved: &mut Moved,
    ) -> Result<(), StateError> {
        let mut read = from
            .conn
            .prepare(
                "SELECT delivery_seq, n, at, status, error, duration_ms, excerpt FROM attempts
                 ORDER BY delivery_seq, n",
            )
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        let insert = tx
            .prepare(
                "INSERT INTO attempts (delivery_seq, n, at, status, error, duration_ms, excerpt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(|e| self.error(&e))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let int = |i| row.get::<_, Option<i64>>(i).map_err(sqlite(from));
            let text = |i| row.get::<_, Option<String>>(i).map_err(sqlite(from));
            tx.execute(
                &insert,
                &[
                    &int(0)?,
                    &int(1)?,
                    &int(2)?,
                    &int(3)?,
                    &text(4)?,
                    &int(5)?,
                    &text(6)?,
                ],
            )
            .map_err(|e| self.error(&e))?;
            moved.attempts += 1;
        }
        Ok(())
    }

    fn copy_bad_rows(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        moved: &mut Moved,
    ) -> Result<(), StateError> {
        let mut read = from
            .conn
            .prepare(
                "SELECT id, run_id, task, license_id, activation_key, reason, created_at
                 FROM bad_rows ORDER BY id",
            )
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let int = |i| row.get::<_, Option<i64>>(i).map_err(sqlite(from));
            let text = |i| row.get::<_, Option<String>>(i).map_err(sqlite(from));
            tx.execute(
                "INSERT INTO bad_rows (id, run_id, task, license_id, activation_key, reason,
                                       created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &int(0)?,
                    &int(1)?,
                    &text(2)?,
                    &int(3)?,
                    &text(4)?,
                    &text(5)?,
                    &int(6)?,
                ],
            )
            .map_err(|e| self.error(&e))?;
            moved.bad_rows += 1;
        }
        Ok(())
    }

    fn copy_event_table(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        table: &str,
        columns: &[(&str, bool)],
    ) -> Result<(), StateError> {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let conflict = match table {
            "outbox_cursors" => {
                "(license_db) DO UPDATE
                 SET taken = greatest(outbox_cursors.taken, excluded.taken)"
            }
            "expiry_scans" => {
                "(license_db) DO UPDATE
                 SET scanned_to = greatest(expiry_scans.scanned_to, excluded.scanned_to)"
            }
            _ => "DO NOTHING",
        };
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT {conflict}",
                names.join(", "),
                marks.join(", ")
            ))
            .map_err(|e| self.error(&e))?;
        let mut read = from
            .conn
            .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let mut values: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
            for (index, (_, integer)) in columns.iter().enumerate() {
                values.push(match integer {
                    true => Box::new(row.get::<_, Option<i64>>(index).map_err(sqlite(from))?),
                    false => Box::new(row.get::<_, Option<String>>(index).map_err(sqlite(from))?),
                });
            }
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                values.iter().map(|value| value.as_ref()).collect();
            tx.execute(&insert, &params).map_err(|e| self.error(&e))?;
        }
        Ok(())
    }
}

//! `keyhook state migrate`: a SQLite state copied into an empty server state, ids, sequence
//! numbers and bodies kept, in one transaction: all of it or nothing.

use postgres::Transaction;
use postgres::types::ToSql;

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

/// How a column goes across: read from SQLite as this type, bound on the server as the same.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
    /// A delivery's body, as it is sent: the SQLite state stores it packed.
    Body,
}

use Kind::{Body, Bool, Int, Text};

/// A table `state migrate` copies, row by row, keys kept.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// What SQLite reads for the columns, when it is not the columns themselves.
    read: Option<&'static str>,
    order: Option<&'static str>,
    /// Which rows are copied, when not all.
    filter: Option<&'static str>,
    /// What a row the target holds already does; `None`: it cannot hold one (the state is
    /// checked empty of runs and deliveries first).
    conflict: Option<&'static str>,
}

/// The rows of runs whose recording ended: a run still marked as recording was killed while it
/// was (or is being recorded right now) and is not a run yet.
const OF_RECORDED_RUNS: &str =
    "WHERE run_id NOT IN (SELECT id FROM runs WHERE recording IS NOT NULL)";

const TASKS: Table = Table {
    name: "tasks",
    columns: &[
        ("task", Text),
        ("first_seen", Int),
        ("last_run", Int),
        ("last_slot", Int),
        ("webhook_gone", Int),
    ],
    read: None,
    order: None,
    filter: None,
    conflict: Some(
        "(task) DO UPDATE SET first_seen = excluded.first_seen, last_run = excluded.last_run,
             last_slot = excluded.last_slot, webhook_gone = excluded.webhook_gone",
    ),
};

const RUNS: Table = Table {
    name: "runs",
    columns: &[
        ("id", Int),
        ("task", Text),
        ("name", Text),
        ("slot", Int),
        ("started_at", Int),
        ("finished_at", Int),
        ("matched", Int),
        ("sent", Bool),
        ("skipped", Text),
        ("host", Text),
    ],
    read: None,
    order: Some("id"),
    filter: Some("WHERE recording IS NULL"),
    conflict: None,
};

/// Claims are not moved: they belonged to processes on the old host.
const DELIVERIES: Table = Table {
    name: "deliveries",
    columns: &[
        ("seq", Int),
        ("id", Text),
        ("run_id", Int),
        ("task", Text),
        ("license_id", Int),
        ("activation_key", Text),
        ("body", Body),
        ("status", Text),
        ("attempts", Int),
        ("created_at", Int),
        ("next_attempt_at", Int),
        ("updated_at", Int),
        ("last_status", Int),
        ("last_error", Text),
        ("event_type", Text),
        ("event_key", Text),
        ("order_key", Text),
    ],
    // A SQLite state keeps bodies in a table of their own.
    read: Some(
        "seq, id, run_id, task, license_id, activation_key,
         (SELECT body FROM delivery_bodies AS b WHERE b.seq = deliveries.seq), status, attempts,
         created_at, next_attempt_at, updated_at, last_status, last_error, event_type, event_key,
         order_key",
    ),
    order: Some("seq"),
    filter: Some(OF_RECORDED_RUNS),
    conflict: None,
};

const ATTEMPTS: Table = Table {
    name: "attempts",
    columns: &[
        ("delivery_seq", Int),
        ("n", Int),
        ("at", Int),
        ("status", Int),
        ("error", Text),
        ("duration_ms", Int),
        ("excerpt", Text),
    ],
    read: None,
    order: Some("delivery_seq, n"),
    filter: Some(
        "WHERE delivery_seq NOT IN (SELECT seq FROM deliveries
             WHERE run_id IN (SELECT id FROM runs WHERE recording IS NOT NULL))",
    ),
    conflict: None,
};

const BAD_ROWS: Table = Table {
    name: "bad_rows",
    columns: &[
        ("id", Int),
        ("run_id", Int),
        ("task", Text),
        ("license_id", Int),
        ("activation_key", Text),
        ("reason", Text),
        ("created_at", Int),
    ],
    read: None,
    order: Some("id"),
    filter: Some(OF_RECORDED_RUNS),
    conflict: None,
};

/// The event tables. Without its cursor, dispatch would take every event again; without the
/// rest, a 410 would be forgotten and expiries fire twice. A row the target holds already
/// stays (its cursor and scan move forward only).
const EVENT_TABLES: [Table; 4] = [
    Table {
        name: "webhook_sources",
        columns: &[
            ("source", Text),
            ("webhook", Text),
            ("url", Text),
            ("first_seen", Int),
            ("webhook_gone", Int),
            ("last_delivered", Int),
        ],
        read: None,
        order: None,
        filter: None,
        conflict: Some("DO NOTHING"),
    },
    Table {
        name: "outbox_cursors",
        columns: &[("license_db", Text), ("taken", Int), ("updated_at", Int)],
        read: None,
        order: None,
        filter: None,
        conflict: Some(
            "(license_db) DO UPDATE SET taken = greatest(outbox_cursors.taken, excluded.taken)",
        ),
    },
    Table {
        name: "expiries_seen",
        columns: &[
            ("license_db", Text),
            ("license_id", Int),
            ("expiry", Text),
            ("seen_at", Int),
        ],
        read: None,
        order: None,
        filter: None,
        conflict: Some("DO NOTHING"),
    },
    Table {
        name: "expiry_scans",
        columns: &[
            ("license_db", Text),
            ("scanned_to", Text),
            ("updated_at", Int),
        ],
        read: None,
        order: None,
        filter: None,
        conflict: Some(
            "(license_db) DO UPDATE
             SET scanned_to = greatest(expiry_scans.scanned_to, excluded.scanned_to)",
        ),
    },
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
        let moved = Moved {
            tasks: self.copy_table(from, &mut tx, &TASKS)?,
            runs: self.copy_table(from, &mut tx, &RUNS)?,
            deliveries: self.copy_table(from, &mut tx, &DELIVERIES)?,
            waiting: tx
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')",
                    &[],
                )
                .map_err(|e| self.error(&e))?
                .get::<_, i64>(0) as u64,
            attempts: self.copy_table(from, &mut tx, &ATTEMPTS)?,
            bad_rows: self.copy_table(from, &mut tx, &BAD_ROWS)?,
        };
        for table in &EVENT_TABLES {
            self.copy_table(from, &mut tx, table)?;
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

    /// Copies every row of `table`; returns how many.
    fn copy_table(
        &self,
        from: &StateDb,
        tx: &mut Transaction,
        table: &Table,
    ) -> Result<u64, StateError> {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let names = names.join(", ");
        let marks: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
        let conflict = table
            .conflict
            .map(|conflict| format!(" ON CONFLICT {conflict}"))
            .unwrap_or_default();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {} ({names}) VALUES ({}){conflict}",
                table.name,
                marks.join(", ")
            ))
            .map_err(|e| self.error(&e))?;
        let order = table
            .order
            .map(|order| format!(" ORDER BY {order}"))
            .unwrap_or_default();
        let read = table.read.unwrap_or(&names);
        let mut read = from
            .conn
            .prepare(&format!(
                "SELECT {read} FROM {} {}{order}",
                table.name,
                table.filter.unwrap_or_default()
            ))
            .map_err(sqlite(from))?;
        let mut rows = read.query([]).map_err(sqlite(from))?;
        let mut copied = 0;
        while let Some(row) = rows.next().map_err(sqlite(from))? {
            let values = table
                .columns
                .iter()
                .enumerate()
                .map(|(index, (_, kind))| value(row, index, *kind))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sqlite(from))?;
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|value| value.as_ref()).collect();
            tx.execute(&insert, &params).map_err(|e| self.error(&e))?;
            copied += 1;
        }
        Ok(copied)
    }
}

/// Column `index` of a SQLite row as `kind`, ready to bind.
fn value(row: &rusqlite::Row, index: usize, kind: Kind) -> rusqlite::Result<Box<dyn ToSql + Sync>> {
    Ok(match kind {
        Int => Box::new(row.get::<_, Option<i64>>(index)?),
        Text => Box::new(row.get::<_, Option<String>>(index)?),
        Bool => Box::new(row.get::<_, Option<bool>>(index)?),
        Body => match row.get_ref(index)? {
            rusqlite::types::ValueRef::Null => Box::new(None::<Vec<u8>>),
            // A damaged body is named by its delivery's id (the table's second column).
            _ => Box::new(Some(crate::state::deliveries::stored_body_or_error(
                row,
                index,
                || row.get::<_, String>(1).unwrap_or_default(),
            )?)),
        },
    })
}

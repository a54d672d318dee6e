//! Event deliveries: the outbox cursor and the deliveries a dispatch pass makes, committed
//! together, so a kill between the license database and this one neither loses nor
//! duplicates an event (the outbox is only read; this commit is the single decision).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::deliveries::{bodies_sql, next_seq};
use super::{StateDb, StateError};

/// One delivery of one event to one webhook URL, about to be recorded.
#[derive(Debug, Clone)]
pub struct EventDelivery {
    /// Stable: the same on every pass that takes this event for this source.
    pub id: String,
    /// The webhook's source: its name, `#2`, `#3`... for further URLs.
    pub source: String,
    pub event_type: String,
    /// The event's stable id, shared by its deliveries to every webhook.
    pub event_key: String,
    /// `<table>:<row key>`: deliveries of one source and key go in commit order.
    pub order_key: Option<String>,
    pub license_id: i64,
    pub activation_key: String,
    pub body: Vec<u8>,
}

/// What a pass records: the new cursor, and its deliveries.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    /// The license database's canonical path: whose outbox the cursor is in.
    pub license_db: String,
    /// The cursor the pass read from; the commit is refused if another pass moved it.
    pub from: i64,
    /// The last outbox seq this batch took.
    pub taken: i64,
    pub deliveries: Vec<EventDelivery>,
    /// `license.expired` keys `(license id, expiry)` the batch emits.
    pub expiries: Vec<(i64, String)>,
}

/// Whether a batch was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Done,
    /// Another pass moved the cursor first: nothing was written; read again from it.
    Raced,
}

impl StateDb {
    /// The last outbox seq taken from `license_db`, 0 when none yet.
    pub fn outbox_cursor(&self, license_db: &str) -> Result<i64, StateError> {
        self.conn
            .query_row(
                "SELECT taken FROM outbox_cursors WHERE license_db = ?1",
                [license_db],
                |row| row.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.error(e))
    }

    /// Records `batch`'s deliveries (one run per source) and moves the cursor, in one
    /// transaction, unless the cursor is no longer at `batch.from`.
    pub fn record_events(&mut self, batch: &EventBatch, now: i64) -> Result<Recorded, StateError> {
        let path = self.path().to_path_buf();
        let error = |source| super::classify(&path, source);
        let transaction = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error)?;
        if !move_cursor(&transaction, batch, now).map_err(error)? {
            return Ok(Recorded::Raced);
        }
        insert_deliveries(&transaction, &batch.deliveries, self.host.as_deref(), now).map_err(
            |source| match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation)
                    if source.to_string().contains("deliveries.id") =>
                {
                    StateError::EventsAgain {
                        shown: path.display().to_string(),
                    }
                }
                _ => error(source),
            },
        )?;
        let mut seen = transaction
            .prepare_cached(
                "INSERT OR IGNORE INTO expiries_seen (license_db, license_id, expiry, seen_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(error)?;
        for (license_id, expiry) in &batch.expiries {
            seen.execute(params![batch.license_db, license_id, expiry, now])
                .map_err(error)?;
        }
        drop(seen);
        transaction.commit().map_err(error)?;
        Ok(Recorded::Done)
    }

    /// Records deliveries made outside a pass (a `webhooks test` event): no cursor moves.
    /// Returns their sequence numbers, in order.
    pub fn record_deliveries(
        &mut self,
        deliveries: &[EventDelivery],
        now: i64,
    ) -> Result<Vec<i64>, StateError> {
        let path = self.path().to_path_buf();
        let error = |source| super::classify(&path, source);
        let transaction = self.write_transaction().map_err(error)?;
        insert_deliveries(&transaction, deliveries, self.host.as_deref(), now).map_err(error)?;
        let mut seqs = Vec::new();
        for delivery in deliveries {
            let seq = transaction
                .query_row(
                    "SELECT seq FROM deliveries WHERE id = ?1",
                    [&delivery.id],
                    |row| row.get(0),
                )
                .map_err(error)?;
            seqs.push(seq);
        }
        transaction.commit().map_err(error)?;
        Ok(seqs)
    }

    /// Whether `license.expired` was already emitted for this license and expiry value.
    pub fn expiry_seen(
        &self,
        license_db: &str,
        license_id: i64,
        expiry: &str,
    ) -> Result<bool, StateError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM expiries_seen
                 WHERE license_db = ?1 AND license_id = ?2 AND expiry = ?3",
            )
            .and_then(|mut statement| statement.exists(params![license_db, license_id, expiry]))
            .map_err(|e| self.error(e))
    }

    /// Notes a webhook source (its webhook and URL), so a 410 can disable it and `status`
    /// can list it; returns when it was disabled, if it is. A source already noted as it is
    /// costs a read, not a write (`watch` calls this on every pass).
    pub fn see_source(
        &self,
        source: &str,
        webhook: &str,
        url: &str,
        now: i64,
    ) -> Result<Option<i64>, StateError> {
        let known: Option<(String, String, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT webhook, url, webhook_gone FROM webhook_sources WHERE source = ?1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([source], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        if let Some((known_webhook, known_url, gone)) = known
            && known_webhook == webhook
            && known_url == url
        {
            return Ok(gone);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO webhook_sources (source, webhook, url, first_seen)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET webhook = ?2, url = ?3
                 RETURNING webhook_gone",
            )
            .and_then(|mut statement| {
                statement.query_row(params![source, webhook, url, now], |row| row.get(0))
            })
            .map_err(|e| self.error(e))
    }

    /// Whether `source` is an event webhook's (not a task's).
    pub fn is_webhook_source(&self, source: &str) -> Result<bool, StateError> {
        self.conn
            .prepare_cached("SELECT 1 FROM webhook_sources WHERE source = ?1")
            .and_then(|mut statement| statement.exists([source]))
            .map_err(|e| self.error(e))
    }

    /// Which kinds of deliveries of `source` wait to be sent: (event deliveries, task
    /// deliveries). A task and an event webhook that share a name share a source.
    pub fn pending_kinds(&self, source: &str) -> Result<(bool, bool), StateError> {
        self.conn
            .prepare_cached(
                "SELECT coalesce(max(event_type IS NOT NULL), 0), coalesce(max(event_type IS NULL), 0)
                 FROM deliveries WHERE task = ?1 AND status IN ('pending', 'failed')",
            )
            .and_then(|mut statement| {
                statement.query_row([source], |row| Ok((row.get(0)?, row.get(1)?)))
            })
            .map_err(|e| self.error(e))
    }

    /// Re-enables every source of `webhook` after a 410; returns how many were disabled.
    pub fn enable_webhook(&self, webhook: &str) -> Result<usize, StateError> {
        self.conn
            .execute(
                "UPDATE webhook_sources SET webhook_gone = NULL
                 WHERE webhook = ?1 AND webhook_gone IS NOT NULL",
                [webhook],
            )
            .map_err(|e| self.error(e))
    }
}

/// Compare-and-set: moves the cursor from `batch.from` to `batch.taken`; false if another
/// pass got there first.
fn move_cursor(transaction: &Transaction, batch: &EventBatch, now: i64) -> rusqlite::Result<bool> {
    let current: i64 = transaction
        .query_row(
            "SELECT taken FROM outbox_cursors WHERE license_db = ?1",
            [&batch.license_db],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or_default();
    if current != batch.from {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO outbox_cursors (license_db, taken, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (license_db) DO UPDATE SET taken = ?2, updated_at = ?3",
        params![batch.license_db, batch.taken, now],
    )?;
    Ok(true)
}

/// One run per source (what prune and `status` go by), then the deliveries in event order, up
/// to 64 to a statement (and their bodies as many to another), as a task's run records them:
/// one execution per row cost a statement's start and end per delivery.
pub(super) fn insert_deliveries(
    transaction: &Transaction,
    deliveries: &[EventDelivery],
    host: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    let mut runs: BTreeMap<&str, i64> = BTreeMap::new();
    for delivery in deliveries {
        let source = delivery.source.as_str();
        if !runs.contains_key(source) {
            transaction.execute(
                "INSERT INTO runs (task, name, started_at, finished_at, host)
                 VALUES (?1, ?1, ?2, ?2, ?3)",
                params![source, now, host],
            )?;
            runs.insert(source, transaction.last_insert_rowid());
        }
    }
    // The runs' inserts hold the write lock.
    let mut next_seq = next_seq(transaction)?;
    let mut rest = deliveries;
    while let Some(index) = CHUNKS.iter().position(|&size| size <= rest.len()) {
        let (rows, after) = rest.split_at(CHUNKS[index]);
        rest = after;
        let (insert, store) = &chunk_sql()[index];
        let mut insert = transaction.prepare_cached(insert)?;
        let mut store = transaction.prepare_cached(store)?;
        insert.raw_bind_parameter(1, next_seq)?;
        insert.raw_bind_parameter(2, now)?;
        store.raw_bind_parameter(1, next_seq)?;
        for (n, delivery) in rows.iter().enumerate() {
            let at = 3 + VALUES_PER_ROW * n;
            insert.raw_bind_parameter(at, &delivery.id)?;
            insert.raw_bind_parameter(at + 1, runs[delivery.source.as_str()])?;
            insert.raw_bind_parameter(at + 2, &delivery.source)?;
            insert.raw_bind_parameter(at + 3, delivery.license_id)?;
            insert.raw_bind_parameter(at + 4, &delivery.activation_key)?;
            insert.raw_bind_parameter(at + 5, &delivery.event_type)?;
            insert.raw_bind_parameter(at + 6, &delivery.event_key)?;
            insert.raw_bind_parameter(at + 7, &delivery.order_key)?;
            store.raw_bind_parameter(2 + n, &delivery.body)?;
        }
        insert.raw_execute()?;
        store.raw_execute()?;
        next_seq += rows.len() as i64;
    }
    let mut matched = transaction
        .prepare_cached("UPDATE runs SET matched = (SELECT count(*) FROM deliveries WHERE run_id = ?1) WHERE id = ?1")?;
    for run_id in runs.values() {
        matched.execute([run_id])?;
    }
    Ok(())
}

/// How many event deliveries one statement inserts, largest first: a pass's deliveries are
/// cut greedily into these, so a pass of one event costs what it did (one cached statement
/// each for the row and its body) and only three pairs of statements ever exist.
const CHUNKS: [usize; 3] = [64, 8, 1];

/// Values bound per delivery: id, run, source, license id, activation key, event type, event
/// key, order key.
const VALUES_PER_ROW: usize = 8;

/// The deliveries' and the bodies' INSERT for each of [`CHUNKS`], built once.
fn chunk_sql() -> &'static [(String, String)] {
    static SQL: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
        CHUNKS
            .iter()
            .map(|&rows| (deliveries_sql(rows), bodies_sql(rows)))
            .collect()
    });
    &SQL
}

/// Inserts `rows` event deliveries: `seq` from `?1` on, the time (`?2`) shared, then each
/// row's [`VALUES_PER_ROW`] values.
fn deliveries_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, created_at,
             next_attempt_at, updated_at, event_type, event_key, order_key) VALUES ",
    );
    for n in 0..rows {
        let comma = if n == 0 { "" } else { ", " };
        let at = 3 + VALUES_PER_ROW * n;
        let [id, run, task, license, key, kind, event, order] =
            std::array::from_fn(|offset| at + offset);
        let _ = write!(
            sql,
            "{comma}(?1 + {n}, ?{id}, ?{run}, ?{task}, ?{license}, ?{key}, ?2, ?2, ?2, \
             ?{kind}, ?{event}, ?{order})"
        );
    }
    sql
}

#[cfg(test)]
mod tests;

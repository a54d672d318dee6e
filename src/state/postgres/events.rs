//! Event deliveries on the server: the outbox cursor moved in the same transaction as the
//! deliveries it produced, `webhooks test` deliveries, and `license.expired`'s scans.
//!
//! Every transaction that records event deliveries first takes one advisory transaction lock
//! (per schema), so they commit one at a time, in the order their sequence numbers were
//! handed out: a claim can never see a later event of an entity committed while an earlier
//! one is still on its way in, which per-entity order relies on.

use std::collections::BTreeMap;

use postgres::Transaction;
use sha2::{Digest, Sha256};

use super::PgState;
use crate::state::StateError;
use crate::state::events::{EventBatch, EventDelivery, Recorded};
use crate::state::expiries::Expired;

impl PgState {
    /// The last outbox seq taken from `license_db`, 0 when none yet.
    pub fn outbox_cursor(&self, license_db: &str) -> Result<i64, StateError> {
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT taken FROM outbox_cursors WHERE license_db = $1",
                &[&license_db],
            )
            .map_err(|e| self.error(&e))?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// Records `batch`'s deliveries (one run per source) and moves the cursor, in one
    /// transaction, unless the cursor is no longer at `batch.from` (another host got there).
    pub fn record_events(&self, batch: &EventBatch, now: i64) -> Result<Recorded, StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        let recorded = self.record_events_in(&mut tx, batch, now);
        let recorded = recorded.map_err(|e| match e.as_db_error() {
            Some(db) if db.constraint() == Some("deliveries_id_key") => StateError::EventsAgain {
                shown: self.shown.clone(),
            },
            _ => self.error(&e),
        })?;
        if recorded == Recorded::Done {
            tx.commit().map_err(|e| self.error(&e))?;
        }
        Ok(recorded)
    }

    fn record_events_in(
        &self,
        tx: &mut Transaction,
        batch: &EventBatch,
        now: i64,
    ) -> Result<Recorded, postgres::Error> {
        self.lock_events(tx)?;
        let current: i64 = tx
            .query_opt(
                "SELECT taken FROM outbox_cursors WHERE license_db = $1",
                &[&batch.license_db],
            )?
            .map_or(0, |row| row.get(0));
        if current != batch.from {
            return Ok(Recorded::Raced);
        }
        tx.execute(
            "INSERT INTO outbox_cursors (license_db, taken, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (license_db) DO UPDATE SET taken = $2, updated_at = $3",
            &[&batch.license_db, &batch.taken, &now],
        )?;
        self.insert_deliveries(tx, &batch.deliveries, now)?;
        for (license_id, expiry) in &batch.expiries {
            tx.execute(
                "INSERT INTO expiries_seen (license_db, license_id, expiry, seen_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&batch.license_db, license_id, expiry, &now],
            )?;
        }
        Ok(Recorded::Done)
    }

    /// Records deliveries made outside a pass (a `webhooks test` event): no cursor moves.
    /// Returns their sequence numbers, in order.
    pub fn record_deliveries(
        &self,
        deliveries: &[EventDelivery],
        now: i64,
    ) -> Result<Vec<i64>, StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        let seqs = self
            .insert_deliveries(&mut tx, deliveries, now)
            .map_err(|e| self.error(&e))?;
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(seqs)
    }

    /// Where the last scan of `license_db` ended, if one ran.
    pub fn expiry_scanned_to(&self, license_db: &str) -> Result<Option<String>, StateError> {
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT scanned_to FROM expiry_scans WHERE license_db = $1",
                &[&license_db],
            )
            .map_err(|e| self.error(&e))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Whether `license.expired` was already emitted for this license and expiry value.
    pub fn expiry_seen(
        &self,
        license_db: &str,
        license_id: i64,
        expiry: &str,
    ) -> Result<bool, StateError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT 1 FROM expiries_seen
                 WHERE license_db = $1 AND license_id = $2 AND expiry = $3",
                &[&license_db, &license_id, &expiry],
            )
            .map(|found| found.is_some())
            .map_err(|e| self.error(&e))
    }

    /// In one transaction: each expiry not seen yet is marked seen and its deliveries
    /// recorded (one another host already recorded is skipped), and the scan's end moves to
    /// `scanned_to` (never back). Returns how many expiries were new.
    pub fn record_expired(
        &self,
        license_db: &str,
        found: &[Expired],
        scanned_to: &str,
        now: i64,
    ) -> Result<u64, StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        let new = self
            .record_expired_in(&mut tx, license_db, found, scanned_to, now)
            .map_err(|e| self.error(&e))?;
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(new)
    }

    fn record_expired_in(
        &self,
        tx: &mut Transaction,
        license_db: &str,
        found: &[Expired],
        scanned_to: &str,
        now: i64,
    ) -> Result<u64, postgres::Error> {
        self.lock_events(tx)?;
        let mut deliveries = Vec::new();
        let mut new = 0;
        for expired in found {
            let inserted = tx.execute(
                "INSERT INTO expiries_seen (license_db, license_id, expiry, seen_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&license_db, &expired.license_id, &expired.expiry, &now],
            )?;
            if inserted == 1 {
                new += 1;
                deliveries.extend(expired.deliveries.iter().cloned());
            }
        }
        self.insert_deliveries(tx, &deliveries, now)?;
        tx.execute(
            "INSERT INTO expiry_scans (license_db, scanned_to, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (license_db) DO UPDATE
             SET scanned_to = greatest(expiry_scans.scanned_to, $2), updated_at = $3",
            &[&license_db, &scanned_to, &now],
        )?;
        Ok(new)
    }

    /// Waits for the other transactions recording event deliveries in this schema to end.
    fn lock_events(&self, tx: &mut Transaction) -> Result<(), postgres::Error> {
        let digest = Sha256::digest(format!("keyhook-events\0{}", self.schema));
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&digest[..8]);
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&i64::from_be_bytes(bytes)],
        )
        .map(drop)
    }

    /// One run per source (what prune and `status` go by), then its deliveries in event
    /// order; their sequence numbers, in order.
    fn insert_deliveries(
        &self,
        tx: &mut Transaction,
        deliveries: &[EventDelivery],
        now: i64,
    ) -> Result<Vec<i64>, postgres::Error> {
        let mut runs: BTreeMap<&str, i64> = BTreeMap::new();
        let insert = tx.prepare(
            "INSERT INTO deliveries (id, run_id, task, license_id, activation_key, body,
                 created_at, next_attempt_at, updated_at, event_type, event_key, order_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8, $9, $10) RETURNING seq",
        )?;
        let mut seqs = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let source = delivery.source.as_str();
            let run_id = match runs.get(source) {
                Some(run_id) => *run_id,
                None => {
                    let row = tx.query_one(
                        "INSERT INTO runs (task, name, started_at, finished_at, host)
                         VALUES ($1, $1, $2, $2, $3) RETURNING id",
                        &[&source, &now, &self.identity.host],
                    )?;
                    *runs.entry(source).or_insert(row.get(0))
                }
            };
            let row = tx.query_one(
                &insert,
                &[
                    &delivery.id,
                    &run_id,
                    &source,
                    &delivery.license_id,
                    &delivery.activation_key,
                    &delivery.body,
                    &now,
                    &delivery.event_type,
                    &delivery.event_key,
                    &delivery.order_key,
                ],
            )?;
            seqs.push(row.get(0));
        }
        let run_ids: Vec<i64> = runs.into_values().collect();
        tx.execute(
            "UPDATE runs SET matched = (SELECT count(*) FROM deliveries WHERE run_id = runs.id)
             WHERE id = ANY($1)",
            &[&run_ids],
        )?;
        Ok(seqs)
    }
}

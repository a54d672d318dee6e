//! `license.expired`: how far the scans got, and the expiries they found recorded with their
//! deliveries in one transaction, each `(license, expiry value)` once.

use rusqlite::{OptionalExtension, params};

use super::events::{EventDelivery, insert_deliveries};
use super::{StateDb, StateError};

/// One expiry a scan found, and its deliveries.
#[derive(Debug, Clone)]
pub struct Expired {
    pub license_id: i64,
    /// The expiry value as stored: with the license, the dedupe key.
    pub expiry: String,
    pub deliveries: Vec<EventDelivery>,
}

impl StateDb {
    /// Where the last scan of `license_db` ended, if one ran.
    pub fn expiry_scanned_to(&self, license_db: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT scanned_to FROM expiry_scans WHERE license_db = ?1",
                [license_db],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// In one transaction: each expiry not seen yet is marked seen and its deliveries
    /// recorded (one another pass already recorded is skipped), and the scan's end moves to
    /// `scanned_to` (never back). Returns how many expiries were new.
    pub fn record_expired(
        &mut self,
        license_db: &str,
        found: &[Expired],
        scanned_to: &str,
        now: i64,
    ) -> Result<u64, StateError> {
        let path = self.path().to_path_buf();
        let error = |source| super::classify(&path, source);
        let transaction = self.write_transaction().map_err(error)?;
        let mut deliveries = Vec::new();
        let mut new = 0;
        {
            let mut seen = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO expiries_seen (license_db, license_id, expiry, seen_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(error)?;
            for expired in found {
                let params = params![license_db, expired.license_id, expired.expiry, now];
                if seen.execute(params).map_err(error)? == 1 {
                    new += 1;
                    deliveries.extend(expired.deliveries.iter().cloned());
                }
            }
        }
        insert_deliveries(&transaction, &deliveries, self.host.as_deref(), now).map_err(error)?;
        transaction
            .execute(
                "INSERT INTO expiry_scans (license_db, scanned_to, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (license_db) DO UPDATE
                 SET scanned_to = max(scanned_to, ?2), updated_at = ?3",
                params![license_db, scanned_to, now],
            )
            .map_err(error)?;
        transaction.commit().map_err(error)?;
        Ok(new)
    }
}

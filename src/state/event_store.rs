//! What a dispatch pass needs of a state, on either back end: the outbox cursor moved with
//! the deliveries it produced, and `license.expired`'s scans and their dedupe.

use super::events::{EventBatch, Recorded};
use super::expiries::Expired;
use super::postgres::PgState;
use super::{StateDb, StateError};

/// The state side of a dispatch pass.
pub trait EventStore {
    /// The last outbox seq taken from `license_db`, 0 when none yet.
    fn outbox_cursor(&self, license_db: &str) -> Result<i64, StateError>;
    /// Records a batch's deliveries and moves the cursor in one transaction, unless another
    /// pass moved it first ([`Recorded::Raced`]).
    fn record_events(&mut self, batch: &EventBatch, now: i64) -> Result<Recorded, StateError>;
    /// Where the last `license.expired` scan of `license_db` ended, if one ran.
    fn expiry_scanned_to(&self, license_db: &str) -> Result<Option<String>, StateError>;
    /// Whether `license.expired` was already emitted for this license and expiry value.
    fn expiry_seen(
        &self,
        license_db: &str,
        license_id: i64,
        expiry: &str,
    ) -> Result<bool, StateError>;
    /// Records the new expiries' deliveries and the scan's end in one transaction; returns
    /// how many expiries were new.
    fn record_expired(
        &mut self,
        license_db: &str,
        found: &[Expired],
        scanned_to: &str,
        now: i64,
    ) -> Result<u64, StateError>;
}

/// Implements [`EventStore`] by calling the back end's methods of the same names.
macro_rules! event_store {
    ($backend:ty) => {
        impl EventStore for $backend {
            fn outbox_cursor(&self, license_db: &str) -> Result<i64, StateError> {
                <$backend>::outbox_cursor(self, license_db)
            }
            fn record_events(
                &mut self,
                batch: &EventBatch,
                now: i64,
            ) -> Result<Recorded, StateError> {
                <$backend>::record_events(self, batch, now)
            }
            fn expiry_scanned_to(&self, license_db: &str) -> Result<Option<String>, StateError> {
                <$backend>::expiry_scanned_to(self, license_db)
            }
            fn expiry_seen(
                &self,
                license_db: &str,
                license_id: i64,
                expiry: &str,
            ) -> Result<bool, StateError> {
                <$backend>::expiry_seen(self, license_db, license_id, expiry)
            }
            fn record_expired(
                &mut self,
                license_db: &str,
                found: &[Expired],
                scanned_to: &str,
                now: i64,
            ) -> Result<u64, StateError> {
                <$backend>::record_expired(self, license_db, found, scanned_to, now)
            }
        }
    };
}

event_store!(StateDb);
event_store!(PgState);

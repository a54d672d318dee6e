//! The per-task lock on a server: a session advisory lock on a connection of its own, held for
//! the run. PostgreSQL lets go of it when that connection ends, however the process ends. A
//! webhook URL's lock, taken on every `watch` pass, is the same lock taken on the state's own
//! connection instead ([`SessionLock`]): no connection per pass.

use postgres::Client;
use sha2::{Digest, Sha256};

use super::PgState;
use crate::licenses::postgres::connect;
use crate::state::StateError;

/// A held advisory lock; dropping it closes its connection, which releases it.
pub struct PgLock {
    _client: Client,
}

impl std::fmt::Debug for PgLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgLock")
    }
}

impl PgState {
    /// Tries once to lock `task` (in this state's schema) on a new connection; `None` when
    /// another session holds it.
    pub fn try_lock(&self, task: &str) -> Result<Option<PgLock>, StateError> {
        let mut client = connect::connect(&self.url).map_err(|detail| StateError::Postgres {
            shown: self.shown.clone(),
            detail: format!("could not connect for the lock of task `{task}`: {detail}"),
        })?;
        let key = lock_key(&self.schema, task);
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(|e| self.error(&e))?
            .get(0);
        Ok(taken.then_some(PgLock { _client: client }))
    }
}

/// An advisory lock held by the state's own session, let go when dropped (or when the session
/// ends, however the process ends).
pub struct SessionLock<'a> {
    state: &'a PgState,
    key: i64,
}

impl std::fmt::Debug for SessionLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionLock")
    }
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        if let Ok(mut client) = self.state.client.try_borrow_mut() {
            let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
        }
    }
}

impl PgState {
    /// Tries once to lock `source` (the same lock as [`PgState::try_lock`]'s) on the state's
    /// own connection; `None` when another session holds it.
    pub fn try_lock_here(&self, source: &str) -> Result<Option<SessionLock<'_>>, StateError> {
        let key = lock_key(&self.schema, source);
        let taken: bool = self
            .client
            .borrow_mut()
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(|e| self.error(&e))?
            .get(0);
        Ok(taken.then_some(SessionLock { state: self, key }))
    }
}

/// A stable 64-bit key for a task in a schema (the first 8 bytes of a SHA-256).
fn lock_key(schema: &str, task: &str) -> i64 {
    let digest = Sha256::digest(format!("keyhook-task-lock\0{schema}\0{task}"));
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_by_task_and_schema_and_never_change() {
        let key = super::lock_key("keyhook", "renewals");
        assert_eq!(key, super::lock_key("keyhook", "renewals"));
        assert_ne!(key, super::lock_key("keyhook", "trials"));
        assert_ne!(key, super::lock_key("other", "renewals"));
    }
}

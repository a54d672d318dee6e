//! Forgetting settled runs.

use crate::state::{StateDb, StateError};

impl StateDb {
    /// Deletes runs that started before `before` and whose deliveries are all settled
    /// (delivered or dead), with their deliveries and attempts; returns how many deliveries.
    pub fn prune(&self, before: i64) -> Result<u64, StateError> {
        let transaction = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.error(e))?;
        let old_runs = "SELECT id FROM runs WHERE started_at < ?1 AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.run_id = runs.id
                AND d.status IN ('pending', 'failed'))";
        let deliveries = transaction
            .execute(
                &format!("DELETE FROM attempts WHERE delivery_seq IN (SELECT seq FROM deliveries WHERE run_id IN ({old_runs}))"),
                [before],
            )
            .and_then(|_| {
                transaction.execute(
                    &format!("DELETE FROM deliveries WHERE run_id IN ({old_runs})"),
                    [before],
                )
            })
            .map_err(|e| self.error(e))?;
        transaction
            .execute(
                &format!("DELETE FROM runs WHERE id IN ({old_runs})"),
                [before],
            )
            .map_err(|e| self.error(e))?;
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(deliveries as u64)
    }
}

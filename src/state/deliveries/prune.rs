//! Forgetting settled runs.

use crate::state::rows;
use crate::state::{StateDb, StateError};

impl StateDb {
    /// Deletes runs that started before `before` and whose deliveries are all settled
    /// (delivered or dead), with their deliveries and attempts; returns how many deliveries.
    pub fn prune(&self, before: i64) -> Result<u64, StateError> {
        let transaction = self.write_transaction().map_err(|e| self.error(e))?;
        let old_runs = rows::old_runs("?1");
        transaction
            .execute(&rows::keep_pruned_slots(&old_runs), [before])
            .and_then(|_| transaction.execute(&rows::keep_pruned_deliveries(&old_runs), [before]))
            .map_err(|e| self.error(e))?;
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

#[cfg(test)]
mod tests {
    use crate::state::StateDb;

    #[test]
    fn a_pruned_run_that_never_ended_leaves_its_slot_with_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
        state.see_tasks(&["t"], 100).unwrap();
        // Recorded, then stopped before it ended: the task's last_slot was never set.
        let mut run = state.begin_run("t", "T", Some(3600), 1000, true).unwrap();
        run.add("msg_0000000000000000000000000001", 1, "K1", &[b"{}"])
            .unwrap();
        run.commit(1).unwrap();
        let slot = |state: &StateDb| -> Option<i64> {
            state
                .conn
                .query_row("SELECT last_slot FROM tasks WHERE task = 't'", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(slot(&state), None);
        assert_eq!(state.prune(5000).unwrap(), 0, "a pending delivery keeps it");
        state
            .conn
            .execute("UPDATE deliveries SET status = 'delivered'", [])
            .unwrap();
        assert_eq!(state.prune(5000).unwrap(), 1);
        assert_eq!(
            slot(&state),
            Some(3600),
            "the slot is still known to have run"
        );
        // A later slot already recorded is not moved back.
        state
            .conn
            .execute("UPDATE tasks SET last_slot = 7200", [])
            .unwrap();
        let run = state.begin_run("t", "T", Some(1800), 1000, true).unwrap();
        run.commit(0).unwrap();
        state.prune(5000).unwrap();
        assert_eq!(slot(&state), Some(7200));
    }
}

//! Event webhook sources on the server (one URL of a webhook each): noted when dispatched,
//! disabled by a 410 Gone and re-enabled by `enable`, summarised for `status` and
//! `webhooks list`.

use super::PgState;
use crate::state::StateError;
use crate::state::rows::{self, SOURCE_SUMMARIES};
use crate::state::sources::SourceSummary;

impl PgState {
    /// Notes a webhook source (its webhook and URL), so a 410 can disable it and `status`
    /// can list it; returns when it was disabled, if it is. A source already noted as it is
    /// costs a read, not a write.
    pub fn see_source(
        &self,
        source: &str,
        webhook: &str,
        url: &str,
        now: i64,
    ) -> Result<Option<i64>, StateError> {
        let mut client = self.client.borrow_mut();
        let known = client
            .query_opt(
                "SELECT webhook_gone FROM webhook_sources
                 WHERE source = $1 AND webhook = $2 AND url = $3",
                &[&source, &webhook, &url],
            )
            .map_err(|e| self.error(&e))?;
        if let Some(row) = known {
            return Ok(row.get(0));
        }
        client
            .query_one(
                "INSERT INTO webhook_sources (source, webhook, url, first_seen)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source) DO UPDATE SET webhook = $2, url = $3
                 RETURNING webhook_gone",
                &[&source, &webhook, &url, &now],
            )
            .map(|row| row.get(0))
            .map_err(|e| self.error(&e))
    }

    /// Whether `source` is an event webhook's (not a task's).
    pub fn is_webhook_source(&self, source: &str) -> Result<bool, StateError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT 1 FROM webhook_sources WHERE source = $1",
                &[&source],
            )
            .map(|found| found.is_some())
            .map_err(|e| self.error(&e))
    }

    /// Which kinds of deliveries of `source` wait to be sent: (event deliveries, task
    /// deliveries). A task and an event webhook that share a name share a source.
    pub fn pending_kinds(&self, source: &str) -> Result<(bool, bool), StateError> {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT coalesce(bool_or(event_type IS NOT NULL), false),
                        coalesce(bool_or(event_type IS NULL), false)
                 FROM deliveries WHERE task = $1 AND status IN ('pending', 'failed')",
                &[&source],
            )
            .map(|row| (row.get(0), row.get(1)))
            .map_err(|e| self.error(&e))
    }

    /// Re-enables every source of `webhook` after a 410; returns how many were disabled.
    pub fn enable_webhook(&self, webhook: &str) -> Result<usize, StateError> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE webhook_sources SET webhook_gone = NULL
                 WHERE webhook = $1 AND webhook_gone IS NOT NULL",
                &[&webhook],
            )
            .map(|n| n as usize)
            .map_err(|e| self.error(&e))
    }

    /// Records that the receiver answered 410 Gone (or, with `None`, re-enables the webhook):
    /// on the task, or the webhook source, called `source`.
    pub fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        for table in [
            "tasks SET webhook_gone = $2 WHERE task",
            "webhook_sources SET webhook_gone = $2 WHERE source",
        ] {
            tx.execute(&format!("UPDATE {table} = $1"), &[&source, &at])
                .map_err(|e| self.error(&e))?;
        }
        tx.commit().map_err(|e| self.error(&e))
    }

    /// Every webhook source seen so far, by source name.
    pub fn source_summaries(&self) -> Result<Vec<SourceSummary>, StateError> {
        let rows = self
            .client
            .borrow_mut()
            .query(SOURCE_SUMMARIES, &[])
            .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(rows::source_summary)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(&e))
    }

    /// Each source of `webhook` and the URL it was last sent to, as shown.
    pub fn source_urls(&self, webhook: &str) -> Result<Vec<(String, String)>, StateError> {
        let rows = self
            .client
            .borrow_mut()
            .query(rows::SOURCE_URLS, &[&webhook])
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Per task, how many deliveries wait (pending or failed) over all its runs.
    pub fn waiting_by_task(&self) -> Result<Vec<(String, i64)>, StateError> {
        let rows = self
            .client
            .borrow_mut()
            .query(&rows::waiting_by_task(""), &[])
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// How many of `source`'s deliveries wait behind an earlier one of the same entity.
    pub fn held_back(&self, source: &str) -> Result<i64, StateError> {
        let row = self
            .client
            .borrow_mut()
            .query_one(
                &rows::held_back("$1", super::deliveries::IN_ORDER),
                &[&source],
            )
            .map_err(|e| self.error(&e))?;
        Ok(row.get(0))
    }

    /// Deletes runs that started before `before` and whose deliveries are all settled
    /// (delivered or dead), with their deliveries and attempts (by cascade); returns how many
    /// deliveries.
    pub fn prune(&self, before: i64) -> Result<u64, StateError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| self.error(&e))?;
        let old_runs = rows::old_runs("$1");
        tx.execute(&rows::keep_pruned_slots(&old_runs), &[&before])
            .and_then(|_| tx.execute(&rows::keep_pruned_deliveries(&old_runs), &[&before]))
            .map_err(|e| self.error(&e))?;
        let deliveries = tx
            .execute(
                &format!("DELETE FROM deliveries WHERE run_id IN ({old_runs})"),
                &[&before],
            )
            .and_then(|deleted| {
                tx.execute(
                    &format!("DELETE FROM runs WHERE id IN ({old_runs})"),
                    &[&before],
                )
                .map(|_| deleted)
            })
            .map_err(|e| self.error(&e))?;
        tx.commit().map_err(|e| self.error(&e))?;
        Ok(deliveries)
    }
}

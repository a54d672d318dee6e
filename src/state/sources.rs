//! What the state database knows of each event webhook source (one URL of a webhook): its
//! deliveries by status, when one was last delivered, and whether a 410 disabled it. Read by
//! `status` and `webhooks list`.

use super::{StateDb, StateError};

/// One webhook source's deliveries, over every pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSummary {
    /// The source: the webhook's name, `#2`, `#3`... for further URLs.
    pub source: String,
    pub webhook: String,
    /// When a delivery last reached it (Unix seconds), if one ever did.
    pub last_delivered: Option<i64>,
    pub pending: i64,
    pub failed: i64,
    pub dead: i64,
    /// When a 410 Gone disabled it, if it is disabled.
    pub gone: Option<i64>,
}

impl SourceSummary {
    /// Deliveries that failed: retrying (`failed`) or given up on (`dead`).
    pub fn failures(&self) -> i64 {
        self.failed + self.dead
    }
}

impl StateDb {
    /// Every webhook source seen so far, by source name.
    pub fn source_summaries(&self) -> Result<Vec<SourceSummary>, StateError> {
        let sql = "SELECT s.source, s.webhook, s.webhook_gone, d.last, d.pending, d.failed, d.dead
             FROM webhook_sources AS s LEFT JOIN (
                 SELECT task,
                        max(updated_at) FILTER (WHERE status = 'delivered') AS last,
                        count(*) FILTER (WHERE status = 'pending') AS pending,
                        count(*) FILTER (WHERE status = 'failed') AS failed,
                        count(*) FILTER (WHERE status = 'dead') AS dead
                 FROM deliveries WHERE task IN (SELECT source FROM webhook_sources)
                 GROUP BY task) AS d ON d.task = s.source
             ORDER BY s.source";
        let mut statement = self.conn.prepare(sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(SourceSummary {
                    source: row.get(0)?,
                    webhook: row.get(1)?,
                    gone: row.get(2)?,
                    last_delivered: row.get(3)?,
                    pending: row.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                    failed: row.get::<_, Option<i64>>(5)?.unwrap_or_default(),
                    dead: row.get::<_, Option<i64>>(6)?.unwrap_or_default(),
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }
}

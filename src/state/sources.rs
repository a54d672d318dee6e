//! What the state database knows of each event webhook source (one URL of a webhook): its
//! deliveries by status, when one was last delivered, and whether a 410 disabled it. Read by
//! `status` and `webhooks list`.

use super::deliveries::RECORDED;
use super::rows;
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
    /// The URL it was last sent to, as shown (a password masked).
    pub url: String,
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
        let mut statement = self
            .conn
            .prepare(rows::SOURCE_SUMMARIES)
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| rows::source_summary(row))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Each source of `webhook` and the URL it was last sent to, as shown.
    pub fn source_urls(&self, webhook: &str) -> Result<Vec<(String, String)>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&rows::SOURCE_URLS.replace("$1", "?1"))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([webhook], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Per task, how many deliveries wait (pending or failed) over all its runs.
    pub fn waiting_by_task(&self) -> Result<Vec<(String, i64)>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(&rows::waiting_by_task(&format!(" AND {RECORDED}")))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// How many of `source`'s deliveries wait behind an earlier one of the same entity.
    pub fn held_back(&self, source: &str) -> Result<i64, StateError> {
        self.conn
            .prepare_cached(&rows::held_back("?1", super::deliveries::queue::IN_ORDER))
            .and_then(|mut statement| statement.query_row([source], |row| row.get(0)))
            .map_err(|e| self.error(e))
    }
}

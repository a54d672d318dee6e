//! Row mappings both back ends share: each result type is read from one column list, through
//! [`Columns`], whether the row is SQLite's or PostgreSQL's.

use super::deliveries::{AttemptEntry, BadRowEntry, Claimed, LogEntry, Status};
use super::runs::{RunSummary, TaskState};
use super::sources::SourceSummary;

/// A value both drivers read the same way.
pub trait Cell: rusqlite::types::FromSql + postgres::types::FromSqlOwned {}

impl<T: rusqlite::types::FromSql + postgres::types::FromSqlOwned> Cell for T {}

/// A result row of either back end.
pub trait Columns {
    type Error;
    fn cell<T: Cell>(&self, index: usize) -> Result<T, Self::Error>;
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn cell<T: Cell>(&self, index: usize) -> Result<T, rusqlite::Error> {
        self.get(index)
    }
}

impl Columns for postgres::Row {
    type Error = postgres::Error;
    fn cell<T: Cell>(&self, index: usize) -> Result<T, postgres::Error> {
        self.try_get(index)
    }
}

/// `tasks` columns for [`task_state`].
pub const TASK_STATE: &str = "first_seen, last_run, last_slot, webhook_gone";

/// A task's state from the [`TASK_STATE`] columns starting at `first`.
pub fn task_state<R: Columns>(row: &R, first: usize) -> Result<TaskState, R::Error> {
    Ok(TaskState {
        first_seen: row.cell(first)?,
        last_run: row.cell(first + 1)?,
        last_slot: row.cell(first + 2)?,
        webhook_gone: row.cell(first + 3)?,
    })
}

/// A run with its deliveries counted by status: the select list over `runs r LEFT JOIN
/// deliveries d`, grouped by run. The back end adds the host that ran it.
pub const RUN_SUMMARY: &str = "r.id, r.task, r.name, r.slot, r.started_at, r.finished_at,
    r.matched, r.sent, r.skipped,
    count(d.seq) FILTER (WHERE d.status = 'delivered'),
    count(d.seq) FILTER (WHERE d.status = 'pending'),
    count(d.seq) FILTER (WHERE d.status = 'failed'),
    count(d.seq) FILTER (WHERE d.status = 'dead'),
    (SELECT count(*) FROM bad_rows b WHERE b.run_id = r.id)";

/// A run from the [`RUN_SUMMARY`] columns, then its host.
pub fn run_summary<R: Columns>(row: &R) -> Result<RunSummary, R::Error> {
    Ok(RunSummary {
        id: row.cell(0)?,
        task: row.cell(1)?,
        name: row.cell(2)?,
        slot: row.cell(3)?,
        started_at: row.cell(4)?,
        finished_at: row.cell(5)?,
        matched: row.cell(6)?,
        sent: row.cell(7)?,
        skipped: row.cell(8)?,
        delivered: row.cell(9)?,
        pending: row.cell(10)?,
        failed: row.cell(11)?,
        dead: row.cell(12)?,
        bad_rows: row.cell(13)?,
        host: row.cell(14)?,
    })
}

/// What a claim returns, for [`claimed`].
pub const CLAIMED: &str =
    "seq, id, task, license_id, activation_key, body, attempts, created_at, event_type";

pub fn claimed<R: Columns>(row: &R) -> Result<Claimed, R::Error> {
    Ok(Claimed {
        seq: row.cell(0)?,
        id: row.cell(1)?,
        task: row.cell(2)?,
        license_id: row.cell(3)?,
        activation_key: row.cell(4)?,
        body: row.cell(5)?,
        attempts: row.cell(6)?,
        created_at: row.cell(7)?,
        event_type: row.cell(8)?,
    })
}

/// A delivery as `log` shows it, over `deliveries AS d`. The back end adds three columns, as
/// it stores them: the body's length in bytes, the earlier delivery this one waits for (its
/// id), and the host of its last attempt.
pub const LOG_ENTRY: &str = "id, task, run_id, license_id, activation_key, status, attempts,
    created_at, updated_at, next_attempt_at, last_status, last_error, event_type, order_key";

/// A log entry from the [`LOG_ENTRY`] columns, then bytes, `waiting_for` and `host`.
pub fn log_entry<R: Columns>(row: &R) -> Result<LogEntry, R::Error> {
    let status: String = row.cell(5)?;
    let status = Status::parse(&status).unwrap_or(Status::Pending);
    let waiting = matches!(status, Status::Pending | Status::Failed);
    Ok(LogEntry {
        id: row.cell(0)?,
        task: row.cell(1)?,
        run_id: row.cell(2)?,
        license_id: row.cell(3)?,
        activation_key: row.cell(4)?,
        status,
        attempts: row.cell(6)?,
        created_at: row.cell(7)?,
        updated_at: row.cell(8)?,
        next_attempt_at: if waiting { row.cell(9)? } else { None },
        last_status: http_status(row.cell(10)?),
        last_error: row.cell(11)?,
        event_type: row.cell(12)?,
        order_key: row.cell(13)?,
        bytes: row.cell(14)?,
        waiting_for: if waiting { row.cell(15)? } else { None },
        host: row.cell(16)?,
    })
}

/// `bad_rows` columns for [`bad_row`].
pub const BAD_ROW: &str = "task, run_id, license_id, activation_key, reason, created_at";

pub fn bad_row<R: Columns>(row: &R) -> Result<BadRowEntry, R::Error> {
    Ok(BadRowEntry {
        task: row.cell(0)?,
        run_id: row.cell(1)?,
        license_id: row.cell(2)?,
        activation_key: row.cell(3)?,
        status: "bad",
        error: row.cell(4)?,
        created_at: row.cell(5)?,
    })
}

/// `attempts a` columns for [`attempt_entry`]; the back end adds the host that made it.
pub const ATTEMPT: &str = "a.at, a.status, a.error, a.duration_ms, a.excerpt";

/// An attempt from the [`ATTEMPT`] columns, then its host.
pub fn attempt_entry<R: Columns>(row: &R) -> Result<AttemptEntry, R::Error> {
    Ok(AttemptEntry {
        at_ms: row.cell(0)?,
        status: http_status(row.cell(1)?),
        error: row.cell(2)?,
        duration_ms: row.cell(3)?,
        excerpt: row.cell(4)?,
        host: row.cell(5)?,
    })
}

/// Every webhook source with its deliveries counted by status, by source name.
pub const SOURCE_SUMMARIES: &str = "SELECT s.source, s.webhook, s.webhook_gone,
        CASE WHEN d.last IS NULL OR s.last_delivered > d.last THEN s.last_delivered
             ELSE d.last END,
        d.pending, d.failed, d.dead, s.url
     FROM webhook_sources AS s LEFT JOIN (
         SELECT task,
                max(updated_at) FILTER (WHERE status = 'delivered') AS last,
                count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'dead') AS dead
         FROM deliveries
         WHERE event_type IS NOT NULL AND task IN (SELECT source FROM webhook_sources)
         GROUP BY task) AS d ON d.task = s.source
     ORDER BY s.source";

pub fn source_summary<R: Columns>(row: &R) -> Result<SourceSummary, R::Error> {
    Ok(SourceSummary {
        source: row.cell(0)?,
        webhook: row.cell(1)?,
        gone: row.cell(2)?,
        last_delivered: row.cell(3)?,
        pending: row.cell::<Option<i64>>(4)?.unwrap_or_default(),
        failed: row.cell::<Option<i64>>(5)?.unwrap_or_default(),
        dead: row.cell::<Option<i64>>(6)?.unwrap_or_default(),
        url: row.cell(7)?,
    })
}

/// The URL each source of webhook `?1` (`$1`) was last sent to, as shown.
pub const SOURCE_URLS: &str =
    "SELECT source, url FROM webhook_sources WHERE webhook = $1 ORDER BY source";

/// An HTTP status as stored (an integer column), if it is one.
fn http_status(stored: Option<i64>) -> Option<u16> {
    stored.and_then(|status| u16::try_from(status).ok())
}

/// Per task (event sources excluded), how many deliveries wait, pending or failed, over all its
/// runs: read from the queue index alone. `and` narrows the deliveries further (` AND ...`; a
/// SQLite state leaves out runs still being recorded).
pub fn waiting_by_task(and: &str) -> String {
    format!(
        "SELECT task, count(*) FROM deliveries
         WHERE status IN ('pending', 'failed') AND event_type IS NULL{and} GROUP BY task"
    )
}

/// How many of source `param`'s event deliveries (`?1`, `$1`) wait behind an earlier one of the
/// same entity: pending or failed, and not let through by the back end's own order rule
/// `in_order` (the claim's), so the count and the queue cannot disagree.
pub fn held_back(param: &str, in_order: &str) -> String {
    format!(
        "SELECT count(*) FROM deliveries AS d
         WHERE d.task = {param} AND d.order_key IS NOT NULL AND d.status IN ('pending', 'failed')
           AND NOT {in_order}"
    )
}

/// The runs `prune` forgets, in either back end's SQL: started before the parameter `param`
/// (`?1`, `$1`), none of their deliveries pending or failed.
pub fn old_runs(param: &str) -> String {
    format!(
        "SELECT id FROM runs WHERE started_at < {param} AND NOT EXISTS (
             SELECT 1 FROM deliveries d WHERE d.run_id = runs.id
             AND d.status IN ('pending', 'failed'))"
    )
}

/// Before `old_runs` go: each webhook URL keeps when the last of their deliveries reached it
/// (its summary's "last delivered" is read off the deliveries that are left).
pub fn keep_pruned_deliveries(old_runs: &str) -> String {
    format!(
        "UPDATE webhook_sources SET last_delivered = pruned.last
         FROM (SELECT task, max(updated_at) AS last FROM deliveries
               WHERE run_id IN ({old_runs}) AND status = 'delivered'
                 AND event_type IS NOT NULL
               GROUP BY task) AS pruned
         WHERE webhook_sources.source = pruned.task
           AND pruned.last > coalesce(webhook_sources.last_delivered, -9223372036854775808)"
    )
}

/// Before `old_runs` go: each task keeps the latest slot they were the record of. A run row
/// is also the record that its slot ran: a run stopped before it ended (a kill, a stop) never
/// set the task's `last_slot`, and without its row `run-due` would run that slot again, under
/// new delivery ids.
pub fn keep_pruned_slots(old_runs: &str) -> String {
    format!(
        "UPDATE tasks SET last_slot = pruned.slot
         FROM (SELECT task, max(slot) AS slot FROM runs WHERE id IN ({old_runs})
               GROUP BY task) AS pruned
         WHERE tasks.task = pruned.task
           AND pruned.slot > coalesce(tasks.last_slot, -9223372036854775808)"
    )
}

//! Arguments of the commands that send and show deliveries: dispatch, watch, retry, resend,
//! log, prune.

use std::time::Duration;

use clap::Args;

use super::values::duration;

/// Arguments of `dispatch`.
#[derive(Debug, Args)]
pub struct DispatchArgs {}

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// How often to look for a commit (a cheap counter read), e.g. 25ms. On a PostgreSQL
    /// license database a commit notifies watch; this is then how often it looks without one
    /// (for retries that came due), at least 1s.
    #[arg(long, env = "KEYHOOK_POLL", value_name = "TIME", default_value = "25ms", value_parser = duration)]
    pub poll: Duration,
}

/// Arguments of `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Only this task's deliveries.
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
}

/// Arguments of `resend`.
#[derive(Debug, Args)]
pub struct ResendArgs {
    /// The delivery id (as in `keyhook log`), or a unique prefix of it.
    pub delivery_id: String,
}

/// Arguments of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this task's deliveries.
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,

    /// Only this webhook's deliveries (to every URL it has).
    #[arg(long, value_name = "NAME")]
    pub webhook: Option<String>,

    /// Only deliveries of this event type, e.g. license.activated.
    #[arg(long, value_name = "TYPE")]
    pub event: Option<String>,

    /// Only deliveries in this state; `bad`: only the license rows a run could not read.
    #[arg(long, value_parser = ["pending", "failed", "delivered", "dead", "bad"])]
    pub status: Option<String>,

    /// Only deliveries created within this long, e.g. 2d or 12h.
    #[arg(long, value_name = "AGE", value_parser = duration)]
    pub since: Option<Duration>,

    /// Show each delivery's attempts.
    #[arg(long)]
    pub attempts: bool,

    /// One JSON object per delivery.
    #[arg(long)]
    pub json: bool,

    /// At most N deliveries (at least 1).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

/// Arguments of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete settled deliveries of runs older than this, e.g. 90d.
    #[arg(
        long,
        value_name = "AGE",
        value_parser = duration,
        required_unless_present_any = ["removed_tasks", "removed_webhooks"]
    )]
    pub older_than: Option<Duration>,

    /// Give up the pending and failed deliveries of tasks whose file is no longer in tasks/
    /// (they become dead, kept in the log), so that retries stop waiting for them. A task
    /// whose file is there but invalid keeps its deliveries: fix the file.
    #[arg(long)]
    pub removed_tasks: bool,

    /// Give up the pending and failed deliveries of event webhook URLs that no file in
    /// webhooks/ (or `[events]`) defines any more: a webhook renamed or removed, or a URL taken
    /// from its list (they become dead, kept in the log). Refused while a webhook file has
    /// problems: it may be the one that defines them.
    #[arg(long)]
    pub removed_webhooks: bool,
}

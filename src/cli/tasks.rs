//! Arguments of the task commands: previewing, running and scheduling a task.

use clap::Args;

/// Arguments of `dry-run`.
#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// A search or task: file stem (`upcoming-renewals`) or name (`"Upcoming Renewals"`).
    pub name: String,

    /// Print one JSON object per match: the exact `LicenseInfo` that would be sent.
    #[arg(long, conflicts_with_all = ["count", "payloads"])]
    pub json: bool,

    /// Print only the number of matches.
    #[arg(long, conflicts_with = "payloads")]
    pub count: bool,

    /// Show at most N matches.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// For a task: print each request body and its signature exactly as they would be sent.
    #[arg(long)]
    pub payloads: bool,
}

/// Arguments of `run-task`.
#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The task: file stem (`upcoming-renewals`) or name (`"Upcoming Renewals"`).
    pub name: String,

    /// Print a machine-readable summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Run even if the task already ran for its current scheduled slot (a new run, new deliveries).
    #[arg(long)]
    pub force: bool,

    /// Requests in flight at once, each on its own keep-alive connection [default: the task's
    /// `concurrency`, else 1].
    #[arg(long, env = "KEYHOOK_CONCURRENCY", value_name = "N",
          value_parser = crate::definitions::task::parse_concurrency)]
    pub concurrency: Option<usize>,
}

/// Arguments of `next`.
#[derive(Debug, Args)]
pub struct NextArgs {
    /// The task; every enabled task when omitted.
    pub task: Option<String>,

    /// How many run times to show (at most 1000).
    #[arg(short = 'n', long, default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
}

/// Arguments of `set-last-run`.
#[derive(Debug, Args)]
pub struct SetLastRunArgs {
    /// The task.
    pub task: String,

    /// The time, e.g. 2026-11-20T08:00 (read in the task's zone) or with an offset.
    pub time: String,
}

/// Arguments of `enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The task whose webhook to re-enable.
    pub task: String,
}

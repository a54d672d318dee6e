//! Arguments of `events`: the event catalog and the triggers that capture events.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::values::duration;

/// `events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the event catalog: the built-in events over QLM's tables, then those of
    /// `events.toml` in the configuration folder.
    Catalog(EventsCatalogArgs),

    /// Add the triggers that append each event to the outbox table `keyhook_outbox`, in the
    /// same transaction as the change; upgrade them when a table or the catalog changed.
    ///
    /// This, `events uninstall` and `events prune` are the only writes keyhook makes to the
    /// license database.
    /// One transaction; running it again changes nothing and says so.
    Install,

    /// Remove exactly what `events install` added: the triggers, the outbox and its record.
    Uninstall(EventsUninstallArgs),

    /// Whether the triggers are installed and still match their tables, and the outbox's size.
    Status(EventsStatusArgs),

    /// Delete outbox rows that dispatch has taken (at or before the state database's cursor)
    /// and that are older than `--older-than`: a write to the license database, to keyhook's
    /// own table only, reported with the number of rows removed.
    Prune(EventsPruneArgs),
}

/// Arguments of `events prune`.
#[derive(Debug, Args)]
pub struct EventsPruneArgs {
    /// Delete taken outbox rows older than this, e.g. 30d.
    #[arg(long, value_name = "AGE", value_parser = duration)]
    pub older_than: Duration,
}

/// Arguments of `events catalog`.
#[derive(Debug, Args)]
pub struct EventsCatalogArgs {
    /// One JSON array of the event types.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `events uninstall`.
#[derive(Debug, Args)]
pub struct EventsUninstallArgs {
    /// Also when the outbox still holds events (they are deleted with it).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `events status`.
#[derive(Debug, Args)]
pub struct EventsStatusArgs {
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

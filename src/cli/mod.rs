//! The command line: clap types only, the arguments of each group of commands in its own
//! file. Each subcommand's doc comment is its `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod databases;
mod deliveries;
mod events;
mod signatures;
mod tasks;
mod values;
mod webhooks;

pub use databases::*;
pub use deliveries::*;
pub use events::*;
pub use signatures::*;
pub use tasks::*;
pub use webhooks::*;

use values::duration;

/// Scheduled, signed webhooks from a software-license database (QLM schema).
///
/// keyhook evaluates saved searches (`searches/*.toml`) against a SQLite license database and,
/// for each matching license, POSTs one JSON payload signed with `X-QLM-Signature`, as the
/// scheduled tasks (`tasks/*.toml`) say. Try it: `keyhook demo`.
#[derive(Debug, Parser)]
#[command(name = "keyhook", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Folder holding `keyhook.toml`, `searches/`, `tasks/` and `webhooks/`.
    #[arg(
        long,
        global = true,
        env = "KEYHOOK_CONFIG",
        value_name = "DIR",
        default_value = "."
    )]
    pub config: PathBuf,

    /// The license database: a SQLite file, or a PostgreSQL server as a URL
    /// (`postgres://user@host/db?sslmode=verify-full`).
    #[arg(
        long,
        global = true,
        env = "KEYHOOK_DB",
        hide_env_values = true,
        value_name = "PATH|URL",
        default_value = "licenses.db"
    )]
    pub db: PathBuf,

    /// Pin the clock, e.g. 2026-11-23T08:00:00 (read in the configured zone) or with an offset.
    #[arg(long, global = true, env = "KEYHOOK_NOW", value_name = "TIME")]
    pub now: Option<String>,

    /// keyhook's own state: runs, delivery log, retry queue [default: keyhook-state.db beside --db].
    /// A PostgreSQL URL (`postgres://user@host/db?schema=keyhook`) shares it between hosts.
    #[arg(
        long,
        global = true,
        env = "KEYHOOK_STATE",
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub state: Option<PathBuf>,

    /// This host's name in a shared (PostgreSQL) state: `status` and `log` show it
    /// [default: the machine's hostname].
    #[arg(long, global = true, env = "KEYHOOK_HOST", value_name = "NAME")]
    pub host: Option<String>,

    /// How long a claim on a delivery or a slot lasts in a shared state before another host may
    /// take it over (the server's clock decides), e.g. 5m.
    #[arg(long, global = true, env = "KEYHOOK_LEASE", value_name = "DURATION",
          default_value = "5m", value_parser = duration)]
    pub lease: Duration,

    /// Time zone for "today" and schedules, overriding `timezone` in keyhook.toml.
    #[arg(long, global = true, env = "KEYHOOK_TIMEZONE", value_name = "ZONE")]
    pub timezone: Option<String>,

    /// This runner's environment: only webhooks of this environment fire (production,
    /// staging or development) [default: production]. `webhooks list` shows only them too.
    #[arg(long, global = true, env = "KEYHOOK_ENVIRONMENT", value_name = "ENV",
          value_parser = crate::definitions::registry::Environment::parse)]
    pub environment: Option<crate::definitions::registry::Environment>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preview what a search or task matches, and what would be sent. Sends nothing, writes nothing.
    DryRun(DryRunArgs),

    /// Run one task now, whatever its schedule: one signed POST per matching license.
    RunTask(RunTaskArgs),

    /// What cron or a systemd timer calls: send the retries that are due, then run every task
    /// whose scheduled slot has come.
    ///
    /// Missed slots run once, and only within each task's `catch_up` window; a task still
    /// running from an earlier call is skipped. Exit: 0 all fine or nothing due, 1 some
    /// deliveries failed, 2 configuration error, 3 a database could not be used, 4 some license
    /// rows could not be read (the others were sent), 75 a due task was locked by another
    /// process, 130/143 stopped by SIGINT/SIGTERM.
    RunDue,

    /// One dispatch pass: new events in the license database's outbox become deliveries to
    /// the webhooks that subscribe to them, and every webhook's due deliveries are sent.
    ///
    /// Exit: 0 all fine or nothing to send, 1 some deliveries failed, 2 configuration error,
    /// 3 runtime error, 75 a webhook was being sent by another process, 130/143 stopped by
    /// SIGINT/SIGTERM (what was not sent stays pending).
    Dispatch(DispatchArgs),

    /// Dispatch continuously: notices commits to the license database within milliseconds
    /// (`PRAGMA data_version`), sends retries when due, and stops cleanly (exit 0) on SIGTERM
    /// or Ctrl-C. Reloads its webhooks when their files change, or on SIGHUP; a broken file
    /// keeps the last good ones. Run it as a service (examples/systemd/keyhook-watch.service).
    Watch(WatchArgs),

    /// The next run times of one task or of every enabled task.
    Next(NextArgs),

    /// Set when a task last ran (QLM's "Last Ran"): what `[date]` is on its next run.
    SetLastRun(SetLastRunArgs),

    /// Send every pending or failed delivery that is due.
    Retry(RetryArgs),

    /// Send one delivery again now, by hand: the same delivery id, the same body.
    Resend(ResendArgs),

    /// The delivery log, newest first.
    Log(LogArgs),

    /// Per task: the last run, its counts, and the pending and dead deliveries.
    Status,

    /// Re-enable a task's webhook after its receiver answered 410 Gone.
    Enable(EnableArgs),

    /// Delete settled deliveries (delivered or dead) of old runs, to keep the state file bounded,
    /// and what runs killed while they were being recorded left (never sent); with
    /// --removed-tasks, give up the waiting deliveries of tasks whose file was removed.
    Prune(PruneArgs),

    /// Secrets: `keyhook secret new` prints a fresh Standard Webhooks secret; `secret rotate`
    /// replaces a webhook's.
    #[command(subcommand)]
    Secret(SecretCommand),

    /// The event webhooks of `webhooks/*.toml` and of `[events]` in keyhook.toml.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),

    /// Print the signature of a body, to reproduce what keyhook sends (or a spec's vectors).
    Sign(SignArgs),

    /// Check a received request's signature and say why it is invalid.
    ///
    /// Give the headers and body as files, or a raw HTTP request on standard input. Exits 0
    /// when valid, 1 when invalid.
    Verify(VerifyArgs),

    /// List the searches and tasks found, one line each.
    List,

    /// Validate every settings, search and task file, placeholder and SQL statement.
    ///
    /// Prints every problem found, not just the first. Exits 0 only when all is valid.
    Check,

    /// Create or fill a license database.
    #[command(subcommand)]
    Db(DbCommand),

    /// keyhook's own state: move it from a SQLite file to a PostgreSQL server.
    #[command(subcommand)]
    State(StateCommand),

    /// Event capture: the catalog of event types, and the triggers that record them in the
    /// license database.
    #[command(subcommand)]
    Events(EventsCommand),

    /// Run a local webhook receiver that prints what it gets and checks signatures (over HTTPS
    /// with --tls-cert and --tls-key).
    Listen(ListenArgs),

    /// See keyhook work end to end: a demo database, a local receiver, the example task.
    Demo(DemoArgs),
}

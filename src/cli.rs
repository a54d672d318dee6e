//! The command line: clap types only. Each subcommand's doc comment is its `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    /// Folder holding `keyhook.toml`, `searches/` and `tasks/`.
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
    /// deliveries failed, 2 configuration error, 4 some license rows could not be read (the
    /// others were sent), 75 a due task was locked by another process.
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

    /// Delete settled deliveries (delivered or dead) of old runs, to keep the state file bounded.
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

/// `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh `whsec_` secret: 32 random bytes from the OS, base64.
    New,

    /// Write a new `whsec_` secret to a webhook's `secret_file`, keeping the old one as a
    /// previous secret for 24 hours (in `<secret_file>.previous`): requests are signed with
    /// both meanwhile, so receivers can switch without losing any.
    Rotate(RotateArgs),
}

/// Arguments of `secret rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The webhook: file stem (`crm-activations`) or name.
    pub webhook: String,
}

/// `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// One line per webhook: name, URL, environment, events, status.
    List(WebhooksListArgs),

    /// Send a sample event, marked as a test, to each URL of a webhook, through the real
    /// delivery path (recorded, signed, same headers), one attempt with no retry; show the
    /// response. Exit 0 when every URL answered 2xx, 1 otherwise.
    Test(WebhooksTestArgs),
}

/// Arguments of `webhooks test`.
#[derive(Debug, Args)]
pub struct WebhooksTestArgs {
    /// The webhook: file stem (`crm-activations`) or name.
    pub name: String,

    /// The event type to send, in either naming style [default: the first the webhook
    /// subscribes to].
    #[arg(long, value_name = "TYPE")]
    pub event: Option<String>,
}

/// Whether a webhook is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Active,
    Inactive,
}

/// Arguments of `webhooks list`.
#[derive(Debug, Args)]
pub struct WebhooksListArgs {
    /// Only active (enabled) or inactive webhooks.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,

    /// Only webhooks whose name or URL contains this text (case-insensitively).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// One JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Which signature scheme to sign or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemeArg {
    /// `X-QLM-Signature`: SHA-256 of body + secret.
    Qlm,
    /// Standard Webhooks: `webhook-signature` over id, timestamp and body.
    Standard,
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[arg(long, value_enum, default_value = "standard")]
    pub scheme: SchemeArg,

    /// Environment variable holding the secret.
    #[arg(long, value_name = "NAME", required_unless_present = "webhook")]
    pub secret_env: Option<String>,

    /// Sign as this webhook signs now (`--now`): its current secret, and for `standard` every
    /// previous secret still in its rotation window, one `v1,` signature each.
    #[arg(long, value_name = "WEBHOOK", conflicts_with = "secret_env")]
    pub webhook: Option<String>,

    /// The message (delivery) id; needed by `standard`.
    #[arg(long)]
    pub id: Option<String>,

    /// Unix seconds; needed by `standard`.
    #[arg(long, allow_negative_numbers = true)]
    pub timestamp: Option<i64>,

    /// The body file (`-` for standard input), signed byte for byte.
    #[arg(long, value_name = "FILE")]
    pub body: PathBuf,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Environment variable holding the secret (one per line to accept several).
    #[arg(long, value_name = "NAME")]
    pub secret_env: String,

    /// The scheme to check [default: the one the request's headers use].
    #[arg(long, value_enum)]
    pub scheme: Option<SchemeArg>,

    /// A file of `Name: value` header lines; with --body. Without both, a raw HTTP request is
    /// read from standard input.
    #[arg(long, value_name = "FILE", requires = "body")]
    pub headers: Option<PathBuf>,

    /// The body file, byte for byte; with --headers.
    #[arg(long, value_name = "FILE", requires = "headers")]
    pub body: Option<PathBuf>,

    /// How old (or new) a Standard Webhooks timestamp may be, e.g. 5m.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub tolerance: Duration,
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

    /// At most N deliveries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u64,
}

/// Arguments of `enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The task whose webhook to re-enable.
    pub task: String,
}

/// Arguments of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete settled deliveries of runs older than this, e.g. 90d.
    #[arg(long, value_name = "AGE", value_parser = duration)]
    pub older_than: Duration,
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create an empty license database with QLM's LicenseKeys, Customers and Products tables
    /// (no change to those that exist).
    Init,

    /// Write a demo license database with licenses spread around today.
    Demo(DbDemoArgs),
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy a SQLite state (tasks, runs, deliveries with their bodies and ids, attempts, bad
    /// rows) into a PostgreSQL state, in one transaction; refused when the target already
    /// holds runs or deliveries, so it never duplicates. Event webhook state is not moved.
    Migrate(StateMigrateArgs),
}

/// Arguments of `state migrate`.
#[derive(Debug, Args)]
pub struct StateMigrateArgs {
    /// The SQLite state file to read (left as it is).
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,

    /// The PostgreSQL state to fill: `postgres://user@host/db?schema=keyhook`.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

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

/// Arguments of `db demo`.
#[derive(Debug, Args)]
pub struct DbDemoArgs {
    /// How many licenses to write (at most 100,000,000).
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = license_count)]
    pub licenses: usize,

    /// Seed for the generated data; the same seed and day give the same database.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Replace the database if it already exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "KEYHOOK_LISTEN_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Secret to check `X-QLM-Signature` with. Prefer --secret-env: this one shows in `ps`.
    #[arg(long, conflicts_with = "secret_env", hide_env_values = true)]
    pub secret: Option<String>,

    /// Environment variable holding the secret to check `X-QLM-Signature` with.
    #[arg(long, value_name = "NAME")]
    pub secret_env: Option<String>,

    /// One line per request, without the body.
    #[arg(long)]
    pub compact: bool,

    /// Speak HTTPS with this PEM certificate (then any intermediates); needs --tls-key.
    #[arg(
        long,
        value_name = "PEM",
        env = "KEYHOOK_LISTEN_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        env = "KEYHOOK_LISTEN_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many licenses the demo database holds (at most 100,000,000).
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = license_count)]
    pub licenses: usize,
}

/// A duration from the command line or its environment variable: `30s`, `5m`, `2h 30m`, `90d`;
/// positive and at most 100 years, so no arithmetic on it can wrap.
fn duration(text: &str) -> Result<Duration, String> {
    crate::definitions::settings::parse_duration(text)
}

/// A number of demo licenses: bounded, so the ids and dates derived from it cannot overflow.
fn license_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count) if count <= 100_000_000 => Ok(count),
        _ => Err(format!(
            "`{text}` is not a number of licenses from 0 to 100000000"
        )),
    }
}

//! The command-line faces: one file per subcommand, dispatched by one `match`.

mod check;
mod db;
mod demo;
mod demo_events;
mod dispatch;
mod dry_run;
mod enable;
mod events;
mod events_postgres;
mod helping;
mod license_outbox;
mod list;
mod listen;
mod log;
mod next;
pub(crate) mod printable;
mod prune;
mod resend;
mod retry;
mod run_due;
mod run_task;
mod secret;
mod sending;
mod set_last_run;
mod sign;
mod state;
mod status;
mod verify;
mod watch;
mod watch_postgres;
mod watch_reload;
mod webhook_sources;
mod webhook_test;
mod webhooks;

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;

use crate::cli::{
    Cli, Command, DbCommand, EventsCommand, GlobalArgs, SecretCommand, StateCommand,
    WebhooksCommand,
};
use crate::definitions::{Definitions, Environment, Search, Task};
use crate::error::{Error, Exit, Result};
use crate::licenses::database::{self, LicenseDatabase, Location};
use crate::licenses::placeholders::{self, History, Moment};
use crate::schedule::clock::{self, Clock};
use crate::schedule::zone;
use crate::state::postgres::Identity;
use crate::state::{self as state_db, State, StateDb};

/// What every command starts from: definitions loaded, clock read, paths settled.
pub struct Context {
    pub definitions: Definitions,
    pub clock: Clock,
    /// `--db` as given for a SQLite file; for a server, its URL as shown (`redact`: no
    /// password), for messages only: connections go through `db`.
    pub db_path: PathBuf,
    /// Where the license database is: which back end, and where.
    pub db: Location,
    /// The SQLite state's path; for a state on a server, its URL without the password.
    pub state_path: PathBuf,
    /// Where the state is: a file, or a server shared by several hosts.
    pub state_location: state_db::Location,
    /// This host's name and its lease, for a shared state.
    pub identity: Identity,
    /// `--environment` (`KEYHOOK_ENVIRONMENT`) as given; [`Context::environment`] settles it.
    pub environment: Option<Environment>,
    /// Why a server URL given for the license database, or for the state, cannot be read:
    /// said (exit 2) by whatever would connect with it, not by a command that does not.
    pub url_problems: UrlProblems,
}

/// [`Context::url_problems`]: the license database's, the state's.
#[derive(Debug, Default)]
pub struct UrlProblems {
    db: Option<String>,
    state: Option<String>,
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result {
    let context = Context::new(&cli.global)?;
    if reads_definitions(&cli.command) {
        context.definitions.ensure_folder().map_err(Error::config)?;
    } else if matches!(cli.command, Command::Events(_)) {
        // Triggers are installed (and removed) by what the folder's events.toml says: a
        // mistyped --config would remove those of the user's own events. An empty folder is
        // fine: the built-in events need no file.
        context
            .definitions
            .ensure_folder_exists()
            .map_err(Error::config)?;
    }
    refuse_broken_settings(&context, &cli.command)?;
    // Only what a command prints stops at a closed pipe (`dry-run | head`): a command that
    // does work finishes it, and its exit code says how it went.
    let only_prints = matches!(
        cli.command,
        Command::DryRun(_) | Command::Log(_) | Command::Listen(_)
    );
    let mut out = Stdout::new(std::io::stdout().lock(), only_prints);
    match cli.command {
        Command::DryRun(args) => dry_run::run(&context, &args, &mut out),
        Command::RunTask(args) => run_task::run(&context, &args, &mut out),
        Command::RunDue => run_due::run(&context, &mut out),
        Command::Dispatch(args) => dispatch::run(&context, &args, &mut out),
        Command::Watch(args) => watch::run(&context, &args, &mut out),
        Command::Next(args) => next::run(&context, &args, &mut out),
        Command::SetLastRun(args) => set_last_run::run(&context, &args, &mut out),
        Command::Retry(args) => retry::run(&context, &args, &mut out),
        Command::Resend(args) => resend::run(&context, &args, &mut out),
        Command::Log(args) => log::run(&context, &args, &mut out),
        Command::Status => status::run(&context, &mut out),
        Command::Enable(args) => enable::run(&context, &args, &mut out),
        Command::Prune(args) => prune::run(&context, &args, &mut out),
        Command::Secret(SecretCommand::New) => secret::new(&mut out),
        Command::Secret(SecretCommand::Rotate(args)) => secret::rotate(&context, &args, &mut out),
        Command::Webhooks(WebhooksCommand::List(args)) => webhooks::list(&context, &args, &mut out),
        Command::Webhooks(WebhooksCommand::Test(args)) => {
            webhook_test::run(&context, &args, &mut out)
        }
        Command::Sign(args) => sign::run(&context, &args, &mut out),
        Command::Verify(args) => verify::run(&context, &args, &mut out),
        Command::List => list::run(&context, &mut out),
        Command::Check => check::run(&context, &mut out),
        Command::Db(DbCommand::Init) => db::init(&context, &mut out),
        Command::Db(DbCommand::Demo(args)) => db::demo(&context, &args, &mut out),
        Command::State(StateCommand::Migrate(args)) => state::migrate(&context, &args, &mut out),
        Command::Events(EventsCommand::Catalog(args)) => events::catalog(&context, &args, &mut out),
        Command::Events(EventsCommand::Install) => events::install(&context, &mut out),
        Command::Events(EventsCommand::Uninstall(args)) => {
            events::uninstall(&context, &args, &mut out)
        }
        Command::Events(EventsCommand::Status(args)) => events::status(&context, &args, &mut out),
        Command::Events(EventsCommand::Prune(args)) => events::prune(&context, &args, &mut out),
        Command::Listen(args) => listen::run(&args, &mut out),
        Command::Demo(args) => demo::run(&context, &args, &mut out),
    }
}

/// Standard output. When its reader goes away (`| head`), a command that only prints stops
/// there (its write fails, and the closed pipe exits 0); any other goes on with its work, its
/// further output discarded, so a run's failures still reach its exit code.
struct Stdout<W> {
    inner: W,
    stop_at_close: bool,
    closed: bool,
}

impl<W: Write> Stdout<W> {
    fn new(inner: W, stop_at_close: bool) -> Stdout<W> {
        Stdout {
            inner,
            stop_at_close,
            closed: false,
        }
    }

    /// `result`, unless it is the reader gone and the command goes on without it.
    fn outlast<T>(&mut self, result: std::io::Result<T>, done: T) -> std::io::Result<T> {
        match result {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe && !self.stop_at_close => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf);
        self.outlast(written, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.outlast(flushed, ())
    }
}

/// Commands that use `keyhook.toml`'s settings: all but `check` (which lists a broken file
/// among every other problem) and those that only set up or listen.
fn reads_settings(command: &Command) -> bool {
    !matches!(
        command,
        Command::Check
            | Command::Listen(_)
            | Command::Secret(SecretCommand::New)
            | Command::Demo(_)
            | Command::Db(_)
    )
}

/// Commands that act on the tasks and searches: a wrong `--config` must not make them quietly
/// do nothing.
fn reads_definitions(command: &Command) -> bool {
    matches!(
        command,
        Command::DryRun(_)
            | Command::RunTask(_)
            | Command::RunDue
            | Command::Next(_)
            | Command::SetLastRun(_)
            | Command::Retry(_)
            | Command::Resend(_)
            | Command::Status
            | Command::Enable(_)
            | Command::List
            | Command::Check
            | Command::Dispatch(_)
            | Command::Watch(_)
            | Command::Webhooks(_)
            | Command::Secret(SecretCommand::Rotate(_))
            | Command::Prune(crate::cli::PruneArgs {
                removed_tasks: true,
                ..
            })
    )
}

impl Context {
    /// Loads the definitions and settles the clock and zone from the flags.
    pub fn new(global: &GlobalArgs) -> Result<Context> {
        let definitions = Definitions::load(&global.config);
        let zone = match &global.timezone {
            Some(name) => zone::parse(name)
                .map_err(|e| Error::config(anyhow!("--timezone (KEYHOOK_TIMEZONE): {e}")))?,
            None => match definitions.settings.timezone {
                Some(zone) => zone,
                None => machine_zone(),
            },
        };
        let clock = match &global.now {
            Some(text) => Clock::pinned(
                clock::parse_instant(text, zone)
                    .map_err(|e| Error::config(anyhow!("--now (KEYHOOK_NOW): {e}")))?,
                zone,
            ),
            None => Clock::system(zone),
        };
        let db = Location::parse(&global.db);
        let state_location = global
            .state
            .as_deref()
            .map(state_db::Location::parse)
            .unwrap_or_else(|| state_db::Location::File(PathBuf::new()));
        let url_problems = server_url_problems(&db, &state_location);
        let state_path = match (&global.state, &db) {
            _ if let state_db::Location::Postgres(url) = &state_location => {
                PathBuf::from(crate::licenses::postgres::connect::redact(url))
            }
            (Some(path), _) => path.clone(),
            // Beside a server's license database there is no folder: the current one.
            (None, Location::Postgres(_)) => PathBuf::from(crate::state::DEFAULT_FILE),
            (None, Location::Sqlite(path)) => StateDb::default_path(path),
        };
        let state_location = match state_location {
            state_db::Location::File(_) => state_db::Location::File(state_path.clone()),
            server => server,
        };
        let identity = Identity {
            host: global
                .host
                .clone()
                .unwrap_or_else(crate::state::postgres::hostname),
            lease: global.lease,
        };
        Ok(Context {
            definitions,
            clock,
            db_path: match &db {
                Location::Postgres(url) => {
                    PathBuf::from(crate::licenses::postgres::connect::redact(url))
                }
                Location::Sqlite(_) => global.db.clone(),
            },
            db,
            state_path,
            state_location,
            identity,
            environment: global.environment,
            url_problems,
        })
    }

    /// The runner's environment: only its webhooks fire. Production unless set.
    pub fn environment(&self) -> Environment {
        self.environment.unwrap_or_default()
    }

    /// The zone a task's schedule and dates are read in.
    pub fn zone_of(&self, task: &Task) -> chrono_tz::Tz {
        task.timezone.unwrap_or(self.clock.zone())
    }

    /// Opens (creating and migrating) keyhook's state, on whichever back end it is.
    pub fn open_state(&self) -> Result<State> {
        self.server_state()?;
        // SQLite takes an empty file for a new database: said, since a state file emptied by
        // a botched copy or restore would otherwise start over in silence (its retries gone,
        // its slots free to run again). A first run killed as it opened leaves one too.
        let state = State::open(&self.state_location, &self.identity)?;
        if matches!(&state, State::Sqlite(db) if db.found_empty()) {
            eprintln!(
                "warning: the state file {} was empty (0 bytes): keyhook started a new state in \
                 it. If it held keyhook's state before (a truncated copy or restore), its run \
                 history and retry queue are gone, and a slot that already ran may run again.",
                self.state_path.display()
            );
        }
        Ok(state)
    }

    /// Whether the state is there (a server always is); an error when a file cannot be looked
    /// at.
    pub fn state_exists(&self) -> Result<bool> {
        match &self.state_location {
            state_db::Location::Postgres(_) => Ok(true),
            state_db::Location::File(_) => Ok(StateDb::exists(&self.state_path)?),
        }
    }

    /// The configuration error that says why the state's server URL cannot be read, if it
    /// cannot.
    pub fn server_state(&self) -> Result<()> {
        match &self.url_problems.state {
            Some(problem) => Err(Error::config(anyhow!("{problem}"))),
            None => Ok(()),
        }
    }

    /// The license database's server URL (`None` for a SQLite file), or the configuration
    /// error that says why it cannot be read.
    pub fn server_db(&self) -> Result<Option<&str>> {
        if let Some(problem) = &self.url_problems.db {
            return Err(Error::config(anyhow!("{problem}")));
        }
        Ok(match &self.db {
            Location::Postgres(url) => Some(url),
            Location::Sqlite(_) => None,
        })
    }

    /// Opens the license database read-only.
    pub fn license_db(&self) -> Result<Box<dyn LicenseDatabase>> {
        self.server_db()?;
        database::open(&self.db, self.definitions.settings.query_timeout).map_err(|error| {
            match error {
                crate::licenses::query::QueryError::Missing(_) => Error::config(error),
                _ => Error::runtime(error),
            }
        })
    }

    /// The task called `name`, or a configuration error that says what there is.
    pub fn task(&self, name: &str) -> Result<&Task> {
        let definitions = &self.definitions;
        if let Some(problem) = definitions.broken("tasks", name) {
            return Err(Error::config(anyhow!("{problem}")));
        }
        definitions.task(name).ok_or_else(|| {
            Error::config(anyhow!(
                "no task is called `{name}` in {} (tasks: {}){}",
                definitions.dir.join("tasks").display(),
                crate::definitions::stems_and_names(&definitions.tasks, |t| (&t.stem, &t.name)),
                self.problems_hint()
            ))
        })
    }

    /// The search a task runs, or a configuration error naming the task file.
    pub fn search_of(&self, task: &Task) -> Result<&Search> {
        if let Some(problem) = self.definitions.broken_search(&task.search) {
            return Err(Error::config(anyhow!("{problem}")));
        }
        self.definitions.search_of(task).ok_or_else(|| {
            Error::config(anyhow!(
                "{}: field `search`: no search is called `{}`",
                task.path.display(),
                task.search
            ))
        })
    }

    /// Whether a run of `task` stops before it starts: its file, or its search's, has problems
    /// (or the search is missing). `next` and `list` show no times for it.
    pub fn refuses(&self, task: &Task) -> bool {
        self.ensure_valid(&task.path).is_err()
            || self
                .search_of(task)
                .and_then(|search| self.ensure_valid(&search.path))
                .is_err()
    }

    /// Fails if a definition file that `item` comes from has problems; the error says every
    /// one of them, a line each, as `check` does.
    pub fn ensure_valid(&self, file: &std::path::Path) -> Result<()> {
        match self.definitions.file_problems(file) {
            Some(problems) => Err(Error::config(anyhow!("{problems}"))),
            None => Ok(()),
        }
    }

    fn problems_hint(&self) -> String {
        match self.definitions.files_with_problems() {
            0 => String::new(),
            n => format!("; {n} definition file(s) have problems, see `keyhook check`"),
        }
    }
}

/// The machine's zone; a `TZ` that names no zone is said, not silently read as another.
fn machine_zone() -> chrono_tz::Tz {
    let (zone, warning) = zone::local_checked();
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    zone
}

/// A server URL given for the license database or the state that cannot be read (an unknown
/// `sslmode`, a bad schema name, a port that is not a number): a configuration error (exit 2)
/// before anything connects with it, not a database that could not be reached (exit 3).
fn server_url_problems(db: &Location, state: &state_db::Location) -> UrlProblems {
    UrlProblems {
        db: match db {
            Location::Postgres(url) => crate::licenses::postgres::connect::parse(url)
                .err()
                .map(|e| bad_server_url("--db (KEYHOOK_DB)", url, e.to_string())),
            Location::Sqlite(_) => None,
        },
        state: match state {
            state_db::Location::Postgres(url) => crate::state::postgres::check_url(url)
                .err()
                .map(|reason| bad_server_url("--state (KEYHOOK_STATE)", url, reason)),
            state_db::Location::File(_) => None,
        },
    }
}

/// What to say of a server URL given with `flag` that cannot be read for `reason`; the URL
/// shown without its password.
pub fn bad_server_url(flag: &str, url: &str, reason: String) -> String {
    format!(
        "{flag}: the URL {} cannot be used: {reason}; fix it (for example \
         `postgres://user@host/db?sslmode=verify-full`)",
        crate::licenses::postgres::connect::redact(url)
    )
}

/// Shorthand for a command that finished without failures.
pub fn success() -> Result {
    Ok(Exit::Success)
}

/// A search that could not be evaluated: the search's fault is a configuration error, the
/// database's an operational one. Either way the message names the search file.
pub fn query_error(search: &Search, error: crate::licenses::query::QueryError) -> Error {
    let message = anyhow!(
        "search `{}` ({}): {error}",
        search.name,
        search.path.display()
    );
    if let crate::licenses::query::QueryError::Stopped(signal) = error {
        return Error {
            exit: Exit::Interrupted(signal),
            inner: message,
        };
    }
    if error.is_search_fault() {
        Error::config(message)
    } else {
        Error::runtime(message)
    }
}

/// The scheduled slot a run of `task` now is for: the most recent one at or before now.
pub fn current_slot(context: &Context, task: &Task) -> Result<Option<i64>> {
    let zone = context.zone_of(task);
    Ok(task
        .schedule
        .latest_at_or_before(context.clock.now(), zone)
        .map(|slot| slot.timestamp()))
}

/// When and in which zone placeholders are computed: now, in the task's zone if it sets one.
pub fn moment(context: &Context, task: Option<&Task>) -> Moment {
    Moment {
        now: context.clock.now(),
        zone: task.map_or(context.clock.zone(), |task| context.zone_of(task)),
    }
}

/// `[date]` for a run of `task` now, from what the state database knows of it.
pub fn date_placeholder(
    context: &Context,
    task: &Task,
    state: &crate::state::runs::TaskState,
) -> i64 {
    let history = History {
        last_run: state.last_run,
        first_seen: state.first_seen,
    };
    placeholders::last_run(
        &history,
        task.first_run_since.as_ref(),
        moment(context, Some(task)),
    )
}

/// Says what is wrong when a task's `first_run_since` names a time later than now: its first
/// run's `[date]` would be in the future.
///
/// Only a first run takes `first_run_since`: with a `last_run` recorded, nothing is wrong.
pub fn first_run_since_ahead(
    context: &Context,
    task: &Task,
    last_run: Option<i64>,
) -> Option<String> {
    if last_run.is_some() {
        return None;
    }
    let crate::definitions::task::FirstRunSince::Time(time) = task.first_run_since.as_ref()? else {
        return None;
    };
    let at = clock::resolve_local(*time, context.zone_of(task))?;
    let now = context.clock.now();
    (at > now).then(|| {
        format!(
            "field `first_run_since`: {} is later than now ({}): the first run's [date] would be \
             in the future; give a past time, or an age such as \"30d\"",
            time.format("%Y-%m-%dT%H:%M:%S"),
            sending::local_time(context, now.timestamp())
        )
    })
}

/// The values of a search's placeholders now, in the task's zone if it sets one; a value
/// that cannot be computed is a configuration error naming the search file.
pub fn placeholder_values(
    context: &Context,
    task: Option<&Task>,
    search: &Search,
    last_run: Option<i64>,
) -> Result<Vec<chrono::NaiveDateTime>> {
    placeholders::values(&search.template, moment(context, task), last_run)
        .map_err(|error| Error::config(anyhow!("{}: field `sql`: {error}", search.path.display())))
}

/// Says how many definition files have problems, if any do: a listing that leaves their
/// tasks out must not look whole.
pub fn say_broken_files(context: &Context, out: &mut impl Write) -> std::io::Result<()> {
    let definitions = &context.definitions;
    if definitions.problems.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{} definition file(s) have problems; run `keyhook check` to see them.",
        definitions.files_with_problems()
    )
}

/// Says what is wrong when a task's state holds a time later than now (its last slot, last
/// run or first sighting), as a wrong clock, `--now` or a stale `KEYHOOK_NOW` leaves it:
/// `run-due` would not run the task until then, and `[date]` would be in the future.
pub fn future_state(
    context: &Context,
    task: &Task,
    state: &crate::state::runs::TaskState,
) -> Option<String> {
    let now = context.clock.now().timestamp();
    let (what, at) = future_mark(context, state)?;
    Some(format!(
        "task `{}`: its {what} is recorded at {}, later than now ({}), so `run-due` will not \
         run it until then (was the clock, --now or KEYHOOK_NOW wrong?); \
         `keyhook set-last-run {} <time>` moves it back",
        task.stem,
        sending::local_time(context, at),
        sending::local_time(context, now),
        task.stem
    ))
}

/// What of a task's state lies ahead of now (`last slot`, `last run`, `first sighting`), and
/// when: `run-due` will not run the task before then.
pub fn future_mark(
    context: &Context,
    state: &crate::state::runs::TaskState,
) -> Option<(&'static str, i64)> {
    let now = context.clock.now().timestamp();
    [
        ("last slot", state.last_slot),
        ("last run", state.last_run),
        ("first sighting", Some(state.first_seen)),
    ]
    .into_iter()
    .find_map(|(what, at)| at.filter(|at| *at > now).map(|at| (what, at)))
}

/// Where the next runs of `task` are looked for: now, or later when its state lies ahead
/// ([`future_mark`]), as `run-due` will see it.
pub fn next_from(
    context: &Context,
    task: &Task,
    states: &[(String, crate::state::runs::TaskState)],
) -> chrono::DateTime<chrono::Utc> {
    let now = context.clock.now();
    states
        .iter()
        .find(|(stem, _)| *stem == task.stem)
        .and_then(|(_, state)| future_mark(context, state))
        .and_then(|(_, at)| chrono::DateTime::from_timestamp(at, 0))
        .map_or(now, |at| at.max(now))
}

/// What the state holds of `task`, or a task first seen now when it holds nothing (or there
/// is no state file: it is read only if it exists).
pub fn preview_state(context: &Context, task: &Task) -> Result<crate::state::runs::TaskState> {
    let mut known = None;
    if context.state_exists()? {
        let states = context.open_state()?.task_states()?;
        known = states
            .into_iter()
            .find(|(stem, _)| *stem == task.stem)
            .map(|(_, state)| state);
    }
    Ok(known.unwrap_or(crate::state::runs::TaskState {
        first_seen: context.clock.now().timestamp(),
        ..Default::default()
    }))
}

/// The `[date]` a dry-run of `task` shows: its last run, else now (a first run counts from
/// when the task is first seen).
pub fn last_run_for_preview(context: &Context, task: &Task) -> Result<Option<i64>> {
    let task_state = preview_state(context, task)?;
    Ok(Some(date_placeholder(context, task, &task_state)))
}

/// `keyhook.toml`'s settings hold for every task and webhook: a command that reads them stops
/// on its problems (all of them said) rather than running with defaults.
fn refuse_broken_settings(context: &Context, command: &Command) -> Result<()> {
    let settings_problems = &context.definitions.settings_problems;
    if reads_settings(command) && !settings_problems.is_empty() {
        let problems: Vec<String> = settings_problems.iter().map(ToString::to_string).collect();
        return Err(Error::config(anyhow!(
            "{}\nkeyhook.toml's settings hold for every task and webhook (the time zone, \
             webhooks_enabled, the deadlines), so nothing runs with defaults in their place; \
             fix the file (`keyhook check` lists every problem)",
            problems.join("\n")
        )));
    }
    Ok(())
}

//! The state boundary: one enum over the two back ends, so every command is written once. The
//! SQLite state is [`StateDb`] (the rest of this folder); the server's is [`PgState`]. The
//! send loop sees only [`DeliveryQueue`], a dispatch pass only [`EventStore`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::deliveries::{
    AttemptEntry, BadRowEntry, Claimed, Found, LogEntry, LogFilter, Outcome, Queue,
};
use super::events::EventDelivery;
use super::postgres::{Identity, PgState};
use super::runs::{RunSummary, TaskState};
use super::sources::SourceSummary;
use super::{EventStore, StateDb, StateError};

pub use super::postgres::{SlotClaim, SlotRun};

/// Where the state is: `--state` as given.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL is a server; anything else is a file path.
    pub fn parse(state: &Path) -> Location {
        let text = state.to_string_lossy();
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(text.into_owned())
        } else {
            Location::File(state.to_path_buf())
        }
    }
}

/// What the send loop needs of a state: claim, record, give back.
pub trait DeliveryQueue {
    /// Claims up to `limit` deliveries of `queue` for `claimer`, oldest first.
    fn claim(
        &self,
        queue: Queue,
        claimer: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError>;
    /// Gives back the claims of `claimer` (or, with `None`, those a dead sender left).
    fn release_claims(&self, task: &str, claimer: Option<&str>) -> Result<(), StateError>;
    /// Commits attempts and their deliveries' new statuses together.
    fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError>;
    /// Records a 410 Gone (or, with `None`, re-enables).
    fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError>;
    /// How long a claim lasts before another sender may take it over; `None` when claims
    /// last until given back (SQLite, where the task's lock keeps other senders out).
    fn lease(&self) -> Option<Duration> {
        None
    }
    /// Extends this sender's live claims on `source` by a lease.
    fn renew_claims(&self, source: &str) -> Result<(), StateError> {
        let _ = source;
        Ok(())
    }
    /// How many deliveries claims gave up (dead, unsent) since the last call: a SQLite
    /// state's whose stored body is damaged. The sender counts them with its dead ones.
    fn take_given_up(&self) -> u64 {
        0
    }
}

impl DeliveryQueue for StateDb {
    fn claim(
        &self,
        queue: Queue,
        claimer: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError> {
        StateDb::claim(self, queue, claimer, now, limit)
    }
    fn release_claims(&self, task: &str, claimer: Option<&str>) -> Result<(), StateError> {
        StateDb::release_claims(self, task, claimer)
    }
    fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        StateDb::record_attempts(self, outcomes)
    }
    fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError> {
        StateDb::set_webhook_gone(self, source, at)
    }
    fn take_given_up(&self) -> u64 {
        self.given_up.take()
    }
}

impl DeliveryQueue for PgState {
    /// The claimer is this process (host and pid), whatever the send loop calls itself.
    fn claim(
        &self,
        queue: Queue,
        _claimer: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StateError> {
        PgState::claim(self, queue, now, limit)
    }
    fn release_claims(&self, task: &str, _claimer: Option<&str>) -> Result<(), StateError> {
        PgState::release_claims(self, task)
    }
    fn record_attempts(&self, outcomes: &[Outcome]) -> Result<(), StateError> {
        PgState::record_attempts(self, outcomes)
    }
    fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError> {
        PgState::set_webhook_gone(self, source, at)
    }
    fn lease(&self) -> Option<Duration> {
        Some(self.lease())
    }
    fn renew_claims(&self, source: &str) -> Result<(), StateError> {
        PgState::renew_claims(self, source)
    }
}

/// An open state, on either back end.
pub enum State {
    Sqlite(StateDb),
    Postgres(PgState),
}

/// Calls the same method on whichever back end is open.
macro_rules! each {
    ($self:expr, $state:ident => $call:expr) => {
        match $self {
            State::Sqlite($state) => $call,
            State::Postgres($state) => $call,
        }
    };
}

impl State {
    /// Opens (creating and migrating) the state at `location`.
    pub fn open(location: &Location, identity: &Identity) -> Result<State, StateError> {
        match location {
            Location::File(path) => {
                StateDb::open(path).map(|state| State::Sqlite(state.with_host(&identity.host)))
            }
            Location::Postgres(url) => PgState::open(url, identity.clone()).map(State::Postgres),
        }
    }

    /// The send loop's view of it.
    pub fn queue(&self) -> &dyn DeliveryQueue {
        each!(self, state => state)
    }

    /// Whether several hosts may share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, State::Postgres(_))
    }

    /// Outcomes left unrecorded since the last call because another host took over their
    /// delivery after the lease ran out (always 0 on SQLite).
    pub fn take_lost_leases(&self) -> u64 {
        match self {
            State::Sqlite(_) => 0,
            State::Postgres(state) => state.take_lost_leases(),
        }
    }

    /// Claims a scheduled slot for this host: always this host's on SQLite, where the task's
    /// file lock and the recorded run decide.
    pub fn claim_slot(&self, task: &str, slot: i64) -> Result<SlotClaim, StateError> {
        match self {
            State::Sqlite(_) => Ok(SlotClaim::Won),
            State::Postgres(state) => state.claim_slot(task, slot),
        }
    }

    /// Where the run of a slot another host claimed stands: over at once on SQLite, where
    /// no other host sends.
    pub fn slot_run(&self, task: &str, slot: i64) -> Result<SlotRun, StateError> {
        match self {
            State::Sqlite(_) => Ok(SlotRun::Over),
            State::Postgres(state) => state.slot_run(task, slot),
        }
    }

    /// Gives back a slot claim whose run could not start.
    pub fn release_slot(&self, task: &str, slot: i64) -> Result<(), StateError> {
        match self {
            State::Sqlite(_) => Ok(()),
            State::Postgres(state) => state.release_slot(task, slot),
        }
    }

    pub fn task_state(&self, task: &str, now: i64) -> Result<TaskState, StateError> {
        each!(self, state => state.task_state(task, now))
    }

    pub fn task_states(&self) -> Result<Vec<(String, TaskState)>, StateError> {
        each!(self, state => state.task_states())
    }

    pub fn see_tasks(
        &self,
        tasks: &[&str],
        now: i64,
    ) -> Result<Vec<(String, TaskState)>, StateError> {
        each!(self, state => state.see_tasks(tasks, now))
    }

    pub fn record_skip(
        &self,
        task: &str,
        name: &str,
        slot: i64,
        now: i64,
        why: &str,
    ) -> Result<(), StateError> {
        each!(self, state => state.record_skip(task, name, slot, now, why))
    }

    pub fn slot_ran(&self, task: &str, slot: i64) -> Result<bool, StateError> {
        each!(self, state => state.slot_ran(task, slot))
    }

    /// The run of `slot` that never finished (a kill, a stop), if there is one.
    pub fn unfinished_run(&self, task: &str, slot: i64) -> Result<Option<i64>, StateError> {
        each!(self, state => state.unfinished_run(task, slot))
    }

    pub fn finish_run(&self, run_id: i64, now: i64) -> Result<(), StateError> {
        each!(self, state => state.finish_run(run_id, now))
    }

    pub fn latest_runs(&self) -> Result<Vec<RunSummary>, StateError> {
        each!(self, state => state.latest_runs())
    }

    pub fn latest_skips(&self) -> Result<Vec<RunSummary>, StateError> {
        each!(self, state => state.latest_skips())
    }

    pub fn tasks_with_due(&self, now: i64) -> Result<Vec<String>, StateError> {
        each!(self, state => state.tasks_with_due(now))
    }

    /// Whether `source` is an event webhook's URL.
    pub fn is_webhook_source(&self, source: &str) -> Result<bool, StateError> {
        each!(self, state => state.is_webhook_source(source))
    }

    /// Which kinds of deliveries of `source` wait: (event deliveries, task deliveries).
    pub fn pending_kinds(&self, source: &str) -> Result<(bool, bool), StateError> {
        each!(self, state => state.pending_kinds(source))
    }

    /// A dispatch pass's view of it.
    pub fn events(&mut self) -> &mut dyn EventStore {
        each!(self, state => state)
    }

    /// The last outbox seq dispatch took from `license_db`, 0 when none yet.
    pub fn outbox_cursor(&self, license_db: &str) -> Result<i64, StateError> {
        each!(self, state => state.outbox_cursor(license_db))
    }

    /// Records that `source` (an event webhook's URL) is in use; returns when a 410 disabled it.
    /// The URL is kept as it is shown, a password or token in it masked: the state file and
    /// the server's table are read by more people than the webhook files.
    pub fn see_source(
        &self,
        source: &str,
        webhook: &str,
        url: &str,
        now: i64,
    ) -> Result<Option<i64>, StateError> {
        let url = &crate::definitions::url::shown_url(url);
        each!(self, state => state.see_source(source, webhook, url, now))
    }

    pub fn record_deliveries(
        &mut self,
        deliveries: &[EventDelivery],
        now: i64,
    ) -> Result<Vec<i64>, StateError> {
        each!(self, state => state.record_deliveries(deliveries, now))
    }

    /// Per task, how many deliveries wait (pending or failed) over all its runs.
    pub fn waiting_by_task(&self) -> Result<Vec<(String, i64)>, StateError> {
        each!(self, state => state.waiting_by_task())
    }

    /// How many of `source`'s deliveries wait behind an earlier one of the same entity that is
    /// pending or failed.
    pub fn held_back(&self, source: &str) -> Result<i64, StateError> {
        each!(self, state => state.held_back(source))
    }

    pub fn source_summaries(&self) -> Result<Vec<SourceSummary>, StateError> {
        each!(self, state => state.source_summaries())
    }

    /// Each source of `webhook` and the URL it was last sent to, as shown.
    pub fn source_urls(&self, webhook: &str) -> Result<Vec<(String, String)>, StateError> {
        each!(self, state => state.source_urls(webhook))
    }

    /// Records a 410 Gone on a task or webhook source (or, with `None`, re-enables it).
    pub fn set_webhook_gone(&self, source: &str, at: Option<i64>) -> Result<(), StateError> {
        each!(self, state => state.set_webhook_gone(source, at))
    }

    /// Re-enables every URL of an event webhook; how many were disabled.
    pub fn enable_webhook(&self, webhook: &str) -> Result<usize, StateError> {
        each!(self, state => state.enable_webhook(webhook))
    }

    pub fn set_last_run(
        &self,
        task: &str,
        at: i64,
        slot: Option<i64>,
        now: i64,
    ) -> Result<(), StateError> {
        each!(self, state => state.set_last_run(task, at, slot, now))
    }

    /// Forgets settled runs started before `before`; how many deliveries went with them.
    pub fn prune(&self, before: i64) -> Result<u64, StateError> {
        each!(self, state => state.prune(before))
    }

    pub fn find_deliveries(&self, id: &str, limit: usize) -> Result<Vec<Found>, StateError> {
        each!(self, state => state.find_deliveries(id, limit))
    }

    pub fn requeue(&self, seq: i64, now: i64) -> Result<(), StateError> {
        each!(self, state => state.requeue(seq, now))
    }

    /// Gives up `task`'s waiting deliveries (dead, `reason` their last error); how many.
    pub fn give_up(&self, task: &str, reason: &str, now: i64) -> Result<u64, StateError> {
        each!(self, state => state.give_up(task, reason, now))
    }

    pub fn log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StateError> {
        each!(self, state => state.log(filter))
    }

    pub fn bad_rows(&self, filter: &LogFilter) -> Result<Vec<BadRowEntry>, StateError> {
        each!(self, state => state.bad_rows(filter))
    }

    pub fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptEntry>, StateError> {
        each!(self, state => state.attempts(delivery_id))
    }
}

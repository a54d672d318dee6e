//! Recording: every item a source yields is in the state database, a pending delivery of a new
//! run, before the first POST. All or nothing: no part of the run counts as recorded until it
//! commits (one transaction; on a SQLite state, a big run in marked pieces: see `RunRecorder`).

use super::id;
use crate::licenses::license_info::PackedInfo;
use crate::state::deliveries::RunRecorder;
use crate::state::postgres::PgRecorder;
use crate::state::{State, StateError};

/// A run about to be recorded.
pub struct NewRun<'a> {
    /// The source the deliveries belong to (a task's stem).
    pub source: &'a str,
    /// Its name, as shown.
    pub name: &'a str,
    /// The scheduled slot it runs for; `None` for a forced run.
    pub slot: Option<i64>,
    pub now: i64,
    /// Whether the run sends: without it only the run, its count and its bad items are kept.
    pub sends: bool,
}

/// What a delivery is about: a license, by its id and activation key.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub license_id: i64,
    pub activation_key: &'a str,
}

/// Records the items of one run, all or none.
pub struct Recorder<'a> {
    run: Recording<'a>,
    sends: bool,
}

/// A run's open transaction, in whichever back end holds the state.
enum Recording<'a> {
    Sqlite(RunRecorder<'a>),
    Postgres(PgRecorder<'a>),
}

impl Recorder<'_> {
    /// Starts recording `run`: nothing of it is a run to other processes until
    /// [`Recorder::commit`].
    pub fn begin<'a>(state: &'a mut State, run: &NewRun) -> Result<Recorder<'a>, StateError> {
        let (source, name, slot, now, sends) = (run.source, run.name, run.slot, run.now, run.sends);
        let recording = match state {
            State::Sqlite(state) => {
                Recording::Sqlite(state.begin_run(source, name, slot, now, sends)?)
            }
            State::Postgres(state) => {
                Recording::Postgres(state.begin_run(source, name, slot, now, sends)?)
            }
        };
        Ok(Recorder {
            run: recording,
            sends: run.sends,
        })
    }

    /// Whether items become deliveries: a source need not build a body otherwise.
    pub fn sends(&self) -> bool {
        self.sends
    }

    /// Whether the state keeps a task's bodies packed ([`Recorder::add_packed`]): a SQLite
    /// state does, a PostgreSQL one keeps them as they are sent.
    pub fn packs(&self) -> bool {
        matches!(self.run, Recording::Sqlite(_))
    }

    /// Records one pending delivery of `body`, under a new delivery id.
    pub fn add(&mut self, subject: Subject, body: &[u8]) -> Result<(), StateError> {
        self.add_parts(subject, &[body])
    }

    /// [`Recorder::add`] for a body given in pieces, stored end to end as one: a task's
    /// envelope around each license's `LicenseInfo`, copied once, into the run.
    pub fn add_parts(&mut self, subject: Subject, body: &[&[u8]]) -> Result<(), StateError> {
        if !self.sends {
            return Ok(());
        }
        let (id, license_id, key) = (id::new(), subject.license_id, subject.activation_key);
        match &mut self.run {
            Recording::Sqlite(run) => run.add(&id, license_id, key, body),
            Recording::Postgres(run) => run.add(&id, license_id, key, &body.concat()),
        }
    }

    /// [`Recorder::add_parts`] for a license's body given as its envelope's `head` and `tail`
    /// around its `LicenseInfo` packed ([`Recorder::packs`]).
    pub fn add_packed(
        &mut self,
        subject: Subject,
        head: &[u8],
        info: PackedInfo,
        tail: &[u8],
    ) -> Result<(), StateError> {
        if !self.sends {
            return Ok(());
        }
        let (id, license_id, key) = (id::new(), subject.license_id, subject.activation_key);
        match &mut self.run {
            Recording::Sqlite(run) => run.add_packed(&id, license_id, key, head, info, tail),
            Recording::Postgres(_) => {
                unreachable!("a PostgreSQL state is given bodies whole (Recorder::packs)")
            }
        }
    }

    /// Records an item the source could not make (a license row that cannot be read): kept
    /// with the run, never sent.
    pub fn add_bad(&mut self, subject: Subject, reason: &str) -> Result<(), StateError> {
        let (license_id, key) = (subject.license_id, subject.activation_key);
        match &mut self.run {
            Recording::Sqlite(run) => run.add_bad(license_id, key, reason),
            Recording::Postgres(run) => run.add_bad(license_id, key, reason),
        }
    }

    /// Commits the run with `matched`, every item the source reached; returns the run id.
    pub fn commit(self, matched: u64) -> Result<i64, StateError> {
        match self.run {
            Recording::Sqlite(run) => run.commit(matched),
            Recording::Postgres(run) => run.commit(matched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDb;
    use crate::state::deliveries::{LogFilter, Queue};

    fn run(sends: bool) -> NewRun<'static> {
        NewRun {
            source: "renewals",
            name: "Renewals",
            slot: None,
            now: 1000,
            sends,
        }
    }

    fn subject(license_id: i64) -> Subject<'static> {
        Subject {
            license_id,
            activation_key: "KEY",
        }
    }

    #[test]
    fn a_run_is_recorded_whole_and_only_its_deliveries_are_queued() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::Sqlite(StateDb::open(&dir.path().join("state.db")).unwrap());
        let mut recorder = Recorder::begin(&mut state, &run(true)).unwrap();
        recorder.add(subject(1), b"{\"a\":1}").unwrap();
        recorder.add(subject(2), b"{\"a\":2}").unwrap();
        recorder.add_bad(subject(3), "unreadable").unwrap();
        let run_id = recorder.commit(3).unwrap();
        let claimed = state
            .queue()
            .claim(Queue::Run("renewals", run_id), "me", 1000, 10)
            .unwrap();
        let bodies: Vec<&[u8]> = claimed.iter().map(|c| c.body.as_slice()).collect();
        assert_eq!(bodies, [b"{\"a\":1}".as_slice(), b"{\"a\":2}"]);
        assert!(claimed.iter().all(|c| c.id.starts_with("msg_")));
        assert_eq!(state.bad_rows(&LogFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn a_run_that_does_not_send_keeps_no_deliveries_and_an_unfinished_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::Sqlite(StateDb::open(&dir.path().join("state.db")).unwrap());
        let mut recorder = Recorder::begin(&mut state, &run(false)).unwrap();
        assert!(!recorder.sends());
        recorder.add(subject(1), b"{}").unwrap();
        recorder.commit(1).unwrap();
        let mut recorder = Recorder::begin(&mut state, &run(true)).unwrap();
        recorder.add(subject(2), b"{}").unwrap();
        drop(recorder);
        assert!(state.log(&LogFilter::default()).unwrap().is_empty());
    }
}

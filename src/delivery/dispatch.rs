//! The dispatcher: claims deliveries from the state database for worker threads that sign
//! and POST them, and commits the attempts' outcomes in groups, within a few milliseconds of
//! their answers; it halts on a stop or a 410 Gone. Every source's deliveries go out through [`send`].

mod pipeline;
mod worker;

use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use self::pipeline::{Answered, Halt, Pipeline, Shared};
use self::worker::post_jobs;
use super::http::Attempt;
use super::id;
use super::pace::Pace;
use super::retry::Decision;
use super::target::Target;
use crate::schedule::clock::Clock;
use crate::state::deliveries::{AttemptRecord, Claimed, Outcome, Queue, Status};
use crate::state::{DeliveryQueue, StateError};

/// One attempt, as it happens.
pub struct Event<'a> {
    pub delivery: &'a Claimed,
    pub attempt: &'a Attempt,
    /// The delivery's status after the attempt.
    pub status: Status,
    /// Why it will not be retried, for a dead delivery.
    pub reason: Option<&'a str>,
}

/// Why sending stopped short.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    State(#[from] StateError),
    /// Not every sending thread could be started; nothing was sent, what was recorded stays
    /// pending.
    #[error(
        "could not start sending thread {number} of {wanted} ({error}){}. Nothing was sent: \
         the deliveries stay pending, and `keyhook retry` (or `run-due`) sends them",
        thread_limit_hint(.error, true)
    )]
    Threads {
        number: usize,
        wanted: usize,
        error: std::io::Error,
    },
    /// A sending thread panicked (a bug): the others finished their request and the answers
    /// were committed; what it held stays pending.
    #[error(
        "a sending thread stopped on an internal error ({message}); what it had not sent stays \
         pending for `keyhook retry`. Please report it"
    )]
    Panicked { message: String },
}

impl SendError {
    /// Whether the error is this source's own (a thread), not the state database's: the other
    /// sources of a `retry`, `run-due` or `dispatch` are still sent.
    pub fn is_source_local(&self) -> bool {
        !matches!(self, SendError::State(_))
    }
}

/// What to say after a thread could not be started: when it was a limit (EAGAIN), which limit
/// and what to do about it; `lower` adds lowering the concurrency.
pub fn thread_limit_hint(error: &std::io::Error, lower: bool) -> &'static str {
    match (error.kind() == std::io::ErrorKind::WouldBlock, lower) {
        (false, _) => "",
        (true, false) => {
            ": the limit on threads for this user or container is reached (`ulimit -u`, a \
             cgroup's pids.max); raise it"
        }
        (true, true) => {
            ": the limit on threads for this user or container is reached (`ulimit -u`, a \
             cgroup's pids.max); raise it, or lower `concurrency` (the task's or the webhook's, \
             or `run-task --concurrency`)"
        }
    }
}

/// What sending came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub delivered: u64,
    /// Failed, with another attempt scheduled.
    pub retrying: u64,
    pub dead: u64,
    /// The receiver answered 410 Gone: the webhook is now disabled.
    pub gone: bool,
    /// A stop was requested (SIGINT/SIGTERM); what was not sent stays pending.
    pub interrupted: bool,
}

/// An answered attempt waits at most this long before its commit starts (later only while
/// the commit or claim before it still runs). The dispatcher keeps this time itself: a worker
/// does not wake it when a group fills, only when it took the last claimed delivery or found
/// none (and more can be claimed), must wait for the commit ([`MAX_UNCOMMITTED`]), has
/// nothing out, or sees a halt.
///
/// Why its own timer: on a machine whose virtual CPUs pay dearly for a cross-CPU wakeup (a
/// rescheduling IPI, tens of µs of CPU each), a dispatcher woken by the sending thread every
/// few hundred answers is drawn to the sending thread's CPU, and the receiver then meets the
/// sender across CPUs on every round trip. Waking on its own timer, it stays where it slept
/// (`bench/README.md`, "Rescheduling IPIs").
pub const COMMIT_EVERY: Duration = Duration::from_millis(2);
/// Workers wait before their next POST while this many answers are not committed yet (and
/// wake the dispatcher), so a kill re-sends at most this many deliveries, plus two per
/// worker: the one in flight and the answer before it, handed in as the next request leaves.
pub const MAX_UNCOMMITTED: usize = 512;

/// Sends the deliveries of `queue` until none is left or `stop` is set, calling `observe`
/// after every attempt.
///
/// `target.concurrency` workers (1 by default: strictly one request at a time) each POST one
/// delivery at a time over their own keep-alive connection, while this thread alone touches
/// the state database: it claims deliveries in batches sized to the pace of the answers
/// ([`Pace`]; on a shared state it renews their lease every half lease) and commits the
/// outcomes in groups, within [`COMMIT_EVERY`] of an answer (workers stop before the next
/// POST while [`MAX_UNCOMMITTED`] wait). The threads meet through one lock, not a hand-off per
/// delivery: a worker takes its next delivery from the claimed ones and leaves its answer
/// with the others, and wakes this thread only for the reasons [`COMMIT_EVERY`] lists. A stop
/// or a 410 still halts before the next POST: the worker checks for both first.
pub fn send(
    state: &dyn DeliveryQueue,
    queue: Queue,
    target: &Target,
    clock: &Clock,
    stop: &AtomicBool,
    observe: &(dyn Fn(&Event) + Sync),
) -> Result<Tally, SendError> {
    let workers = target.concurrency.max(1);
    let claimer = format!("{}-{}", std::process::id(), &id::new()[16..]);
    let halt = Halt {
        stop,
        gone: AtomicBool::new(false),
    };
    let mut dispatcher = Dispatcher {
        state,
        queue,
        target,
        clock,
        halt: &halt,
        observe,
        claimer: &claimer,
        tally: Tally::default(),
        pace: Pace::new(workers),
        claimed_once: false,
    };
    let result = dispatcher.run_workers(workers);
    // Whatever was claimed but not sent (a stop, a 410) goes back to the queue.
    let released = state.release_claims(&target.source, Some(&claimer));
    result?;
    released?;
    let mut tally = dispatcher.tally;
    tally.interrupted = stop.load(Ordering::SeqCst);
    Ok(tally)
}

/// The name of sending thread `n` (from 1), as `top -H`, `ps -L` and perf show it: Linux keeps
/// 15 bytes of a thread's name, enough for every `n` up to
/// [`MAX_CONCURRENCY`](crate::definitions::task::MAX_CONCURRENCY).
fn sender_name(n: usize) -> String {
    format!("keyhook-send{n}")
}

/// Joins the workers; the message of the first that panicked, as an error.
fn join_workers(workers: Vec<std::thread::ScopedJoinHandle<'_, ()>>) -> Result<(), SendError> {
    let mut panicked = None;
    for worker in workers {
        if let Err(payload) = worker.join() {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            panicked.get_or_insert(message);
        }
    }
    match panicked {
        Some(message) => Err(SendError::Panicked { message }),
        None => Ok(()),
    }
}

/// Tells the workers that nothing more comes: each returns once it has nothing left.
fn finish_workers(pipeline: &Pipeline) {
    let mut shared = pipeline.lock();
    shared.no_more = true;
    shared.todo.clear();
    drop(shared);
    pipeline.ready.notify_all();
}

/// Lets the workers go if the dispatcher panics.
struct FinishOnUnwind<'p>(&'p Pipeline);

impl Drop for FinishOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            finish_workers(self.0);
        }
    }
}

/// The state-owning side of [`send`].
struct Dispatcher<'a> {
    state: &'a dyn DeliveryQueue,
    queue: Queue<'a>,
    target: &'a Target,
    clock: &'a Clock,
    halt: &'a Halt<'a>,
    observe: &'a (dyn Fn(&Event) + Sync),
    claimer: &'a str,
    tally: Tally,
    pace: Pace,
    /// Whether a claim was made: a [`Queue::One`] is claimed once.
    claimed_once: bool,
}

impl Dispatcher<'_> {
    /// `workers` threads POST while this one claims and commits. If not all of them can be
    /// started, those that were are let go before anything is claimed, and nothing is sent. If
    /// one panics, the run ends with what was answered committed: never a wait for a thread
    /// that is gone.
    fn run_workers(&mut self, workers: usize) -> Result<(), SendError> {
        let target = self.target;
        let pipeline = Pipeline::default();
        let halt = self.halt;
        std::thread::scope(|scope| {
            let mut started = Vec::with_capacity(workers);
            for n in 1..=workers {
                let pipeline = &pipeline;
                let spawned = std::thread::Builder::new()
                    .name(sender_name(n))
                    .spawn_scoped(scope, move || post_jobs(target, pipeline, halt));
                match spawned {
                    Ok(handle) => started.push(handle),
                    Err(error) => {
                        finish_workers(pipeline);
                        join_workers(started)?;
                        return Err(SendError::Threads {
                            number: n,
                            wanted: workers,
                            error,
                        });
                    }
                }
            }
            // A panic here (a bug) must not leave the workers waiting for claims forever: the
            // scope joins them before it passes the panic on.
            let finish = FinishOnUnwind(&pipeline);
            let result = self.run(&pipeline);
            drop(finish);
            // Done, or stopped short (an error, a panicked worker): either way the workers
            // stop. What they answer from now on is not committed, and goes out again with the
            // same ids.
            finish_workers(&pipeline);
            join_workers(started)?;
            Ok(result?)
        })
    }

    fn run(&mut self, pipeline: &Pipeline) -> Result<(), StateError> {
        let mut shared = pipeline.lock();
        loop {
            if shared.crashed {
                // A worker panicked (`run_workers` says so once it has joined it): what is
                // answered is committed, and nothing more is claimed or waited for.
                if !shared.done.is_empty() {
                    let committed;
                    (shared, committed) = self.commit_arrived(pipeline, shared);
                    committed?;
                    continue;
                }
                return Ok(());
            }
            if self.pace.renew_due(self.state.lease(), Instant::now()) {
                drop(shared);
                self.state.renew_claims(&self.target.source)?;
                shared = pipeline.lock();
                continue;
            }
            if self.halt.is_up() && !shared.no_more {
                // Unsent deliveries (after a stop or a 410) stay claimed until `send`
                // releases them; the workers hand back what they take from now on.
                shared.no_more = true;
                pipeline.ready.notify_all();
            }
            if !shared.no_more && !shared.exhausted && shared.todo.len() <= self.pace.low_water() {
                drop(shared);
                shared = self.claim_more(pipeline)?;
                continue;
            }
            let now = Instant::now();
            let due = shared.oldest.map(|oldest| oldest + COMMIT_EVERY);
            let idle = shared.idle();
            if !shared.done.is_empty()
                && (idle
                    || shared.uncommitted_full()
                    || due.is_some_and(|due| due <= now)
                    || self.halt.is_up())
            {
                let committed;
                (shared, committed) = self.commit_arrived(pipeline, shared);
                committed?;
                continue;
            }
            if idle && (shared.exhausted || shared.no_more) {
                shared.no_more = true;
                pipeline.ready.notify_all();
                return Ok(());
            }
            // Asleep until the oldest answer is due or a worker wakes it (see COMMIT_EVERY),
            // at most COMMIT_EVERY: claims running low and a stop are noticed by then too.
            let sleep = due.map_or(COMMIT_EVERY, |due| due.saturating_duration_since(now));
            shared.dispatcher_waits = true;
            shared = pipeline
                .wake
                .wait_timeout(shared, sleep)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            shared.dispatcher_waits = false;
        }
    }

    /// Claims the next batch for the workers (as many as the pace says), noting whether it
    /// came back short: then claiming again finds nothing until a commit.
    fn claim_more<'p>(
        &mut self,
        pipeline: &'p Pipeline,
    ) -> Result<MutexGuard<'p, Shared>, StateError> {
        let now = self.clock.tick().timestamp();
        let wanted = self.pace.batch();
        // One delivery (`resend`) is sent once: claimed again after its failure (it is due
        // whenever for this queue), it went out again at once until its retries ran out.
        let batch = match (self.queue, self.claimed_once) {
            (Queue::One(..), true) => Vec::new(),
            _ => self.state.claim(self.queue, self.claimer, now, wanted)?,
        };
        self.claimed_once = true;
        // Given up by the claim (a damaged stored body): dead, never sent.
        self.tally.dead += self.state.take_given_up();
        if !batch.is_empty() {
            self.pace.claimed(self.state.lease(), Instant::now());
        }
        let mut shared = pipeline.lock();
        shared.exhausted = batch.len() < wanted;
        shared.todo.extend(batch);
        if shared.workers_wait > 0 {
            pipeline.ready.notify_all();
        }
        Ok(shared)
    }

    /// Commits the answers waiting in `shared` (the lock let go meanwhile), then lets the
    /// workers that waited for it go on.
    fn commit_arrived<'p>(
        &mut self,
        pipeline: &'p Pipeline,
        mut shared: MutexGuard<'p, Shared>,
    ) -> (MutexGuard<'p, Shared>, Result<(), StateError>) {
        let group = std::mem::take(&mut shared.done);
        shared.oldest = None;
        shared.committing = group.len();
        drop(shared);
        let committed = self.commit(group);
        let mut shared = pipeline.lock();
        shared.committing = 0;
        shared.exhausted = false;
        if shared.workers_wait > 0 {
            pipeline.ready.notify_all();
        }
        (shared, committed)
    }

    /// Stores what the attempts that arrived make of their deliveries, in one transaction,
    /// then reports them. The policy decides; this writes.
    fn commit(&mut self, arrived: Vec<Answered>) -> Result<(), StateError> {
        // Unsent deliveries (after a stop or a 410) stay claimed until `send` releases them.
        let arrived: Vec<(Claimed, Attempt)> = arrived
            .into_iter()
            .filter_map(|(delivery, attempt)| Some((delivery, attempt?)))
            .collect();
        if arrived.is_empty() {
            return Ok(());
        }
        self.pace
            .observe(arrived.iter().map(|(_, attempt)| attempt.duration));
        let finished = self.clock.tick().timestamp_millis();
        let mut outcomes = Vec::with_capacity(arrived.len());
        let mut reasons = Vec::with_capacity(arrived.len());
        let mut gone = false;
        for (delivery, attempt) in &arrived {
            let decision = self.target.policy.verdict(
                attempt,
                delivery.attempts,
                delivery.created_at,
                finished,
            );
            gone |= decision.gone;
            outcomes.push(outcome(delivery, attempt, &decision, finished));
            reasons.push(decision.reason);
        }
        if gone {
            self.halt.gone.store(true, Ordering::SeqCst);
            let now = finished.div_euclid(1000);
            self.state
                .set_webhook_gone(&self.target.source, Some(now))?;
        }
        self.state.record_attempts(&outcomes)?;
        for (((delivery, attempt), outcome), reason) in arrived.iter().zip(&outcomes).zip(&reasons)
        {
            self.count(outcome.status, attempt.status == Some(410));
            let event = Event {
                delivery,
                attempt,
                status: outcome.status,
                reason: reason.as_deref(),
            };
            (self.observe)(&event);
        }
        Ok(())
    }

    fn count(&mut self, status: Status, gone: bool) {
        match status {
            Status::Delivered => self.tally.delivered += 1,
            Status::Failed => self.tally.retrying += 1,
            Status::Dead => self.tally.dead += 1,
            Status::Pending => {}
        }
        self.tally.gone |= gone;
    }
}

/// An attempt as stored, and the state it leaves its delivery in.
fn outcome(delivery: &Claimed, attempt: &Attempt, decision: &Decision, at_ms: i64) -> Outcome {
    let error = attempt
        .error
        .as_deref()
        .map(|error| match &decision.reason {
            Some(reason) => format!("{error} ({reason})"),
            None => error.to_string(),
        });
    Outcome {
        seq: delivery.seq,
        n: delivery.attempts + 1,
        attempt: AttemptRecord {
            at_ms,
            status: attempt.status,
            error,
            duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
            excerpt: attempt.excerpt.clone(),
        },
        status: decision.status,
        next_attempt_at: decision.next_attempt_at,
    }
}

#[cfg(test)]
mod tests {
    use super::pipeline::Pipeline;
    use super::{FinishOnUnwind, sender_name, worker};
    use crate::definitions::task::MAX_CONCURRENCY;

    #[test]
    fn a_dispatcher_that_panics_lets_its_waiting_workers_go() {
        let pipeline = Pipeline::default();
        let (done, returned) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let waiting = &pipeline;
            scope.spawn(move || done.send(worker::take(waiting, true).is_none()));
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _finish = FinishOnUnwind(&pipeline);
                panic!("a bug in the dispatcher");
            }));
            assert!(unwound.is_err());
            let answer = returned.recv_timeout(std::time::Duration::from_secs(10));
            if answer.is_err() {
                // Let it go by hand, so that the test fails rather than hangs.
                super::finish_workers(&pipeline);
            }
            assert_eq!(
                answer,
                Ok(true),
                "the waiting worker took nothing and returned"
            );
        });
    }

    #[test]
    fn a_worker_that_panics_ends_the_run_with_an_error_and_its_deliveries_stay_pending() {
        use crate::delivery::record::{NewRun, Recorder, Subject};
        use crate::delivery::signature::{Scheme, Signer};
        use crate::delivery::target::{Endpoint, Target};
        use crate::secret::Secret;
        use crate::state::deliveries::Queue;
        use crate::state::{State, StateDb};
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let mut state = State::Sqlite(StateDb::open(&dir.path().join("state.db")).unwrap());
        let source = worker::tests::PANICS;
        let run = NewRun {
            source,
            name: "Panics",
            slot: None,
            now: 1000,
            sends: true,
        };
        let mut recorder = Recorder::begin(&mut state, &run).unwrap();
        for license_id in 1..=3 {
            let subject = Subject {
                license_id,
                activation_key: "KEY",
            };
            recorder.add(subject, b"{}").unwrap();
        }
        let run_id = recorder.commit(3).unwrap();
        let target = Target {
            source: source.to_string(),
            endpoint: Endpoint {
                // Never reached: the worker panics before its first POST.
                url: "http://127.0.0.1:9/".to_string(),
                timeout: Duration::from_secs(1),
                tls: Default::default(),
            },
            signer: Signer::new(&[Scheme::Qlm], &[Secret::new("key")]).unwrap(),
            policy: Default::default(),
            concurrency: 2,
        };
        drop(state);
        let path = dir.path().join("state.db");
        let clock = crate::schedule::clock::Clock::system(chrono_tz::UTC);
        let (ended, returned) = std::sync::mpsc::channel();
        // Not a scoped thread: without the guard it would wait forever, and the test must fail
        // rather than hang.
        let (target, clock): (&'static Target, &'static _) =
            (Box::leak(Box::new(target)), Box::leak(Box::new(clock)));
        let opened = path.clone();
        std::thread::spawn(move || {
            let db = StateDb::open(&opened).unwrap();
            let stop = AtomicBool::new(false);
            let queue = Queue::Run(source, run_id);
            let sent = super::send(&db, queue, target, clock, &stop, &|_| {});
            let _ = ended.send(sent.map_err(|error| error.to_string()));
        });
        let sent = returned
            .recv_timeout(Duration::from_secs(30))
            .expect("send ends, not waits for the delivery the panicked worker held");
        let error = sent.expect_err("a panicked worker is an error");
        assert!(
            error.contains("a sending thread stopped on an internal error")
                && error.contains("a bug in the sending thread"),
            "{error}"
        );
        let db = StateDb::open(&path).unwrap();
        let left = db
            .claim(Queue::Run(source, run_id), "later", 2000, 10)
            .unwrap();
        assert_eq!(
            left.len(),
            3,
            "every delivery is still pending, none claimed"
        );
    }

    #[test]
    fn every_sending_thread_has_a_name_of_its_own_within_linux_s_15_bytes() {
        let names: Vec<String> = (1..=MAX_CONCURRENCY).map(sender_name).collect();
        assert!(names.iter().all(|name| name.len() <= 15), "{names:?}");
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), MAX_CONCURRENCY);
        assert_eq!(names[0], "keyhook-send1");
    }
}

//! Running a task durably: record every match as a pending delivery in one transaction, then
//! send them, committing each attempt's outcome as soon as it is known.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use chrono::NaiveDateTime;

use super::http::{Attempt, DELIVERY_HEADER, Sender};
use super::retry::{RetryPolicy, Verdict};
use super::signature::Signer;
use super::tls::TlsOptions;
use super::{id, payload};
use crate::definitions::{Search, Task};
use crate::licenses::license_info::RowError;
use crate::licenses::query::{LicenseDb, QueryError};
use crate::schedule::clock::Clock;
use crate::state::deliveries::{AttemptRecord, Claimed, Outcome, Queue, Status};
use crate::state::{StateDb, StateError};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Where and how a task's deliveries are sent.
pub struct Target {
    pub task: String,
    pub url: String,
    pub signer: Signer,
    pub timeout: Duration,
    pub policy: RetryPolicy,
    /// Requests in flight at once, each on its own keep-alive connection.
    pub concurrency: usize,
    /// What an `https://` receiver must prove, and what keyhook proves to it.
    pub tls: TlsOptions,
}

impl Target {
    /// The target of a task, with its secret resolved and policy settled.
    pub fn new(task: &Task, signer: Signer, policy: RetryPolicy, tls: TlsOptions) -> Target {
        Target {
            tls,
            task: task.stem.clone(),
            url: task.webhook.url.clone(),
            signer,
            timeout: task.webhook.timeout,
            policy,
            concurrency: 1,
        }
    }
}

/// One attempt, as it happens.
pub struct Event<'a> {
    pub delivery: &'a Claimed,
    pub attempt: &'a Attempt,
    /// The delivery's status after the attempt.
    pub status: Status,
    /// Why it will not be retried, for a dead delivery.
    pub reason: Option<&'a str>,
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

/// What recording a run came to.
#[derive(Debug, Default)]
pub struct Recorded {
    pub run_id: i64,
    /// Every row the search reached, bad ones included.
    pub matched: u64,
    /// Rows that could not be read as a license: recorded with the run, never sent.
    pub bad_rows: u64,
    /// The first [`BAD_ROWS_SHOWN`] of them, to show.
    pub bad: Vec<RowError>,
}

/// How many bad rows a run keeps in memory to show (all are recorded).
pub const BAD_ROWS_SHOWN: usize = 100;

/// Records every match of `search` as a pending delivery of a new run, in one transaction,
/// before anything is sent; with `sent` false only the run, its match count and its bad rows
/// are recorded. A bad row is recorded as such and holds back no other.
#[allow(clippy::too_many_arguments)]
pub fn record(
    state: &mut StateDb,
    db: &mut LicenseDb,
    task: &Task,
    search: &Search,
    values: &[NaiveDateTime],
    slot: Option<i64>,
    now: i64,
    sent: bool,
) -> Result<Recorded, RunError> {
    let path = state.path().to_path_buf();
    let mut recorder = state.begin_run(&task.stem, &task.name, slot, now, sent)?;
    let mut failure = None;
    let mut recorded = Recorded::default();
    let matched = db.for_each(&search.template, values, |row| {
        let added = match row {
            Ok(_) if !sent => Ok(()),
            Ok(license) => {
                let body = payload::body(&task.name, &task.webhook.user_data, &license.info);
                let key = license.info.text("ActivationKey");
                recorder.add(&id::new(), license.id, &key, &body)
            }
            Err(bad) => {
                let added = recorder.add_bad(bad.id, &bad.key, &bad.to_string());
                recorded.bad_rows += 1;
                if recorded.bad.len() < BAD_ROWS_SHOWN {
                    recorded.bad.push(bad);
                }
                added
            }
        };
        added.map_err(|error| failure = Some(error)).is_ok()
    })?;
    let state_error = |source| StateError::Sql {
        path: path.clone(),
        source,
    };
    if let Some(error) = failure {
        return Err(state_error(error).into());
    }
    recorded.run_id = recorder.commit(matched).map_err(state_error)?;
    recorded.matched = matched;
    Ok(recorded)
}

/// Sends the deliveries of `queue` until none is left or `stop` is set, calling `observe`
/// after every attempt.
///
/// `target.concurrency` workers (1 by default: strictly one request at a time) each POST one
/// delivery at a time over their own keep-alive connection, while this thread alone touches
/// the state database: it claims deliveries, hands them out, and commits each outcome as soon
/// as it comes back (outcomes arriving together share a commit). Each worker has its next
/// delivery waiting before its current one is answered, so neither a commit nor a thread
/// hand-off sits between one request and the next; a stop or a 410 still halts before the
/// next POST, since the worker checks for both first.
pub fn send(
    state: &StateDb,
    queue: Queue,
    target: &Target,
    clock: &Clock,
    stop: &AtomicBool,
    observe: &(dyn Fn(&Event) + Sync),
) -> Result<Tally, StateError> {
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
        claimed: VecDeque::new(),
        tally: Tally::default(),
    };
    let result = dispatcher.run_workers(workers);
    // Whatever was claimed but not sent (a stop, a 410) goes back to the queue.
    state.release_claims(&target.task, Some(&claimer))?;
    result?;
    let mut tally = dispatcher.tally;
    tally.interrupted = stop.load(Ordering::SeqCst);
    Ok(tally)
}

impl Dispatcher<'_> {
    /// `workers` threads POST while this one claims, hands out and commits.
    fn run_workers(&mut self, workers: usize) -> Result<(), StateError> {
        let target = self.target;
        let (work, jobs) = mpsc::sync_channel::<Claimed>(workers);
        let jobs = Mutex::new(jobs);
        let (report, outcomes) = mpsc::channel::<(Claimed, Option<Attempt>)>();
        let halt = self.halt;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (jobs, report) = (&jobs, report.clone());
                scope.spawn(move || post_jobs(target, jobs, &report, halt));
            }
            drop(report);
            let result = self.run(&work, &outcomes, workers);
            // Closing the work channel lets the workers finish.
            drop(work);
            result
        })
    }
}

/// Why nothing more is sent: a stop was asked for (SIGINT/SIGTERM), or the webhook answered
/// 410 Gone. Both the dispatcher and every worker check it before the next POST.
struct Halt<'a> {
    stop: &'a AtomicBool,
    gone: AtomicBool,
}

impl Halt<'_> {
    fn is_up(&self) -> bool {
        self.gone.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst)
    }
}

/// A worker: takes one delivery at a time, signs it (fresh timestamp) and POSTs it, unless
/// `halt` is up: then the delivery goes back unsent (`None`).
fn post_jobs(
    target: &Target,
    jobs: &Mutex<mpsc::Receiver<Claimed>>,
    report: &mpsc::Sender<(Claimed, Option<Attempt>)>,
    halt: &Halt,
) {
    let sender = Sender::new(target.timeout, &target.tls);
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(delivery) = job else { return };
        let attempt = if halt.is_up() {
            None
        } else {
            let attempt = post_one(target, &sender, &delivery);
            if attempt.status == Some(410) {
                // Gone: nothing more goes to this webhook, from any worker.
                halt.gone.store(true, Ordering::SeqCst);
            }
            Some(attempt)
        };
        if report.send((delivery, attempt)).is_err() {
            return;
        }
    }
}

/// Signs one delivery (a fresh timestamp) and POSTs it.
fn post_one(target: &Target, sender: &Sender, delivery: &Claimed) -> Attempt {
    let signatures = target.signer.headers(&delivery.id, &delivery.body);
    let mut headers: Vec<(&str, &str)> = signatures
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    headers.push((DELIVERY_HEADER, delivery.id.as_str()));
    sender.post(&target.url, &delivery.body, &headers)
}

/// How many deliveries are claimed at once: few enough that a stop hands little back.
const CLAIM_BATCH: usize = 64;

/// The state-owning side of [`send`].
struct Dispatcher<'a> {
    state: &'a StateDb,
    queue: Queue<'a>,
    target: &'a Target,
    clock: &'a Clock,
    halt: &'a Halt<'a>,
    observe: &'a (dyn Fn(&Event) + Sync),
    claimer: &'a str,
    /// Claimed, not yet handed to a worker.
    claimed: VecDeque<Claimed>,
    tally: Tally,
}

impl Dispatcher<'_> {
    fn run(
        &mut self,
        work: &mpsc::SyncSender<Claimed>,
        outcomes: &mpsc::Receiver<(Claimed, Option<Attempt>)>,
        workers: usize,
    ) -> Result<(), StateError> {
        // One delivery out and one waiting per worker. (Handed out means claimed: a kill
        // re-sends at most these, with the same ids.)
        let depth = 2 * workers;
        let mut handed = 0;
        loop {
            handed += self.feed(work, depth - handed)?;
            if handed == 0 {
                return Ok(());
            }
            let Ok(first) = outcomes.recv() else {
                return Ok(());
            };
            let mut arrived = vec![first];
            arrived.extend(outcomes.try_iter());
            handed -= arrived.len();
            // Unsent deliveries (after a stop or a 410) stay claimed until `send` releases them.
            let sent: Vec<(Claimed, Attempt)> = arrived
                .into_iter()
                .filter_map(|(delivery, attempt)| Some((delivery, attempt?)))
                .collect();
            // Hand out the next deliveries first, so they are waiting during this commit.
            handed += self.feed(work, depth - handed)?;
            self.record(sent)?;
        }
    }

    /// Hands up to `room` deliveries to the workers; returns how many.
    fn feed(&mut self, work: &mpsc::SyncSender<Claimed>, room: usize) -> Result<usize, StateError> {
        let mut handed = 0;
        while handed < room && !self.halt.is_up() {
            let Some(delivery) = self.next()? else { break };
            if work.send(delivery).is_err() {
                break;
            }
            handed += 1;
        }
        Ok(handed)
    }

    /// The next delivery to send, claiming a batch when none is left.
    fn next(&mut self) -> Result<Option<Claimed>, StateError> {
        if self.claimed.is_empty() {
            let now = self.clock.tick().timestamp();
            let batch = self
                .state
                .claim(self.queue, self.claimer, now, CLAIM_BATCH)?;
            self.claimed.extend(batch);
        }
        Ok(self.claimed.pop_front())
    }

    fn record(&mut self, arrived: Vec<(Claimed, Attempt)>) -> Result<(), StateError> {
        let finished = self.clock.tick();
        let mut outcomes = Vec::with_capacity(arrived.len());
        let mut reasons = Vec::with_capacity(arrived.len());
        for (delivery, attempt) in &arrived {
            let (status, next, reason) =
                self.verdict(delivery, attempt, finished.timestamp_millis())?;
            let error = attempt.error.as_deref().map(|error| match &reason {
                Some(reason) => format!("{error} ({reason})"),
                None => error.to_string(),
            });
            outcomes.push(Outcome {
                seq: delivery.seq,
                attempt: AttemptRecord {
                    at_ms: finished.timestamp_millis(),
                    status: attempt.status,
                    error,
                    duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
                    excerpt: attempt.excerpt.clone(),
                },
                status,
                next_attempt_at: next,
            });
            reasons.push(reason);
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

    fn verdict(
        &mut self,
        delivery: &Claimed,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<(Status, i64, Option<String>), StateError> {
        let now = now_ms.div_euclid(1000);
        if attempt.delivered() {
            return Ok((Status::Delivered, now, None));
        }
        let attempts = u32::try_from(delivery.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        Ok(
            match self
                .target
                .policy
                .after_failure(attempt, attempts, delivery.created_at, now_ms)
            {
                Verdict::RetryAt(at) => (Status::Failed, at, None),
                Verdict::Dead(reason) => (Status::Dead, now, Some(reason)),
                Verdict::Gone => {
                    self.halt.gone.store(true, Ordering::SeqCst);
                    self.state.set_webhook_gone(&self.target.task, Some(now))?;
                    (
                        Status::Dead,
                        now,
                        Some("410 Gone: the webhook is disabled".to_string()),
                    )
                }
            },
        )
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

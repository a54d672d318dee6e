//! Running a task durably: record every match as a pending delivery in one transaction, then
//! send them, committing each attempt's outcome as soon as it is known.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::NaiveDateTime;

use super::http::{Attempt, DELIVERY_HEADER, Sender};
use super::retry::{RetryPolicy, Verdict};
use super::signature::Signer;
use super::{id, payload};
use crate::definitions::{Search, Task};
use crate::licenses::query::{LicenseDb, QueryError};
use crate::schedule::clock::Clock;
use crate::state::deliveries::{AttemptRecord, Claimed, Queue, Status};
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
}

impl Target {
    /// The target of a task, with its secret resolved and policy settled.
    pub fn new(task: &Task, signer: Signer, policy: RetryPolicy) -> Target {
        Target {
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

/// Records every match of `search` as a pending delivery of a new run, in one transaction,
/// before anything is sent; with `sent` false only the run and its match count are recorded.
/// Returns the run id and the number of matches.
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
) -> Result<(i64, u64), RunError> {
    let path = state.path().to_path_buf();
    let mut recorder = state.begin_run(&task.stem, &task.name, slot, now, sent)?;
    let mut failure = None;
    let matched = db.for_each(&search.template, values, |license| {
        if !sent {
            return true;
        }
        let body = payload::body(&task.name, &task.webhook.user_data, &license.info);
        let key = license.info.text("ActivationKey");
        match recorder.add(&id::new(), license.id, &key, &body) {
            Ok(()) => true,
            Err(error) => {
                failure = Some(error);
                false
            }
        }
    })?;
    let state_error = |source| StateError::Sql {
        path: path.clone(),
        source,
    };
    if let Some(error) = failure {
        return Err(state_error(error).into());
    }
    let run_id = recorder.commit().map_err(state_error)?;
    Ok((run_id, matched))
}

/// Sends the deliveries of `queue` until none is left or `stop` is set, calling `observe`
/// after every attempt.
pub fn send(
    state: &StateDb,
    queue: Queue,
    target: &Target,
    clock: &Clock,
    stop: &AtomicBool,
    observe: &(dyn Fn(&Event) + Sync),
) -> Result<Tally, StateError> {
    let tally = Mutex::new(Tally::default());
    let halt = AtomicBool::new(false);
    let claimer = format!("{}-{}", std::process::id(), &id::new()[16..]);
    let worker = |index: usize| Worker {
        target,
        clock,
        stop,
        halt: &halt,
        tally: &tally,
        observe,
        // Each worker has its own claims, so one hands back only what it took itself.
        claimer: format!("{claimer}-{index}"),
    };
    if target.concurrency <= 1 {
        worker(0).run(state, queue)?;
    } else {
        let path = state.path().to_path_buf();
        std::thread::scope(|scope| -> Result<(), StateError> {
            let handles: Vec<_> = (0..target.concurrency)
                .map(|index| {
                    let (worker, path) = (worker(index), &path);
                    scope.spawn(move || -> Result<(), StateError> {
                        let own = StateDb::open(path)?;
                        worker.run(&own, queue)
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap_or(Ok(()))?;
            }
            Ok(())
        })?;
    }
    let mut tally = tally.into_inner().unwrap_or_default();
    tally.interrupted = stop.load(Ordering::SeqCst);
    Ok(tally)
}

/// One sender: claims a few deliveries at a time and sends them over its own connection.
struct Worker<'a> {
    target: &'a Target,
    clock: &'a Clock,
    stop: &'a AtomicBool,
    /// Set when the webhook answered 410 Gone: no worker sends another request.
    halt: &'a AtomicBool,
    tally: &'a Mutex<Tally>,
    observe: &'a (dyn Fn(&Event) + Sync),
    claimer: String,
}

/// How many deliveries a worker claims at once: few enough that a stop leaves little to
/// hand back, enough to spare a transaction per delivery.
const CLAIM_BATCH: usize = 32;

impl Worker<'_> {
    fn run(&self, state: &StateDb, queue: Queue) -> Result<(), StateError> {
        let sender = Sender::new(self.target.timeout);
        let batch = if self.target.concurrency > 1 {
            4
        } else {
            CLAIM_BATCH
        };
        loop {
            if self.stopping() {
                return Ok(());
            }
            let now = self.clock.tick().timestamp();
            let claimed = state.claim(queue, &self.claimer, now, batch)?;
            if claimed.is_empty() {
                return Ok(());
            }
            for delivery in &claimed {
                if self.stopping() {
                    break;
                }
                self.deliver(state, &sender, delivery)?;
            }
            // Whatever a stop left claimed goes back to the queue at once.
            state.release_claims(&self.target.task, Some(&self.claimer))?;
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.halt.load(Ordering::SeqCst)
    }

    fn deliver(
        &self,
        state: &StateDb,
        sender: &Sender,
        delivery: &Claimed,
    ) -> Result<(), StateError> {
        let signatures = self.target.signer.headers(&delivery.id, &delivery.body);
        let mut headers: Vec<(&str, &str)> = signatures
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        headers.push((DELIVERY_HEADER, delivery.id.as_str()));
        let attempt = sender.post(&self.target.url, &delivery.body, &headers);
        let finished = self.clock.tick();
        let now = finished.timestamp();
        let attempts = delivery.attempts as u32 + 1;
        let (status, next, reason) = if attempt.delivered() {
            (Status::Delivered, now, None)
        } else {
            match self
                .target
                .policy
                .after_failure(&attempt, attempts, delivery.created_at, now)
            {
                Verdict::RetryAt(at) => (Status::Failed, at, None),
                Verdict::Dead(reason) => (Status::Dead, now, Some(reason)),
                Verdict::Gone => {
                    self.halt.store(true, Ordering::SeqCst);
                    state.set_webhook_gone(&self.target.task, Some(now))?;
                    (
                        Status::Dead,
                        now,
                        Some("410 Gone: the webhook is disabled".to_string()),
                    )
                }
            }
        };
        let error = attempt.error.as_deref().map(|error| match &reason {
            Some(reason) => format!("{error} ({reason})"),
            None => error.to_string(),
        });
        let record = AttemptRecord {
            at_ms: finished.timestamp_millis(),
            status: attempt.status,
            error: error.as_deref(),
            duration_ms: attempt.duration.as_millis() as i64,
            excerpt: &attempt.excerpt,
        };
        state.record_attempt(delivery.seq, &record, status, next)?;
        self.count(status, attempt.status == Some(410));
        (self.observe)(&Event {
            delivery,
            attempt: &attempt,
            status,
            reason: reason.as_deref(),
        });
        Ok(())
    }

    fn count(&self, status: Status, gone: bool) {
        if let Ok(mut tally) = self.tally.lock() {
            match status {
                Status::Delivered => tally.delivered += 1,
                Status::Failed => tally.retrying += 1,
                Status::Dead => tally.dead += 1,
                Status::Pending => {}
            }
            tally.gone |= gone;
        }
    }
}

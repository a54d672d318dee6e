//! The dispatcher: claims deliveries from the state database, hands them to worker threads
//! that sign and POST them, and commits each attempt's outcome as soon as it is known; it
//! halts on a stop or a 410 Gone. Every source's deliveries go out through [`send`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use super::http::{Attempt, DELIVERY_HEADER, EVENT_HEADER, Sender};
use super::id;
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
    state: &dyn DeliveryQueue,
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
    state.release_claims(&target.source, Some(&claimer))?;
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
    let sender = Sender::new(target.endpoint.timeout, &target.endpoint.tls);
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
    if let Some(event_type) = &delivery.event_type {
        headers.push((EVENT_HEADER, event_type.as_str()));
    }
    sender.post(&target.endpoint.url, &delivery.body, &headers)
}

/// How many deliveries are claimed at once: few enough that a stop hands little back.
const CLAIM_BATCH: usize = 64;

/// The state-owning side of [`send`].
struct Dispatcher<'a> {
    state: &'a dyn DeliveryQueue,
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
            self.commit(sent)?;
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

    /// Stores what the attempts that arrived make of their deliveries, in one transaction,
    /// then reports them. The policy decides; this writes.
    fn commit(&mut self, arrived: Vec<(Claimed, Attempt)>) -> Result<(), StateError> {
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

//! A worker: POSTs the deliveries it takes from the pipeline, one at a time, over its own
//! keep-alive connection.
//!
//! While an answer is awaited, the worker hands in the answer before it and takes and signs
//! the next delivery: between an answer and the next request there is only reading the one and
//! writing the other. One request is in flight at a time, as before; a stop or a 410 is still
//! checked before each POST.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pipeline::{Answered, Halt, Pipeline};
use crate::delivery::http::{DELIVERY_HEADER, EVENT_HEADER, Sender};
use crate::delivery::target::Target;
use crate::state::deliveries::Claimed;

/// A delivery signed ahead of its POST is signed again if it waited longer than this (a
/// Standard Webhooks timestamp is the time of sending).
const SIGNED_FRESH: Duration = Duration::from_secs(1);

/// A worker: takes one delivery at a time, signs it (fresh timestamp) and POSTs it, unless
/// `halt` is up: then the delivery goes back unsent (`None`).
pub(super) fn post_jobs(target: &Target, pipeline: &Pipeline, halt: &Halt) {
    let _crash = CrashGuard(pipeline);
    #[cfg(test)]
    if target.source == tests::PANICS {
        // A stand-in for a bug: the worker dies with a delivery in hand.
        let _held = take(pipeline, true);
        panic!("a bug in the sending thread");
    }
    let sender = Sender::new(target.endpoint.timeout, &target.endpoint.tls);
    let mut answered: Option<Answered> = None;
    let mut next = take_job(target, pipeline, true);
    while let Some(job) = next.take() {
        if halt.is_up() {
            hand_in(pipeline, halt, answered.take());
            hand_in(pipeline, halt, Some((job.delivery, None)));
        } else {
            let job = job.fresh(target);
            let headers = job.headers();
            let attempt = sender.post_waiting(
                &target.endpoint.url,
                &job.delivery.body,
                &headers,
                &mut || {
                    hand_in(pipeline, halt, answered.take());
                    next = take_job(target, pipeline, false);
                },
            );
            if attempt.status == Some(410) {
                // Gone: nothing more goes to this webhook, from any worker.
                halt.gone.store(true, Ordering::SeqCst);
            }
            hand_in(
                pipeline,
                halt,
                answered.replace((job.delivery, Some(attempt))),
            );
        }
        if next.is_none() {
            // Waiting for work: what was answered must reach the dispatcher first.
            hand_in(pipeline, halt, answered.take());
            next = take_job(target, pipeline, true);
        }
    }
    hand_in(pipeline, halt, answered.take());
}

/// The next delivery ([`take`]), signed.
fn take_job(target: &Target, pipeline: &Pipeline, wait: bool) -> Option<Job> {
    take(pipeline, wait).map(|delivery| Job::new(target, delivery))
}

/// A delivery taken from the pipeline, and its signature headers.
struct Job {
    delivery: Claimed,
    signatures: Vec<(&'static str, String)>,
    signed: Instant,
}

impl Job {
    fn new(target: &Target, delivery: Claimed) -> Job {
        Job {
            signatures: target.signer.headers(&delivery.id, &delivery.body),
            signed: Instant::now(),
            delivery,
        }
    }

    /// The job, signed again if it waited past [`SIGNED_FRESH`].
    fn fresh(self, target: &Target) -> Job {
        if self.signed.elapsed() <= SIGNED_FRESH {
            return self;
        }
        Job::new(target, self.delivery)
    }

    /// The request's extra header fields: the signatures, the delivery id, the event type.
    fn headers(&self) -> Vec<(&str, &str)> {
        // Sized for all of them at once: collected, then pushed to, it grew once per request.
        let mut headers = Vec::with_capacity(self.signatures.len() + 2);
        headers.extend(
            self.signatures
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        );
        headers.push((DELIVERY_HEADER, self.delivery.id.as_str()));
        if let Some(event_type) = &self.delivery.event_type {
            headers.push((EVENT_HEADER, event_type.as_str()));
        }
        headers
    }
}

/// The next delivery to send, unless too many answers wait for their commit. With `wait`, it
/// sleeps until there is one, or returns `None` once none will come; without, it returns at
/// once (waking the dispatcher if it should claim more).
pub(super) fn take(pipeline: &Pipeline, wait: bool) -> Option<Claimed> {
    let mut shared = pipeline.lock();
    loop {
        if shared.no_more && shared.todo.is_empty() {
            // Done, or the dispatcher gave up on an error (then what is uncommitted never
            // will be, so waiting for the commit to catch up would be forever).
            return None;
        }
        if !shared.uncommitted_full()
            && let Some(delivery) = shared.todo.pop_front()
        {
            shared.out += 1;
            // Below the low water the dispatcher claims more on its next tick; the last one
            // taken cannot wait for it, unless nothing more can be claimed before a commit.
            if shared.dispatcher_waits && shared.todo.is_empty() && !shared.exhausted {
                pipeline.wake.notify_one();
            }
            return Some(delivery);
        }
        // Nothing to take: the dispatcher must commit (the cap) or claim, unless nothing can
        // be claimed before a commit, which the last answer's hand-in or its tick brings.
        if shared.dispatcher_waits && (shared.uncommitted_full() || !shared.exhausted) {
            pipeline.wake.notify_one();
        }
        if !wait {
            return None;
        }
        shared.workers_wait += 1;
        shared = pipeline
            .ready
            .wait(shared)
            .unwrap_or_else(|e| e.into_inner());
        shared.workers_wait -= 1;
    }
}

/// Leaves an answer (or a delivery given back unsent), if there is one, for the dispatcher
/// to commit on its next tick, waking it only when nothing is left out or a halt is up (a
/// full group waits for the tick: see [`COMMIT_EVERY`](super::COMMIT_EVERY)).
fn hand_in(pipeline: &Pipeline, halt: &Halt, answered: Option<Answered>) {
    let Some(answered) = answered else {
        return;
    };
    let mut shared = pipeline.lock();
    shared.out -= 1;
    if shared.done.is_empty() {
        shared.oldest = Some(Instant::now());
    }
    shared.done.push(answered);
    if shared.dispatcher_waits && (shared.idle() || halt.is_up()) {
        pipeline.wake.notify_one();
    }
}

/// Tells the dispatcher when its worker panics, so that it ends the run instead of waiting for
/// the delivery the worker held (which stays pending).
struct CrashGuard<'p>(&'p Pipeline);

impl Drop for CrashGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().crashed = true;
            self.0.wake.notify_one();
            self.0.ready.notify_all();
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    /// The source whose workers panic as soon as they hold a delivery (unit tests only).
    pub(in crate::delivery) const PANICS: &str = "panics-in-its-worker";
}

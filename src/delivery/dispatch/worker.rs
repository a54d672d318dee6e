//! A worker: POSTs the deliveries it takes from the pipeline, one at a time, over its own
//! keep-alive connection.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::pipeline::{Halt, Pipeline};
use super::{COMMIT_GROUP, MAX_UNCOMMITTED};
use crate::delivery::http::{Attempt, DELIVERY_HEADER, EVENT_HEADER, Sender};
use crate::delivery::target::Target;
use crate::state::deliveries::Claimed;

/// A worker: takes one delivery at a time, signs it (fresh timestamp) and POSTs it, unless
/// `halt` is up: then the delivery goes back unsent (`None`).
pub(super) fn post_jobs(target: &Target, pipeline: &Pipeline, halt: &Halt) {
    let sender = Sender::new(target.endpoint.timeout, &target.endpoint.tls);
    loop {
        let delivery = {
            let mut shared = pipeline.lock();
            loop {
                if shared.no_more && shared.todo.is_empty() {
                    // Done, or the dispatcher gave up on an error (then what is uncommitted
                    // never will be, so waiting for the commit to catch up would be forever).
                    return;
                }
                if shared.done.len() + shared.committing < MAX_UNCOMMITTED
                    && let Some(delivery) = shared.todo.pop_front()
                {
                    shared.out += 1;
                    if shared.dispatcher_waits && shared.todo.len() == shared.low_water {
                        pipeline.wake.notify_one();
                    }
                    break delivery;
                }
                if shared.dispatcher_waits {
                    pipeline.wake.notify_one();
                }
                shared.workers_wait += 1;
                shared = pipeline
                    .ready
                    .wait(shared)
                    .unwrap_or_else(|e| e.into_inner());
                shared.workers_wait -= 1;
            }
        };
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
        let mut shared = pipeline.lock();
        shared.out -= 1;
        if shared.done.is_empty() {
            shared.oldest = Some(Instant::now());
        }
        shared.done.push((delivery, attempt));
        if shared.dispatcher_waits
            && (shared.done.len() >= COMMIT_GROUP || shared.idle() || halt.is_up())
        {
            pipeline.wake.notify_one();
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

//! Where the dispatcher and the workers meet: one lock over the claimed deliveries and the
//! answers, and the halt both check before the next POST.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::delivery::http::Attempt;
use crate::state::deliveries::Claimed;

/// Why nothing more is sent: a stop was asked for (SIGINT/SIGTERM), or the webhook answered
/// 410 Gone. Both the dispatcher and every worker check it before the next POST.
pub(super) struct Halt<'a> {
    pub(super) stop: &'a AtomicBool,
    pub(super) gone: AtomicBool,
}

impl Halt<'_> {
    pub(super) fn is_up(&self) -> bool {
        self.gone.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst)
    }
}

/// An attempt's result: `None` when the delivery went back unsent (a halt).
pub(super) type Answered = (Claimed, Option<Attempt>);

/// Where the dispatcher and the workers meet.
#[derive(Default)]
pub(super) struct Pipeline {
    shared: Mutex<Shared>,
    /// Workers sleep here, waiting for work or for the commit to catch up.
    pub(super) ready: Condvar,
    /// The dispatcher sleeps here, at most [`COMMIT_EVERY`](super::COMMIT_EVERY).
    pub(super) wake: Condvar,
}

#[derive(Default)]
pub(super) struct Shared {
    /// Claimed, not taken by a worker yet.
    pub(super) todo: VecDeque<Claimed>,
    /// Answered (or handed back unsent), not committed yet.
    pub(super) done: Vec<Answered>,
    /// When the oldest of `done` arrived.
    pub(super) oldest: Option<Instant>,
    /// Taken by a worker and not back yet.
    pub(super) out: usize,
    /// Being committed right now.
    pub(super) committing: usize,
    /// Nothing more will be claimed: the queue is empty, a halt, or an error; workers that
    /// find nothing to take return.
    pub(super) no_more: bool,
    /// Whether the dispatcher sleeps on `wake`.
    pub(super) dispatcher_waits: bool,
    /// How many workers sleep on `ready`.
    pub(super) workers_wait: usize,
    /// The last claim came back short and nothing was committed since: claiming again finds
    /// nothing new (an event delivery waits for the commit of the one before it).
    pub(super) exhausted: bool,
    /// A worker panicked: the dispatcher commits what is answered and ends the run.
    pub(super) crashed: bool,
}

impl Shared {
    /// [`MAX_UNCOMMITTED`](super::MAX_UNCOMMITTED) answers wait for their commit: no worker
    /// sends its next request.
    pub(super) fn uncommitted_full(&self) -> bool {
        self.done.len() + self.committing >= super::MAX_UNCOMMITTED
    }

    /// No delivery waits for a worker and none is out.
    pub(super) fn idle(&self) -> bool {
        self.todo.is_empty() && self.out == 0
    }
}

impl Pipeline {
    pub(super) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

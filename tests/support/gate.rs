//! A receiver's answers held back until the test lets them go, so that a test acts while a
//! request is in flight because it knows one is, not because a clock says one probably is.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The longest an answer is held, or a test waits for one to be: a bug that leaves the gate
/// shut fails its test (an answer arrives late, or never) rather than hanging the suite.
const LONGEST_HOLD: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    open: bool,
    /// Requests that reached [`Gate::hold`] so far.
    arrived: usize,
    /// Requests answered because [`LONGEST_HOLD`] passed, not because the gate opened.
    expired: usize,
}

impl Gate {
    /// A shut gate, to share between a receiver's handler and the test.
    pub fn new() -> Arc<Gate> {
        Arc::default()
    }

    /// Called by a receiver's handler: waits until the gate opens, or [`LONGEST_HOLD`] passes.
    /// The receiver records a request only once its handler returns.
    pub fn hold(&self) {
        let mut state = self.lock();
        state.arrived += 1;
        self.changed.notify_all();
        let (mut state, waited) = self
            .changed
            .wait_timeout_while(state, LONGEST_HOLD, |state| !state.open)
            .unwrap_or_else(PoisonError::into_inner);
        if waited.timed_out() {
            state.expired += 1;
        }
    }

    /// Waits until `n` requests have reached the gate; whether they did within
    /// [`LONGEST_HOLD`].
    pub fn wait_arrived(&self, n: usize) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, LONGEST_HOLD, |state| state.arrived < n)
            .unwrap_or_else(PoisonError::into_inner);
        state.arrived >= n
    }

    /// Lets every held answer go, and every later one through.
    pub fn open(&self) {
        self.lock().open = true;
        self.changed.notify_all();
    }

    /// How many requests reached the gate.
    pub fn arrived(&self) -> usize {
        self.lock().arrived
    }

    /// How many answers went out because [`LONGEST_HOLD`] passed, the gate still shut.
    pub fn expired(&self) -> usize {
        self.lock().expired
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

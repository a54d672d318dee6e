//! What `run-due` runs: a task is due when its most recent slot is later than the slot it
//! last ran for, is not from before the task was first seen, and is within the catch-up window.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::schedule::Schedule;

/// What to do with a task now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: no slot yet, or the latest slot already ran (or came before the task).
    NotDue,
    /// Run it for this slot.
    Due(DateTime<Utc>),
    /// The latest slot was missed by more than the catch-up window: record it as skipped.
    Skipped(DateTime<Utc>),
}

/// The facts about a task that decide whether it is due.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// When keyhook first saw the task (Unix seconds).
    pub first_seen: i64,
    /// The slot the task last ran for, or was skipped at.
    pub last_slot: Option<i64>,
    /// How late a slot may still run; `None`: one period of the schedule.
    pub catch_up: Option<Duration>,
}

/// Decides for one task. Missed slots collapse into the most recent one, so a machine that
/// was off for three days runs a daily task once, not three times.
pub fn decide(schedule: &Schedule, zone: Tz, now: DateTime<Utc>, facts: &Facts) -> Decision {
    let Some(slot) = schedule.latest_at_or_before(now, zone) else {
        return Decision::NotDue;
    };
    let unix = slot.timestamp();
    if unix < facts.first_seen || facts.last_slot.is_some_and(|last| last >= unix) {
        return Decision::NotDue;
    }
    let window = facts.catch_up.unwrap_or_else(|| schedule.period());
    if now - slot > window {
        return Decision::Skipped(slot);
    }
    Decision::Due(slot)
}

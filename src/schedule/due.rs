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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn decisions_table() {
        let daily = Schedule::parse("every 1 day", Some("08:00"), None).unwrap();
        let hourly = Schedule::parse("@hourly", None, None).unwrap();
        let seen = at("2026-11-01T00:00:00Z").timestamp();
        let slot = |text| Some(at(text).timestamp());
        // (schedule, now, first_seen, last_slot, catch_up, expected)
        let cases = [
            // Due at its slot, once.
            (
                &daily,
                "2026-11-23T08:00:30Z",
                seen,
                slot("2026-11-22T08:00:00Z"),
                None,
                Decision::Due(at("2026-11-23T08:00:00Z")),
            ),
            (
                &daily,
                "2026-11-23T09:00:00Z",
                seen,
                slot("2026-11-23T08:00:00Z"),
                None,
                Decision::NotDue,
            ),
            // A three-day gap runs once, for the latest slot.
            (
                &daily,
                "2026-11-26T10:00:00Z",
                seen,
                slot("2026-11-23T08:00:00Z"),
                None,
                Decision::Due(at("2026-11-26T08:00:00Z")),
            ),
            // Before today's slot, yesterday's is still within a one-day window.
            (
                &daily,
                "2026-11-26T07:00:00Z",
                seen,
                slot("2026-11-23T08:00:00Z"),
                None,
                Decision::Due(at("2026-11-25T08:00:00Z")),
            ),
            // Outside the window: skipped.
            (
                &hourly,
                "2026-11-23T10:30:00Z",
                seen,
                slot("2026-11-23T07:00:00Z"),
                Some(Duration::minutes(15)),
                Decision::Skipped(at("2026-11-23T10:00:00Z")),
            ),
            (
                &hourly,
                "2026-11-23T10:10:00Z",
                seen,
                slot("2026-11-23T07:00:00Z"),
                Some(Duration::minutes(15)),
                Decision::Due(at("2026-11-23T10:00:00Z")),
            ),
            // A brand-new task does not fire for slots from before it was first seen.
            (
                &daily,
                "2026-11-23T08:30:00Z",
                at("2026-11-23T08:10:00Z").timestamp(),
                None,
                None,
                Decision::NotDue,
            ),
            (
                &daily,
                "2026-11-24T08:00:01Z",
                at("2026-11-23T08:10:00Z").timestamp(),
                None,
                None,
                Decision::Due(at("2026-11-24T08:00:00Z")),
            ),
        ];
        for (schedule, now, first_seen, last_slot, catch_up, expected) in cases {
            let facts = Facts {
                first_seen,
                last_slot,
                catch_up,
            };
            assert_eq!(
                decide(schedule, Tz::UTC, at(now), &facts),
                expected,
                "{now}"
            );
        }
    }
}

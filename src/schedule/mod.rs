//! Scheduling: the injectable clock, time zones, schedules (every / crontab), and what is due.

pub mod clock;
pub mod due;
// `schedule::schedule::Schedule` reads oddly, but the file is named after what it holds.
#[allow(clippy::module_inception)]
pub mod schedule;
pub mod zone;

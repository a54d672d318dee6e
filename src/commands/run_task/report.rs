//! What a run of a task came to: the counts, failures and bad rows, as `run-task` prints
//! them and `--json` writes them.

use std::time::Instant;

use serde::Serialize;

use super::super::sending::{self, Failure, Stop};
use crate::definitions::Task;
use crate::delivery::dispatch::Tally;
use crate::error::Exit;
use crate::licenses::license_info::RowError;
use crate::task_source::Recorded;

/// A license row that could not be read, for the summaries.
#[derive(Debug, Clone, Serialize)]
pub(in crate::commands) struct BadRow {
    pub license_id: i64,
    pub activation_key: String,
    pub error: String,
}

impl From<RowError> for BadRow {
    fn from(error: RowError) -> BadRow {
        BadRow {
            license_id: error.id,
            activation_key: error.key.clone(),
            error: error.to_string(),
        }
    }
}

/// What a run came to.
#[derive(Debug, Clone, Serialize)]
pub(in crate::commands) struct Report {
    pub task: String,
    pub run_id: Option<i64>,
    pub matched: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Rows the search reached that cannot be read as licenses: recorded, never sent.
    pub bad_rows: u64,
    /// Deliveries this run did not send: the webhook is disabled or gone, or a stop came.
    /// matched = delivered + failed + bad_rows + not_sent + by_other_hosts.
    pub not_sent: u64,
    /// Deliveries of this run that other hosts took to send (a shared state).
    #[serde(skip_serializing_if = "is_zero")]
    pub by_other_hosts: u64,
    pub sent: bool,
    /// Why nothing ran: the slot already ran, or the task is disabled.
    pub skipped: Option<String>,
    pub elapsed: f64,
    pub failures: Vec<Failure>,
    /// The bad rows (the first hundred; `keyhook log --status bad` lists them all).
    pub bad: Vec<BadRow>,
    /// Why deliveries were held back: the webhook is disabled, or its receiver answered 410.
    /// Printed before the summary; with `--json`, on stderr.
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub tally: Tally,
}

impl Report {
    /// The exit for this run: bad rows outrank failed deliveries.
    pub(in crate::commands) fn exit(&self, stop: &Stop) -> Exit {
        let exit = sending::exit_of(&self.tally, stop);
        if self.bad_rows > 0 {
            exit.worst(Exit::BadRows)
        } else {
            exit
        }
    }

    /// What recording came to.
    pub(super) fn recorded(&mut self, recorded: Recorded) {
        self.run_id = Some(recorded.run_id);
        self.matched = recorded.matched;
        self.bad_rows = recorded.bad_rows;
        self.bad = recorded.bad.into_iter().map(BadRow::from).collect();
    }

    /// The counts from the tally, so that they add up to the matches; the time taken.
    pub(super) fn finish(&mut self, to_send: u64, started: Instant, shared: bool) {
        self.delivered = self.tally.delivered;
        self.failed = self.tally.retrying + self.tally.dead;
        self.not_sent = to_send.saturating_sub(self.delivered + self.failed);
        if shared && self.sent && !self.tally.interrupted && !self.tally.gone {
            // The queue ran dry before this host sent them: other hosts claimed them.
            self.by_other_hosts = std::mem::take(&mut self.not_sent);
        }
        self.elapsed = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    }

    pub(super) fn empty(task: &Task) -> Report {
        Report {
            task: task.name.clone(),
            run_id: None,
            matched: 0,
            delivered: 0,
            failed: 0,
            bad_rows: 0,
            not_sent: 0,
            by_other_hosts: 0,
            sent: false,
            skipped: None,
            elapsed: 0.0,
            failures: Vec::new(),
            bad: Vec::new(),
            warnings: Vec::new(),
            tally: Tally::default(),
        }
    }
}

/// `Upcoming Renewals: 37 matched, 36 delivered, 1 failed in 0.42 s`, with bad rows and
/// deliveries not sent when there are any, so the counts add up to the matches.
pub(in crate::commands) fn summary(report: &Report) -> String {
    let mut extra = String::new();
    if report.bad_rows > 0 {
        extra.push_str(&format!(", {} bad rows", report.bad_rows));
    }
    if report.by_other_hosts > 0 {
        extra.push_str(&format!(", {} sent by other hosts", report.by_other_hosts));
    }
    if report.not_sent > 0 {
        extra.push_str(&format!(", {} not sent", report.not_sent));
    }
    format!(
        "{}: {} matched, {} delivered, {} failed{extra} in {:.2} s",
        report.task, report.matched, report.delivered, report.failed, report.elapsed
    )
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

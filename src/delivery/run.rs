//! Running a task: evaluate its search and send one signed request per matching license.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::http::{Attempt, DELIVERY_HEADER, Sender};
use super::{id, payload, signature};
use crate::definitions::secret::Secret;
use crate::definitions::{Search, Task};
use crate::licenses::license_info::License;
use crate::licenses::query::{LicenseDb, QueryError};

/// Everything a run needs, resolved and validated before the first request.
pub struct Plan<'a> {
    pub task: &'a Task,
    pub search: &'a Search,
    pub secret: Secret,
    /// The placeholder values, in parameter order.
    pub values: Vec<NaiveDateTime>,
    /// False when webhooks are disabled: matches are counted, nothing is sent.
    pub send: bool,
}

/// One delivery's outcome, as it happens.
pub struct Sent<'a> {
    pub license: &'a License,
    pub delivery_id: &'a str,
    pub attempt: &'a Attempt,
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub task: String,
    pub matched: u64,
    pub delivered: u64,
    pub failed: u64,
    /// False when nothing was sent because the webhook is disabled.
    pub sent: bool,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(elapsed: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((elapsed.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Runs the plan: streams the matches and POSTs each as soon as it is read, calling
/// `observe` after every attempt.
pub fn execute(
    db: &mut LicenseDb,
    plan: &Plan,
    mut observe: impl FnMut(&Sent),
) -> Result<Report, QueryError> {
    let started = Instant::now();
    let webhook = &plan.task.webhook;
    let sender = Sender::new(webhook.timeout);
    let (mut delivered, mut failed) = (0, 0);
    let matched = db.for_each(&plan.search.template, &plan.values, |license| {
        if !plan.send {
            return true;
        }
        let body = payload::body(&plan.task.name, &webhook.user_data, &license.info);
        let signature = signature::qlm(&body, &plan.secret);
        let delivery_id = id::new();
        let headers = [
            (signature::QLM_HEADER, signature.as_str()),
            (DELIVERY_HEADER, delivery_id.as_str()),
        ];
        let attempt = sender.post(&webhook.url, &body, &headers);
        if attempt.delivered() {
            delivered += 1;
        } else {
            failed += 1;
        }
        observe(&Sent {
            license: &license,
            delivery_id: &delivery_id,
            attempt: &attempt,
        });
        true
    })?;
    Ok(Report {
        task: plan.task.name.clone(),
        matched,
        delivered,
        failed,
        sent: plan.send,
        elapsed: started.elapsed(),
    })
}

//! When a failed delivery is tried again, and when it is given up on.

use std::time::Duration;

use super::http::Attempt;
use crate::state::deliveries::Status;

/// The Standard Webhooks recommendation, offered as `retry_schedule = "standard"`.
pub const STANDARD_SCHEDULE: [u64; 9] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
];

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waits {
    /// QLM's `webHookRetryInterval`: the same wait every time, no jitter.
    Fixed(Duration),
    /// One wait per retry, each with ±10% jitter so a recovering receiver is not stampeded.
    Schedule(Vec<Duration>),
}

/// The retry policy of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub waits: Waits,
    /// Retries after the first attempt (QLM's `webHookMaxRetries`).
    pub max_retries: u32,
    /// A delivery older than this is not retried again.
    pub give_up_after: Option<Duration>,
    /// Retry 4xx answers other than 408 and 429 too (off: they rarely heal by themselves).
    pub retry_4xx: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::standard()
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again at this Unix time.
    RetryAt(i64),
    /// Give up, for this reason.
    Dead(String),
    /// 410 Gone: give up, and disable the webhook until it is re-enabled.
    Gone,
}

/// The next attempt of a delivered or dead delivery: none. Not the time it settled, which its
/// `updated_at` keeps: with 0 (stored in no bytes) a delivery row keeps its size from pending to
/// delivered ('delivered' and a 2xx status take the four bytes the time took), so SQLite
/// rewrites it in place instead of moving it and rebalancing its page: 8% of what
/// committing an outcome cost. Nothing reads it back: a settled delivery shows no next attempt.
pub const SETTLED: i64 = 0;

/// What an attempt makes of its delivery. Deciding writes nothing: the dispatcher stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: Status,
    /// Unix seconds: when to try again; [`SETTLED`] for a delivered or dead delivery.
    pub next_attempt_at: i64,
    /// Why it will not be retried, for a dead delivery.
    pub reason: Option<String>,
    /// The receiver answered 410 Gone: its webhook is to be disabled.
    pub gone: bool,
}

impl RetryPolicy {
    /// Decides what `attempt`, finished at `now_ms` (Unix milliseconds), makes of a delivery
    /// created at `created_at` (Unix seconds) that had `attempts_before` attempts.
    pub fn verdict(
        &self,
        attempt: &Attempt,
        attempts_before: i64,
        created_at: i64,
        now_ms: i64,
    ) -> Decision {
        let settled = |status, reason: Option<String>, gone| Decision {
            status,
            next_attempt_at: SETTLED,
            reason,
            gone,
        };
        if attempt.delivered() {
            return settled(Status::Delivered, None, false);
        }
        let attempts = u32::try_from(attempts_before)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        match self.after_failure(attempt, attempts, created_at, now_ms) {
            Verdict::RetryAt(at) => Decision {
                status: Status::Failed,
                next_attempt_at: at,
                reason: None,
                gone: false,
            },
            Verdict::Dead(reason) => settled(Status::Dead, Some(reason), false),
            Verdict::Gone => settled(
                Status::Dead,
                Some("410 Gone: the webhook is disabled".to_string()),
                true,
            ),
        }
    }

    /// The Standard Webhooks schedule: 9 retries over about three days.
    pub fn standard() -> RetryPolicy {
        RetryPolicy {
            waits: Waits::Schedule(
                STANDARD_SCHEDULE
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .collect(),
            ),
            max_retries: STANDARD_SCHEDULE.len() as u32,
            give_up_after: None,
            retry_4xx: false,
        }
    }

    /// Decides after the `attempts`-th failed attempt (1 for the first) of a delivery created
    /// at `created_at` (Unix seconds), failing at `now_ms` (Unix milliseconds).
    ///
    /// The retry time is rounded up to the next whole second, so a retry never leaves before
    /// its wait (less the jitter): truncating either the wait or the failure time would let
    /// it leave up to a second early.
    pub fn after_failure(
        &self,
        attempt: &Attempt,
        attempts: u32,
        created_at: i64,
        now_ms: i64,
    ) -> Verdict {
        if attempt.status == Some(410) {
            return Verdict::Gone;
        }
        if let Some(status @ 400..=499) = attempt.status
            && !matches!(status, 408 | 429)
            && !self.retry_4xx
        {
            return Verdict::Dead(format!(
                "HTTP {status} is not retried (set retry_4xx = true to retry it)"
            ));
        }
        if attempts > self.max_retries {
            return Verdict::Dead(format!("gave up after {} retries", self.max_retries));
        }
        let wait = retry_after(attempt, now_ms).unwrap_or_else(|| self.wait(attempts));
        let wait_ms = i64::try_from(wait.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000);
        let at = ceil_seconds(now_ms.saturating_add(wait_ms));
        if let Some(limit) = self.give_up_after
            && at.saturating_sub(created_at) > i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
        {
            return Verdict::Dead(format!(
                "gave up: older than give_up_after ({})",
                humantime::format_duration(limit)
            ));
        }
        Verdict::RetryAt(at)
    }

    /// The wait before retry number `retry` (1-based).
    fn wait(&self, retry: u32) -> Duration {
        match &self.waits {
            Waits::Fixed(wait) => *wait,
            Waits::Schedule(waits) => {
                let index = (retry as usize)
                    .saturating_sub(1)
                    .min(waits.len().saturating_sub(1));
                jitter(waits.get(index).copied().unwrap_or(Duration::from_secs(60)))
            }
        }
    }
}

/// Unix milliseconds rounded up to whole seconds.
fn ceil_seconds(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// A 429 or 503 may say when to come back: seconds, or an HTTP date (counted from the failure
/// at `now_ms`, the run's clock). Capped at a day.
fn retry_after(attempt: &Attempt, now_ms: i64) -> Option<Duration> {
    if !matches!(attempt.status, Some(429 | 503)) {
        return None;
    }
    let value = attempt.retry_after.as_deref()?.trim();
    let seconds = match value.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => {
            let at = http_date(value)?;
            u64::try_from(at - now_ms.div_euclid(1000)).unwrap_or(0)
        }
    };
    Some(Duration::from_secs(seconds.min(24 * 3600)))
}

/// An HTTP date in any of the three forms RFC 9110 has recipients accept (`Sun, 06 Nov 1994
/// 08:49:37 GMT`, the obsolete `Sunday, 06-Nov-94 08:49:37 GMT` and asctime's `Sun Nov  6
/// 08:49:37 1994`), as Unix seconds.
fn http_date(value: &str) -> Option<i64> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc2822(value) {
        return Some(at.timestamp());
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(value, format).ok())
        .map(|at| at.and_utc().timestamp())
}

fn jitter(wait: Duration) -> Duration {
    let mut byte = [0u8; 2];
    if getrandom::fill(&mut byte).is_err() {
        return wait;
    }
    // A factor in [0.9, 1.1].
    let factor = 0.9 + 0.2 * f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    wait.mul_f64(factor)
}

#[cfg(test)]
mod tests;

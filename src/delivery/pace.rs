//! How much the dispatcher claims at once, from how fast POSTs are answered, and when a
//! shared state's claims are renewed.
//!
//! A batch holds about [`SPAN`] of work: a fast receiver never waits for a claim (a commit,
//! with its fsync, on the state), and a slow one claims few deliveries at a time, so hosts
//! sharing a run finish together and a claim is rarely held long.

use std::time::{Duration, Instant};

/// Claimed before any answer was seen.
pub const FIRST_BATCH: usize = 64;
/// Never more claimed at once.
pub const MAX_BATCH: usize = 1024;
/// How long a batch should last at the pace of the answers so far.
const SPAN: Duration = Duration::from_millis(250);

/// The pace of the answers, as the dispatcher sees them arrive.
pub struct Pace {
    workers: usize,
    /// Mean time per attempt (exponentially weighted), once one arrived.
    mean: Option<Duration>,
    /// When this sender's claims are renewed next (a shared state with a lease, and something
    /// claimed since the last renewal).
    renew_at: Option<Instant>,
}

impl Pace {
    pub fn new(workers: usize) -> Pace {
        Pace {
            workers: workers.max(1),
            mean: None,
            renew_at: None,
        }
    }

    /// Takes in the durations of a group of attempts.
    pub fn observe(&mut self, durations: impl Iterator<Item = Duration>) {
        let (mut total, mut count) = (Duration::ZERO, 0u32);
        for duration in durations {
            total += duration;
            count += 1;
        }
        if count == 0 {
            return;
        }
        let group = total / count;
        self.mean = Some(match self.mean {
            None => group,
            Some(mean) => (mean + group) / 2,
        });
    }

    /// How many to claim next.
    pub fn batch(&self) -> usize {
        let Some(mean) = self.mean else {
            return FIRST_BATCH;
        };
        let per_worker = SPAN.as_nanos() / mean.as_nanos().max(1);
        let wanted = usize::try_from(per_worker)
            .unwrap_or(MAX_BATCH)
            .saturating_mul(self.workers);
        wanted.clamp(self.workers.min(MAX_BATCH), MAX_BATCH)
    }

    /// At or below this many claimed deliveries waiting, claim more: half a batch plus one
    /// per worker. The dispatcher looks on its own ticks (a few ms), so what is left must last
    /// till the next one; a sender holds up to one and a half batches.
    pub fn low_water(&self) -> usize {
        self.batch() / 2 + self.workers
    }

    /// After a claim that took something: the claims must be renewed by half the lease.
    pub fn claimed(&mut self, lease: Option<Duration>, now: Instant) {
        if let Some(lease) = lease
            && self.renew_at.is_none()
        {
            self.renew_at = Some(now + lease / 2);
        }
    }

    /// Whether the claims are due for renewal; if so, the next one is half a lease later.
    pub fn renew_due(&mut self, lease: Option<Duration>, now: Instant) -> bool {
        match (lease, self.renew_at) {
            (Some(lease), Some(at)) if at <= now => {
                self.renew_at = Some(now + lease / 2);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_pace_of_the_answers() {
        let mut pace = Pace::new(1);
        assert_eq!(pace.batch(), FIRST_BATCH);
        pace.observe([Duration::from_millis(20); 4].into_iter());
        assert_eq!(pace.batch(), 12);
        assert_eq!(pace.low_water(), 7);
        // Each group weighs half: a receiver that got faster is followed within a few groups.
        for _ in 0..10 {
            pace.observe([Duration::from_micros(50); 4].into_iter());
        }
        assert_eq!(pace.batch(), MAX_BATCH);
        let mut slow = Pace::new(4);
        slow.observe([Duration::from_secs(30)].into_iter());
        assert_eq!(slow.batch(), 4, "one each, at least");
    }

    #[test]
    fn claims_are_renewed_every_half_lease_once_something_is_claimed() {
        let start = Instant::now();
        let lease = Some(Duration::from_secs(10));
        let mut pace = Pace::new(1);
        assert!(!pace.renew_due(lease, start + Duration::from_secs(60)));
        pace.claimed(lease, start);
        pace.claimed(lease, start + Duration::from_secs(3));
        assert!(!pace.renew_due(lease, start + Duration::from_secs(4)));
        assert!(pace.renew_due(lease, start + Duration::from_secs(5)));
        assert!(!pace.renew_due(lease, start + Duration::from_secs(9)));
        assert!(pace.renew_due(lease, start + Duration::from_secs(10)));
        let mut sqlite = Pace::new(1);
        sqlite.claimed(None, start);
        assert!(!sqlite.renew_due(None, start + Duration::from_secs(3600)));
    }
}

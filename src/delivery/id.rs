//! Delivery ids: one per license per run, sent on every attempt so receivers can de-duplicate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new id, `msg_` then 12 hex digits of milliseconds (ids sort by creation) and 16 random.
///
/// The real time, not the run's [`Clock`](crate::schedule::clock::Clock): an id only has to be
/// unique and sort by creation, it decides nothing, and a pinned `--now` would make every
/// run's ids start alike.
pub fn new() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    let mut random = [0u8; 8];
    // Without OS randomness, fall back to the clock's nanoseconds: still unique per process.
    if getrandom::fill(&mut random).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        random[..4].copy_from_slice(&nanos.to_le_bytes());
    }
    format!(
        "msg_{:012x}{}",
        millis & 0xffff_ffff_ffff,
        hex::encode(random)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_well_formed() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| super::new()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.starts_with("msg_"))
        );
    }
}

//! Delivery ids: one per license per run, sent on every attempt so receivers can de-duplicate.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many ids' worth of OS randomness is read at once (one `getrandom` per this many ids).
const IDS_PER_FILL: usize = 128;

/// Random bytes read ahead from the OS, and how many of them are used.
struct Pool {
    bytes: [u8; 8 * IDS_PER_FILL],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; 8 * IDS_PER_FILL],
            used: 8 * IDS_PER_FILL,
        })
    };
}

/// 8 random bytes, from the pool (refilled from the OS when used up). Every byte is used
/// once.
fn random8() -> [u8; 8] {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used == pool.bytes.len() {
            if getrandom::fill(&mut pool.bytes).is_err() {
                // Without OS randomness, fall back to the clock's nanoseconds: still unique
                // per process.
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.subsec_nanos());
                let mut random = [0u8; 8];
                random[..4].copy_from_slice(&nanos.to_le_bytes());
                return random;
            }
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += 8;
        let mut random = [0u8; 8];
        random.copy_from_slice(&pool.bytes[at..at + 8]);
        random
    })
}

/// A new id, `msg_` then 12 hex digits of milliseconds (ids sort by creation) and 16 random.
///
/// The real time, not the run's [`Clock`](crate::schedule::clock::Clock): an id only has to be
/// unique and sort by creation, it decides nothing, and a pinned `--now` would make every
/// run's ids start alike. The random part comes from the OS, read [`IDS_PER_FILL`] ids ahead.
pub fn new() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    let mut id = String::with_capacity(32);
    id.push_str("msg_");
    push_hex(&mut id, &(millis & 0xffff_ffff_ffff).to_be_bytes()[2..]);
    push_hex(&mut id, &random8());
    id
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
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

    #[test]
    fn the_time_part_is_the_milliseconds_in_hex() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let id = super::new();
        let millis = u64::from_str_radix(&id[4..16], 16).unwrap();
        assert!(
            millis >= before & 0xffff_ffff_ffff && millis - before < 60_000,
            "{id}"
        );
        assert!(
            id[16..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}

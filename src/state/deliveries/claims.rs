//! Claims on a SQLite state, kept in memory. Only the holder of a source's lock sends its
//! deliveries (a file lock beside the state), and a new holder gives back whatever claims
//! are on the file before it sends, so a claim only has to keep this process's senders from
//! taking a delivery twice: writing it to the file (and to the WAL, and committing) cost a
//! page write per few deliveries and a third of the queue's instructions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The deliveries handed to senders of this process and not settled yet.
#[derive(Debug, Default)]
pub struct ClaimBook {
    /// By seq: who holds it, and of which source it is.
    held: HashMap<i64, Holder, BuildHasherDefault<SeqHasher>>,
    /// Per source, the highest seq handed out: the next claim looks above it first.
    above: HashMap<String, i64>,
    /// The holder named last, reused while claims name the same one.
    last: Option<Holder>,
}

/// Shared by every delivery a claim hands out: a claim of a thousand deliveries allocates
/// its two names once, not a thousand times.
#[derive(Debug, Clone)]
struct Holder {
    claimer: Arc<str>,
    source: Arc<str>,
}

/// Hashes a seq with one multiplication (Fibonacci hashing), where the standard SipHash cost
/// a twentieth of a claim: seqs are this database's own row numbers, not a peer's input that
/// could be chosen to collide. An odd multiplier keeps consecutive seqs in distinct buckets
/// and spreads them over the high bits the table's probes compare.
#[derive(Debug, Default)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_i64(&mut self, seq: i64) {
        self.0 = (seq as u64).wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio, made odd.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

impl ClaimBook {
    /// Where the next claim on `source` starts looking (nothing at or below it is new).
    pub fn cursor(&self, source: &str) -> i64 {
        self.above.get(source).copied().unwrap_or(0)
    }

    /// How many of `source`'s deliveries are held.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    pub fn is_held(&self, seq: i64) -> bool {
        self.held.contains_key(&seq)
    }

    /// `seq` of `source` is now `claimer`'s.
    pub fn hold(&mut self, seq: i64, source: &str, claimer: &str) {
        self.hold_all([(seq, source)], claimer);
    }

    /// Each of `deliveries` (seq and source) is now `claimer`'s. A source's highest seq is
    /// written once per run of its deliveries, not looked up (its name hashed) once each.
    pub fn hold_all<'d>(
        &mut self,
        deliveries: impl IntoIterator<Item = (i64, &'d str)>,
        claimer: &str,
    ) {
        let mut highest: Option<(&str, i64)> = None;
        for (seq, source) in deliveries {
            let holder = self.holder(source, claimer);
            self.held.insert(seq, holder);
            highest = match highest {
                Some((last, above)) if last == source => Some((last, above.max(seq))),
                other => {
                    if let Some((last, above)) = other {
                        self.raise(last, above);
                    }
                    Some((source, seq))
                }
            };
        }
        if let Some((last, above)) = highest {
            self.raise(last, above);
        }
    }

    /// The holder for `claimer` on `source`: the last one again while they are the same.
    fn holder(&mut self, source: &str, claimer: &str) -> Holder {
        match &self.last {
            Some(last) if *last.source == *source && *last.claimer == *claimer => last.clone(),
            _ => {
                let holder = Holder {
                    claimer: claimer.into(),
                    source: source.into(),
                };
                self.last = Some(holder.clone());
                holder
            }
        }
    }

    /// `seq` of `source` was handed out: the next claim starts above it.
    fn raise(&mut self, source: &str, seq: i64) {
        match self.above.get_mut(source) {
            Some(above) => *above = (*above).max(seq),
            None => {
                self.above.insert(source.to_string(), seq.max(0));
            }
        }
    }

    /// The delivery's outcome is recorded: it is in the queue again only if its status says so.
    pub fn settle(&mut self, seq: i64) {
        self.held.remove(&seq);
    }

    /// Gives back the claims of `claimer` on `source` (every claimer's with `None`).
    pub fn release(&mut self, source: &str, claimer: Option<&str>) {
        self.held.retain(|_, holder| {
            *holder.source != *source || claimer.is_some_and(|claimer| *holder.claimer != *claimer)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_gives_back_only_what_it_names() {
        let mut book = ClaimBook::default();
        book.hold(1, "t", "a");
        book.hold(2, "t", "b");
        book.hold(3, "u", "a");
        assert_eq!(book.cursor("t"), 2);
        book.release("t", Some("a"));
        assert!(!book.is_held(1) && book.is_held(2) && book.is_held(3));
        book.release("t", None);
        assert!(!book.is_held(2) && book.is_held(3));
        book.settle(3);
        assert_eq!(book.held_count(), 0);
        assert_eq!(
            book.cursor("t"),
            2,
            "the cursor only tells where new ones start"
        );
    }

    #[test]
    fn holding_a_batch_raises_each_sources_cursor_to_its_highest_seq() {
        let mut book = ClaimBook::default();
        book.hold(4, "u", "a");
        book.hold_all(
            [(5, "t"), (8, "t"), (6, "u"), (3, "u"), (7, "t"), (2, "v")],
            "b",
        );
        assert_eq!(
            [book.cursor("t"), book.cursor("u"), book.cursor("v")],
            [8, 6, 2]
        );
        assert_eq!(book.held_count(), 7);
        for seq in 2..=8 {
            assert!(book.is_held(seq), "{seq} is held");
        }
        book.release("u", Some("b"));
        assert!(book.is_held(4) && !book.is_held(6) && !book.is_held(3));
        // Thousands of consecutive seqs, as a big run claims them, each found again.
        book.hold_all((100..20_100).map(|seq| (seq, "w")), "c");
        assert!((100..20_100).all(|seq| book.is_held(seq)));
        assert!(!book.is_held(20_100) && !book.is_held(99));
        assert_eq!(book.cursor("w"), 20_099);
    }
}

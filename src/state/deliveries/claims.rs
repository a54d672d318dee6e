//! Claims on a SQLite state, kept in memory. Only the holder of a source's lock sends its
//! deliveries (a file lock beside the state), and a new holder gives back whatever claims
//! are on the file before it sends, so a claim only has to keep this process's senders from
//! taking a delivery twice: writing it to the file (and to the WAL, and committing) cost a
//! page write per few deliveries and a third of the queue's instructions.

use std::collections::HashMap;
use std::sync::Arc;

/// The deliveries handed to senders of this process and not settled yet.
#[derive(Debug, Default)]
pub struct ClaimBook {
    /// By seq: who holds it, and of which source it is.
    held: HashMap<i64, Holder>,
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
        let holder = match &self.last {
            Some(last) if *last.source == *source && *last.claimer == *claimer => last.clone(),
            _ => {
                let holder = Holder {
                    claimer: claimer.into(),
                    source: source.into(),
                };
                self.last = Some(holder.clone());
                holder
            }
        };
        self.held.insert(seq, holder);
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
}

//! Dispatch: outbox rows after the cursor become deliveries, one per (event, subscribed
//! webhook source), recorded with the cursor in one state transaction. Plain values: the
//! routes (which sources want which event types) and the body builder come from the caller;
//! sending is the delivery engine's.

use std::collections::BTreeSet;
use std::sync::mpsc;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::outbox::{OutboxRow, read_after};
use super::payload;
use super::postgres::{PgEventsError, PgOutbox};
use crate::licenses::snapshot::Snapshot;
use crate::state::events::{EventBatch, EventDelivery, Recorded};
use crate::state::{EventStore, StateError};

/// One webhook URL as dispatch sees it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The delivery source: the webhook's name, `#2`, `#3`... for further URLs.
    pub source: String,
    /// The webhook's name.
    pub webhook: String,
    /// The canonical event types it subscribes to (wildcards and aliases already expanded).
    pub events: BTreeSet<String>,
}

/// The exact bytes for an event (its row, and its snapshot as read once for all its routes)
/// to a route, or why its row cannot be sent.
pub type BodyOf<'a> =
    dyn Fn(&Route, &OutboxRow, &Snapshot) -> Result<Vec<u8>, BodyError> + Sync + 'a;

/// Why an event is not sent to a route: its snapshot cannot be sent truthfully (a bad value,
/// as a bad license row), or the route's webhook is no longer defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    #[error("its webhook is gone")]
    WebhookGone,
}

/// What one pass reads and where it records.
pub struct Pass<'a> {
    /// The license database's canonical path: the cursor's key.
    pub license_db: &'a str,
    pub routes: &'a [Route],
    /// The exact bytes to send for an event to a route, or why the event's row cannot be
    /// sent (a bad value in its snapshot): then that delivery is not recorded, and said.
    pub body: &'a BodyOf<'a>,
    /// Outbox rows read (and recorded) per transaction.
    pub batch: u32,
}

/// What a pass took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Outbox rows read past.
    pub events: u64,
    /// Deliveries recorded.
    pub deliveries: u64,
    /// The outbox hands out numbers at or below the cursor (the highest it handed out, the
    /// cursor): the license database was replaced by an older copy, and its new events are
    /// numbered where the cursor has already passed.
    pub behind: Option<(i64, i64)>,
}

/// An event a route was not sent: its delivery id and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsendable {
    pub id: String,
    pub reason: String,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("could not read the outbox: {0}")]
    Outbox(#[from] rusqlite::Error),
    #[error("could not read the outbox: {0}")]
    Server(#[from] PgEventsError),
    #[error(transparent)]
    State(#[from] StateError),
    /// No thread for reading the outbox ahead could be started: nothing was taken.
    #[error(
        "could not start a thread to read the outbox ({error}){}; what was not taken yet is taken \
         by the next dispatch",
        crate::delivery::dispatch::thread_limit_hint(.error, false)
    )]
    Thread { error: std::io::Error },
}

/// Where a pass reads outbox rows: a SQLite license database or a server.
pub trait Outbox: Send {
    /// Up to `limit` rows after sequence `after`, in seq order: commit order on SQLite; on a
    /// server, the order of each row's changes, and none that an open transaction could still
    /// commit a lower seq than.
    fn read_after(&mut self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, DispatchError>;

    /// The highest number the outbox has handed out, where it keeps one apart from its rows
    /// (SQLite's `sqlite_sequence`); `None` where it does not.
    fn handed_out(&mut self) -> Result<Option<i64>, DispatchError> {
        Ok(None)
    }
}

impl Outbox for Connection {
    fn read_after(&mut self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, DispatchError> {
        Ok(read_after(self, after, limit)?)
    }

    fn handed_out(&mut self) -> Result<Option<i64>, DispatchError> {
        Ok(crate::events::outbox::handed_out(self)?)
    }
}

impl Outbox for PgOutbox {
    fn read_after(&mut self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, DispatchError> {
        Ok(PgOutbox::read_after(self, after, limit)?)
    }
}

/// Reads the outbox rows after the cursor, batch by batch, and records their deliveries with
/// the cursor, until a batch comes back short: rows committed meanwhile are the next pass's,
/// so a pass never chases a busy writer while nothing is sent. A batch another dispatcher
/// recorded first is read again from its cursor.
///
/// Two threads share the work: one reads the rows and builds their bodies, a batch ahead,
/// while this one records the batch before.
pub fn take(
    state: &mut dyn EventStore,
    outbox: &mut dyn Outbox,
    pass: &Pass,
    now: i64,
    unsendable: &mut Vec<Unsendable>,
) -> Result<Taken, DispatchError> {
    let mut taken = Taken::default();
    let cursor = state.outbox_cursor(pass.license_db)?;
    taken.behind = outbox
        .handed_out()?
        .filter(|&handed_out| handed_out < cursor)
        .map(|handed_out| (handed_out, cursor));
    loop {
        let from = state.outbox_cursor(pass.license_db)?;
        let recorder = Recorder {
            state: &mut *state,
            pass,
            now,
        };
        if recorder.take_from(&mut *outbox, from, &mut taken, unsendable)? == Recorded::Done {
            return Ok(taken);
        }
    }
}

/// A batch read and made into deliveries, ready to record.
struct ReadBatch {
    /// The cursor it follows.
    from: i64,
    /// Its last row's seq.
    last: i64,
    rows: usize,
    deliveries: Vec<EventDelivery>,
    unsendable: Vec<Unsendable>,
}

/// The recording side of [`take`].
struct Recorder<'s, 'p> {
    state: &'s mut dyn EventStore,
    pass: &'p Pass<'p>,
    now: i64,
}

impl Recorder<'_, '_> {
    /// Records the batches after `from` as the reader brings them, until they end
    /// ([`Recorded::Done`]) or another dispatcher moves the cursor first ([`Recorded::Raced`]).
    fn take_from(
        self,
        outbox: &mut dyn Outbox,
        from: i64,
        taken: &mut Taken,
        unsendable: &mut Vec<Unsendable>,
    ) -> Result<Recorded, DispatchError> {
        let pass = self.pass;
        let (ready, arrived) = mpsc::sync_channel(1);
        std::thread::scope(|scope| {
            let reader = std::thread::Builder::new()
                .name("keyhook-outbox".into())
                .spawn_scoped(scope, move || read_ahead(outbox, pass, from, &ready))
                .map_err(|error| DispatchError::Thread { error })?;
            let recorded = self.record_all(&arrived, taken, unsendable);
            // The reader stops at its next batch once nobody takes them.
            drop(arrived);
            let read = match reader.join() {
                Ok(read) => read,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            let recorded = recorded?;
            // After a race the reader read ahead from a cursor that moved: the pass reads
            // again from the new one, so what it ran into is not this pass's error.
            if recorded == Recorded::Done {
                read?;
            }
            Ok(recorded)
        })
    }

    fn record_all(
        self,
        arrived: &mpsc::Receiver<ReadBatch>,
        taken: &mut Taken,
        unsendable: &mut Vec<Unsendable>,
    ) -> Result<Recorded, DispatchError> {
        for read in arrived {
            let batch = EventBatch {
                license_db: self.pass.license_db.to_string(),
                from: read.from,
                taken: read.last,
                deliveries: read.deliveries,
                expiries: Vec::new(),
            };
            if self.state.record_events(&batch, self.now)? == Recorded::Raced {
                return Ok(Recorded::Raced);
            }
            taken.events += read.rows as u64;
            taken.deliveries += batch.deliveries.len() as u64;
            unsendable.extend(read.unsendable);
        }
        Ok(Recorded::Done)
    }
}

/// The reading side of [`take`]: batch after batch from `from`, until one comes back short
/// or nobody takes them any more.
fn read_ahead(
    outbox: &mut dyn Outbox,
    pass: &Pass,
    mut from: i64,
    ready: &mpsc::SyncSender<ReadBatch>,
) -> Result<(), DispatchError> {
    loop {
        let rows = outbox.read_after(from, pass.batch)?;
        let Some(last) = rows.last().map(|row| row.seq) else {
            return Ok(());
        };
        let mut unsendable = Vec::new();
        let read = ReadBatch {
            from,
            last,
            rows: rows.len(),
            deliveries: deliveries(pass, &rows, &mut unsendable),
            unsendable,
        };
        if ready.send(read).is_err() || rows.len() < pass.batch as usize {
            return Ok(());
        }
        from = last;
    }
}

/// One delivery per row and subscribed route, in seq order. Each row's snapshot is read
/// once, for its subject and every route's body.
fn deliveries(
    pass: &Pass,
    rows: &[OutboxRow],
    unsendable: &mut Vec<Unsendable>,
) -> Vec<EventDelivery> {
    let hashes: Vec<String> = pass.routes.iter().map(|r| source_hash(&r.source)).collect();
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let mut wanted = pass
            .routes
            .iter()
            .zip(&hashes)
            .filter(|(route, _)| route.events.contains(&row.event_type))
            .peekable();
        if wanted.peek().is_none() {
            continue;
        }
        let key = event_key(row.seq);
        let snapshot = payload::parse_row(row);
        let subject = Subject::of(snapshot.as_ref().ok());
        for (route, hash) in wanted {
            let id = format!("{key}_{hash}");
            let body = match &snapshot {
                Ok(snapshot) => (pass.body)(route, row, snapshot),
                Err(error) => Err(BodyError::Payload(error.clone())),
            };
            let body = match body {
                Ok(body) => body,
                Err(reason) => {
                    let reason = reason.to_string();
                    unsendable.push(Unsendable { id, reason });
                    continue;
                }
            };
            deliveries.push(EventDelivery {
                id,
                source: route.source.clone(),
                event_type: row.event_type.clone(),
                event_key: key.clone(),
                order_key: row
                    .row_key
                    .as_ref()
                    .map(|key| format!("{}:{key}", row.table_name)),
                license_id: subject.license_id,
                activation_key: subject.activation_key.clone(),
                body,
            });
        }
    }
    deliveries
}

/// The event's stable id: its outbox seq.
pub fn event_key(seq: i64) -> String {
    format!("evt_{seq:012x}")
}

/// The delivery's stable id: the event's, and the source's hash, so each (event, source) has
/// its own id, the same on every pass that takes it and every re-send.
pub fn delivery_id(seq: i64, source: &str) -> String {
    delivery_id_of(&event_key(seq), source)
}

/// The delivery id of the event `event_key` to `source`: the key, and the source's hash.
pub fn delivery_id_of(event_key: &str, source: &str) -> String {
    format!("{event_key}_{}", source_hash(source))
}

/// The 8 hex digits of a source's SHA-256 that end its deliveries' ids.
fn source_hash(source: &str) -> String {
    hex::encode(&Sha256::digest(source.as_bytes())[..4])
}

/// The license a row is about, as far as its snapshot says: shown by `log` and `status`.
struct Subject {
    license_id: i64,
    activation_key: String,
}

impl Subject {
    /// From the row's snapshot; nothing when it could not be read.
    fn of(snapshot: Option<&Snapshot>) -> Subject {
        let key = snapshot.and_then(|s| s.get("ActivationKey"));
        let license_id = match key {
            Some(_) => snapshot
                .and_then(|s| s.get("ID"))
                .and_then(serde_json::Value::as_i64),
            None => None,
        };
        Subject {
            license_id: license_id.unwrap_or_default(),
            activation_key: key
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests;

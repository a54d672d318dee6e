//! A scheduled task as a source for the delivery engine: its target resolved from the task
//! file and settings, and its search's matches recorded as deliveries (the body built here).
//! The engine (`delivery`) sees only plain values: an endpoint, a signer, a policy, items.

use std::ops::Range;
use std::sync::mpsc;

use chrono::NaiveDateTime;

use crate::definitions::endpoint::EndpointError;
use crate::definitions::retry::policy;
use crate::definitions::{Search, Settings, Task};
use crate::delivery::payload::Envelope;
use crate::delivery::record::{NewRun, Recorder, Subject};
use crate::delivery::signature::Signer;
use crate::delivery::target::{Endpoint, Target};
use crate::licenses::database::LicenseDatabase;
use crate::licenses::license_info::{LicenseRow, PackedInfo, RowError};
use crate::licenses::query::QueryError;
use crate::state::{State, StateError};

/// Why a run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    State(#[from] StateError),
    /// No thread for reading the licenses could be started: nothing was recorded.
    #[error(
        "could not start a thread to read the licenses ({error}){}; nothing was recorded: the task \
         runs again on its next `run-task` (or, for a missed slot, `run-due`'s catch-up)",
        crate::delivery::dispatch::thread_limit_hint(.error, false)
    )]
    Thread { error: std::io::Error },
}

/// What recording a run came to.
#[derive(Debug, Default)]
pub struct Recorded {
    pub run_id: i64,
    /// Every row the search reached, bad ones included.
    pub matched: u64,
    /// Rows that could not be read as a license: recorded with the run, never sent.
    pub bad_rows: u64,
    /// The first [`BAD_ROWS_SHOWN`] of them, to show.
    pub bad: Vec<RowError>,
}

/// How many bad rows a run keeps in memory to show (all are recorded).
pub const BAD_ROWS_SHOWN: usize = 100;

/// A run of a task, about to be recorded.
pub struct TaskRun<'a> {
    pub task: &'a Task,
    pub search: &'a Search,
    /// The values of the search's placeholders.
    pub values: &'a [NaiveDateTime],
    pub slot: Option<i64>,
    pub now: i64,
    /// Whether the run sends: without it only the run, its count and its bad rows are kept.
    pub sends: bool,
}

/// The target of `task`: its secrets resolved, its signer built, its retry policy settled
/// (the task's keys over the settings'), its TLS files loaded. The error is in words about
/// the `[webhook]` table.
pub fn target(task: &Task, settings: &Settings) -> Result<Target, EndpointError> {
    let mut secrets = task.webhook.secret.resolve_all()?;
    secrets.extend(task.webhook.previous_secrets.iter().cloned());
    let signer = Signer::new(&task.webhook.schemes, &secrets)?;
    let policy = policy(&task.webhook.retry, &settings.retry)?;
    let tls = task.webhook.tls.over(&settings.tls).load()?;
    Ok(Target {
        source: task.stem.clone(),
        endpoint: Endpoint {
            url: task.webhook.url.clone(),
            timeout: task.webhook.timeout,
            tls,
        },
        signer,
        policy,
        // The task's own setting; `run-task --concurrency` overrides it for one run.
        concurrency: task.concurrency.unwrap_or(1).max(1),
    })
}

/// Records every match of the run's search as a pending delivery of a new run, all or nothing
/// ([`Recorder`]), before anything is sent. A bad row is recorded as such and holds back no
/// other.
///
/// Two threads share the work: one reads the licenses and builds their bodies, this one
/// stores them, a batch at a time; on two cores the run is ready to send in about half the
/// time. What one has not taken yet waits in a bounded queue, so memory stays flat.
pub fn record(
    state: &mut State,
    db: &mut dyn LicenseDatabase,
    run: &TaskRun,
) -> Result<Recorded, RecordError> {
    let task = run.task;
    let new_run = NewRun {
        source: &task.stem,
        name: &task.name,
        slot: run.slot,
        now: run.now,
        sends: run.sends,
    };
    let mut recorder = Recorder::begin(state, &new_run)?;
    let sends = recorder.sends();
    let packs = recorder.packs();
    let envelope = Envelope::new(&task.name, &task.webhook.user_data);
    let mut recorded = Recorded::default();
    let (batches, arrived) = mpsc::sync_channel(BATCHES_AHEAD);
    let (matched, stored) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("keyhook-reader".into())
            .spawn_scoped(scope, move || read(db, run, sends, packs, batches))
            .map_err(|error| RecordError::Thread { error })?;
        let stored = store(&mut recorder, &mut recorded, &envelope, arrived);
        let matched = match reader.join() {
            Ok(matched) => matched,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok::<_, RecordError>((matched, stored))
    })?;
    // The store failing stops the reader early: its error is the one to report.
    stored?;
    let matched = matched?;
    recorded.run_id = recorder.commit(matched)?;
    recorded.matched = matched;
    Ok(recorded)
}

/// How many licenses go from the reader to the store at once...
const BATCH: usize = 64;
/// ... and how many batches may wait for the store.
const BATCHES_AHEAD: usize = 16;

/// Matches on their way to the store: the licenses' activation keys end to end in one buffer,
/// their `LicenseInfo` objects in another (allocations per batch, not two per match). The
/// store puts the task's envelope around each `LicenseInfo` as it copies it into the run.
struct Batch {
    keys: String,
    infos: Vec<u8>,
    items: Vec<Item>,
}

/// A match, ready to store; its text in its [`Batch`].
enum Item {
    License {
        license_id: i64,
        activation_key: Range<usize>,
        info: Range<usize>,
        /// Packed: its length as JSON. `None`: `info` is the JSON.
        packed: Option<usize>,
    },
    Bad(RowError),
}

impl Batch {
    fn new() -> Batch {
        Batch {
            keys: String::with_capacity(BATCH * 32),
            // A QLM license's `LicenseInfo` takes about 1.2 KB as JSON, half that packed.
            infos: Vec::with_capacity(BATCH * 1280),
            items: Vec::with_capacity(BATCH),
        }
    }

    fn push_license(&mut self, license: &LicenseRow) {
        let start = self.keys.len();
        self.keys.push_str(license.activation_key());
        let activation_key = start..self.keys.len();
        let start = self.infos.len();
        // As it was read: packed when the store packs, else as JSON.
        let packed = match license.packed() {
            Some(info) => {
                self.infos.extend_from_slice(info.values);
                Some(info.json_len)
            }
            None => {
                let json = license.info_json().unwrap_or_default();
                self.infos.extend_from_slice(json);
                None
            }
        };
        self.items.push(Item::License {
            license_id: license.id,
            activation_key,
            info: start..self.infos.len(),
            packed,
        });
    }
}

/// The reading side: every match of the search, its `LicenseInfo` written (only when the run
/// sends), in batches; stops early when the store has gone.
fn read(
    db: &mut dyn LicenseDatabase,
    run: &TaskRun,
    sends: bool,
    packs: bool,
    batches: mpsc::SyncSender<Batch>,
) -> Result<u64, QueryError> {
    let mut batch = Batch::new();
    let mut open = true;
    let mut each = |row: Result<LicenseRow, RowError>| {
        match row {
            Ok(license) if sends => batch.push_license(&license),
            Ok(_) => {}
            Err(bad) => batch.items.push(Item::Bad(bad)),
        }
        if batch.items.len() == BATCH {
            let full = std::mem::replace(&mut batch, Batch::new());
            open = batches.send(full).is_ok();
        }
        open
    };
    let template = &run.search.template;
    let matched = db.each_license_row(template, run.values, packs, &mut each)?;
    if open && !batch.items.is_empty() {
        let _ = batches.send(batch);
    }
    Ok(matched)
}

/// The storing side: every item into the run's transaction, until the reader is done or a
/// write fails (then the reader stops at its next batch).
fn store(
    recorder: &mut Recorder,
    recorded: &mut Recorded,
    envelope: &Envelope,
    arrived: mpsc::Receiver<Batch>,
) -> Result<(), StateError> {
    for batch in arrived {
        for item in batch.items {
            match item {
                Item::License {
                    license_id,
                    activation_key,
                    info,
                    packed,
                } => {
                    let subject = Subject {
                        license_id,
                        activation_key: &batch.keys[activation_key],
                    };
                    let info = &batch.infos[info];
                    match packed {
                        Some(json_len) => {
                            let [head, _, tail] = envelope.parts(&[]);
                            let info = PackedInfo {
                                values: info,
                                json_len,
                            };
                            recorder.add_packed(subject, head, info, tail)?
                        }
                        None => recorder.add_parts(subject, &envelope.parts(info))?,
                    }
                }
                Item::Bad(bad) => add_bad(recorder, recorded, bad)?,
            }
        }
    }
    Ok(())
}

fn add_bad(
    recorder: &mut Recorder,
    recorded: &mut Recorded,
    bad: RowError,
) -> Result<(), StateError> {
    let subject = Subject {
        license_id: bad.id,
        activation_key: &bad.key,
    };
    let added = recorder.add_bad(subject, &bad.to_string());
    recorded.bad_rows += 1;
    if recorded.bad.len() < BAD_ROWS_SHOWN {
        recorded.bad.push(bad);
    }
    added
}

//! The state schema, versioned with `PRAGMA user_version` and migrated on open.

use std::path::Path;

use rusqlite::Connection;

use super::StateError;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: [&str; 14] = [
    r#"
CREATE TABLE tasks (
    task          TEXT PRIMARY KEY,   -- the task file's stem
    first_seen    INTEGER NOT NULL,   -- when keyhook first saw the task (unix seconds)
    last_run      INTEGER,            -- start of the last run that completed, for [date]
    last_slot     INTEGER,            -- the scheduled slot that run was for
    webhook_gone  INTEGER             -- set when the receiver answered 410 Gone
);
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    task         TEXT NOT NULL,
    name         TEXT NOT NULL,
    slot         INTEGER,             -- the scheduled slot; NULL for a forced run
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    matched      INTEGER NOT NULL DEFAULT 0,
    sent         INTEGER NOT NULL DEFAULT 1,  -- 0: webhooks were disabled, nothing sent
    UNIQUE (task, slot)
);
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,    -- the delivery id, sent on every attempt
    run_id           INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task             TEXT NOT NULL,
    license_id       INTEGER NOT NULL,
    activation_key   TEXT NOT NULL,
    body             BLOB NOT NULL,           -- the exact bytes sent, on every attempt
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'failed', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    claimed_by       TEXT                     -- the process sending it right now
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_run ON deliveries (run_id, status);
CREATE INDEX deliveries_task ON deliveries (task, created_at);
CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY,
    delivery_seq  INTEGER NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    at            INTEGER NOT NULL,
    status        INTEGER,                    -- HTTP status, NULL when none came back
    error         TEXT,                       -- NULL when delivered
    duration_ms   INTEGER NOT NULL,
    excerpt       TEXT                        -- first bytes of the response body
);
CREATE INDEX attempts_delivery ON attempts (delivery_seq);
"#,
    // v2: runs that `run-due` skipped because their slot was missed by more than `catch_up`.
    r#"
ALTER TABLE runs ADD COLUMN skipped TEXT;
"#,
    // v3: the send queues, in order, holding only what is still to send, so claiming the next
    // batch costs the same at the 400,000th delivery as at the first.
    r#"
CREATE INDEX deliveries_run_queue ON deliveries (run_id, seq)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_task_queue ON deliveries (task, seq)
    WHERE status IN ('pending', 'failed');
"#,
    // v4: one queue index instead of three. Every index that a delivery's status change
    // touches is another page written per commit, and sending commits once per delivery.
    r#"
DROP INDEX deliveries_due;
DROP INDEX deliveries_run_queue;
DROP INDEX deliveries_run;
CREATE INDEX deliveries_run ON deliveries (run_id);
"#,
    // v5: attempts keyed by (delivery, attempt number) in a WITHOUT ROWID table, so the table
    // is its own index: one page less written per attempt than a rowid table plus an index.
    r#"
CREATE TABLE attempts_v5 (
    delivery_seq  INTEGER NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    n             INTEGER NOT NULL,           -- 1 for a delivery's first attempt
    at            INTEGER NOT NULL,           -- unix milliseconds
    status        INTEGER,                    -- HTTP status, NULL when none came back
    error         TEXT,                       -- NULL when delivered
    duration_ms   INTEGER NOT NULL,
    excerpt       TEXT,                       -- first bytes of the response body
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;
INSERT INTO attempts_v5 (delivery_seq, n, at, status, error, duration_ms, excerpt)
    SELECT delivery_seq, row_number() OVER (PARTITION BY delivery_seq ORDER BY id),
           at, status, error, duration_ms, excerpt
    FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v5 RENAME TO attempts;
"#,
    // v6: license rows a run could not read (text in an integer column, a blob, an unknown
    // license model, ...): recorded with the run, never sent, shown by `log` and `status`.
    r#"
CREATE TABLE bad_rows (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task            TEXT NOT NULL,
    license_id      INTEGER NOT NULL,
    activation_key  TEXT NOT NULL,       -- as far as it could be read; '' when not at all
    reason          TEXT NOT NULL,       -- which column holds what
    created_at      INTEGER NOT NULL
);
CREATE INDEX bad_rows_run ON bad_rows (run_id);
CREATE INDEX bad_rows_task ON bad_rows (task, created_at);
"#,
    // v7: event deliveries. They share `deliveries` (`task` holds the webhook's source: its
    // name, `#2`, `#3`... for further URLs) and add what an event needs: its type (a header),
    // its stable key, and the entity whose events keep commit order. The order index holds
    // only waiting event deliveries, so task deliveries (order_key NULL) never touch it.
    // `outbox_cursors` is the last outbox seq taken per license database, moved in the same
    // transaction as the deliveries it produced; `expiries_seen` dedupes `license.expired`;
    // `webhook_sources` is what a 410 disables for a webhook, as `tasks.webhook_gone` is for
    // a task.
    r#"
ALTER TABLE deliveries ADD COLUMN event_type TEXT;
ALTER TABLE deliveries ADD COLUMN event_key TEXT;
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
CREATE INDEX deliveries_order ON deliveries (task, order_key, seq)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed');
CREATE TABLE outbox_cursors (
    license_db  TEXT PRIMARY KEY,     -- the license database's canonical path
    taken       INTEGER NOT NULL,     -- the last outbox seq turned into deliveries
    updated_at  INTEGER NOT NULL
);
CREATE TABLE expiries_seen (
    license_db  TEXT NOT NULL,
    license_id  INTEGER NOT NULL,
    expiry      TEXT NOT NULL,        -- the expiry value: a renewal that moves it re-arms it
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (license_db, license_id, expiry)
) WITHOUT ROWID;
CREATE TABLE webhook_sources (
    source        TEXT PRIMARY KEY,   -- the webhook's name, `#2`... for further URLs
    webhook       TEXT NOT NULL,
    url           TEXT NOT NULL,
    first_seen    INTEGER NOT NULL,
    webhook_gone  INTEGER             -- set when the receiver answered 410 Gone
);
"#,
    // v8: how far `license.expired` scans got per license database (the next window starts
    // there), moved in the same transaction as the expiries and deliveries they found.
    r#"
CREATE TABLE expiry_scans (
    license_db  TEXT PRIMARY KEY,     -- the license database's canonical path
    scanned_to  TEXT NOT NULL,        -- the window's end, as the database writes dates
    updated_at  INTEGER NOT NULL
);
"#,
    // v9: bodies in their own table, written once when a delivery is recorded and never
    // again. A delivery row changes three times (recorded, claimed, its outcome); with a
    // 1-2 KB body in it, each change rewrote (and logged to the WAL) about a third of a page
    // per delivery, and the queue's pages did not fit SQLite's page cache.
    r#"
CREATE TABLE delivery_bodies (
    seq   INTEGER PRIMARY KEY REFERENCES deliveries (seq) ON DELETE CASCADE,
    body  BLOB NOT NULL                   -- the exact bytes sent, on every attempt
);
INSERT INTO delivery_bodies (seq, body) SELECT seq, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
-- Claims on a SQLite state are kept in memory now (`deliveries/claims.rs`); this finds the
-- ones an earlier version wrote, for the lock's next holder to give back, without a scan.
CREATE INDEX deliveries_claimed ON deliveries (task) WHERE claimed_by IS NOT NULL;
"#,
    // v10: the host that ran each run (`--host`), as on a PostgreSQL state, so `state migrate`
    // carries it there. Older runs keep NULL: their host is not known.
    r#"
ALTER TABLE runs ADD COLUMN host TEXT;
"#,
    // v11: the by-source index holds event deliveries only. The webhook sources' summary is
    // the one query that looks deliveries up by source; recording a task's run kept the index
    // up to date for every delivery, a fifth of what inserting one cost.
    r#"
DROP INDEX deliveries_task;
CREATE INDEX deliveries_event_source ON deliveries (task) WHERE event_type IS NOT NULL;
"#,
    // v12: a big run is recorded in pieces, each its own transaction (one that outgrew SQLite's
    // page cache made SQLite read its whole WAL back at the commit). `recording` is set on the
    // run from its first piece and cleared by its last; a run still marked was killed while
    // recording, and the task's next lock holder removes it, deliveries and all, as if it had
    // never started. Runs recorded before v12 are complete: NULL. The index holds the marked
    // runs alone: every send path looks for its source's, and an event source has a run per
    // dispatch pass.
    r#"
ALTER TABLE runs ADD COLUMN recording INTEGER;
CREATE INDEX runs_recording ON runs (task) WHERE recording IS NOT NULL;
"#,
    // v13: when a delivery last reached a webhook URL, kept by `prune` as it deletes the
    // deliveries that said so (the summary takes the later of this and what is left), so
    // `status` does not call a webhook that was delivered to "never".
    r#"
ALTER TABLE webhook_sources ADD COLUMN last_delivered INTEGER;
"#,
    r#"
-- No change to the tables: from this version on a task's body may be stored packed
-- (`src/licenses/license_info/packed.rs`), which an earlier keyhook would send as it is
-- stored. The version makes an earlier keyhook refuse this file (`TooNew`) instead.
"#,
];

/// Brings the schema up to date, in one transaction per step.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let sql_error = |source| StateError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|error| super::classify(path, error))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            version,
            known,
        });
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(sql_error)?;
        if tables > 0 {
            return Err(StateError::Corrupt {
                path: path.to_path_buf(),
                detail: "it holds tables but is not a keyhook state database".into(),
            });
        }
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        // Write-locked from the start, and the version read again under the lock: another
        // keyhook process that opened the same old file at the same moment migrates it first,
        // and this one then finds the step done.
        let transaction = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let current: i64 = transaction
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql_error)?;
        if current > index as i64 {
            continue;
        }
        transaction.execute_batch(step).map_err(sql_error)?;
        transaction
            .pragma_update(None, "user_version", index as i64 + 1)
            .map_err(sql_error)?;
        transaction.commit().map_err(sql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The state schema, versioned with `PRAGMA user_version` and migrated on open.

use std::path::Path;

use rusqlite::Connection;

use super::StateError;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: [&str; 10] = [
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
        let transaction = conn.transaction().map_err(sql_error)?;
        transaction.execute_batch(step).map_err(sql_error)?;
        transaction
            .pragma_update(None, "user_version", index as i64 + 1)
            .map_err(sql_error)?;
        transaction.commit().map_err(sql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at schema version `version`, as that keyhook left it.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    #[test]
    fn v5_numbers_each_deliverys_attempts_in_the_order_they_were_made() {
        let mut conn = at_version(4);
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);
             INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, body,
                                     created_at, next_attempt_at, updated_at)
             VALUES (1, 'a', 1, 't', 1, 'K1', x'7b7d', 0, 0, 0),
                    (2, 'b', 1, 't', 2, 'K2', x'7b7d', 0, 0, 0);
             INSERT INTO attempts (id, delivery_seq, at, status, error, duration_ms, excerpt)
             VALUES (10, 1, 100, 503, 'down', 5, ''),
                    (11, 2, 150, 200, NULL, 4, 'ok'),
                    (12, 1, 200, 500, 'boom', 6, 'x'),
                    (13, 1, 300, 200, NULL, 7, 'ok');",
        )
        .unwrap();
        migrate(&mut conn, Path::new("state.db")).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mut statement = conn
            .prepare(
                "SELECT delivery_seq, n, at, status, error FROM attempts ORDER BY delivery_seq, n",
            )
            .unwrap();
        let rows: Vec<(i64, i64, i64, i64, Option<String>)> = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (1, 1, 100, 503, Some("down".into())),
                (1, 2, 200, 500, Some("boom".into())),
                (1, 3, 300, 200, None),
                (2, 1, 150, 200, None),
            ]
        );
        // Deleting a delivery still takes its attempts with it.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM deliveries WHERE seq = 1;")
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM attempts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 1);
    }

    #[test]
    fn v7_keeps_task_deliveries_as_they_were_and_adds_the_event_columns_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut conn = Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..6] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);
             INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, body,
                                     created_at, next_attempt_at, updated_at)
             VALUES (1, 'a', 1, 't', 1, 'K1', x'7b7d', 0, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        let row: (String, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT status, event_type, order_key FROM deliveries WHERE seq = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("pending".into(), None, None));
        for table in ["outbox_cursors", "expiries_seen", "webhook_sources"] {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
        // A task delivery is not in the order index: it costs task sends no page.
        let indexed: i64 = conn
            .query_row(
                "SELECT count(*) FROM deliveries INDEXED BY deliveries_order
                 WHERE order_key IS NOT NULL AND status IN ('pending', 'failed')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexed, 0);
    }

    #[test]
    fn v10_keeps_runs_with_no_host_and_records_one_from_then_on() {
        let mut conn = at_version(9);
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);",
        )
        .unwrap();
        migrate(&mut conn, Path::new("state.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at, host) VALUES (2, 't', 'T', 1, 'h1');",
        )
        .unwrap();
        let hosts: Vec<Option<String>> = conn
            .prepare("SELECT host FROM runs ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(hosts, [None, Some("h1".to_string())]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = at_version(MIGRATIONS.len());
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        let error = migrate(&mut conn, Path::new("state.db")).unwrap_err();
        assert!(matches!(error, StateError::TooNew { .. }), "{error}");
    }

    #[test]
    fn v6_keeps_runs_and_deliveries_and_adds_bad_rows_that_go_with_their_run() {
        let mut conn = at_version(5);
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);
             INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, body,
                                     created_at, next_attempt_at, updated_at)
             VALUES (1, 'a', 1, 't', 1, 'K1', x'7b7d', 0, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn, Path::new("state.db")).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO bad_rows (run_id, task, license_id, activation_key, reason, created_at)
             VALUES (1, 't', 2, 'K2', 'column Duration holds `x`', 0);",
        )
        .unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM deliveries"), 1);
        assert_eq!(count("SELECT count(*) FROM bad_rows"), 1);
        conn.execute_batch("DELETE FROM deliveries; DELETE FROM runs;")
            .unwrap();
        assert_eq!(
            count("SELECT count(*) FROM bad_rows"),
            0,
            "pruned with the run"
        );
    }

    #[test]
    fn v9_moves_every_body_to_its_own_table_byte_for_byte_and_deletes_it_with_its_delivery() {
        let mut conn = at_version(8);
        conn.execute_batch(
            "INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);
             INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key, body,
                                     created_at, next_attempt_at, updated_at)
             VALUES (1, 'a', 1, 't', 1, 'K1', x'7b0a7d', 0, 0, 0),
                    (2, 'b', 1, 't', 2, 'K2', x'00ff', 0, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn, Path::new("state.db")).unwrap();
        let body = |seq: i64| -> Vec<u8> {
            conn.query_row(
                "SELECT body FROM delivery_bodies WHERE seq = ?1",
                [seq],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!(body(1), b"{\n}");
        assert_eq!(body(2), [0x00, 0xff]);
        let columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('deliveries') WHERE name = 'body'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0, "the body is no longer in the delivery row");
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM runs;")
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM delivery_bodies", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 0, "pruned with its run and delivery");
    }
}

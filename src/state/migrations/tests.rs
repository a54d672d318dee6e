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
        .prepare("SELECT delivery_seq, n, at, status, error FROM attempts ORDER BY delivery_seq, n")
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
    conn.execute_batch("INSERT INTO runs (id, task, name, started_at) VALUES (1, 't', 'T', 0);")
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
fn v11_indexes_event_deliveries_by_source_and_task_deliveries_not_at_all() {
    let mut conn = at_version(10);
    conn.execute_batch(
        "INSERT INTO runs (id, task, name, started_at) VALUES (1, 'crm', 'crm', 0);
         INSERT INTO webhook_sources (source, webhook, url, first_seen)
             VALUES ('crm', 'crm', 'http://h/', 0);
         INSERT INTO deliveries (id, run_id, task, license_id, activation_key, created_at,
             next_attempt_at, updated_at, event_type)
         VALUES ('e', 1, 'crm', 1, 'K', 0, 0, 0, 'license.created'),
                ('t', 1, 'renewals', 2, 'K', 0, 0, 0, NULL);",
    )
    .unwrap();
    migrate(&mut conn, Path::new("state.db")).unwrap();
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM deliveries INDEXED BY deliveries_event_source
                 WHERE event_type IS NOT NULL AND task IN ('crm', 'renewals')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1);
    // The webhook sources' summary still finds its deliveries through an index.
    let plan: Vec<String> = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            crate::state::rows::SOURCE_SUMMARIES
        ))
        .unwrap()
        .query_map([], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("deliveries USING INDEX deliveries_event_source")),
        "{plan:?}"
    );
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

#[test]
fn a_new_state_file_gets_8k_pages_and_an_older_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let page_and_checkpoint = |state: &crate::state::StateDb| -> (i64, i64) {
        let page = state
            .conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        let pages = state
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        (page, pages)
    };
    let new = crate::state::StateDb::open(&dir.path().join("new.db")).unwrap();
    assert_eq!(page_and_checkpoint(&new), (8192, 4096));

    // A file made with SQLite's default 4 KiB pages, as keyhook made them before.
    let old_path = dir.path().join("old.db");
    Connection::open(&old_path)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
        .unwrap();
    let mut old = crate::state::StateDb::open(&old_path).unwrap();
    let run = old.begin_run("t", "T", None, 1000, true).unwrap();
    run.commit(0).unwrap();
    drop(old);
    let old = crate::state::StateDb::open(&old_path).unwrap();
    // 32 MiB of WAL either way.
    assert_eq!(page_and_checkpoint(&old), (4096, 8192));
    let runs: i64 = old
        .conn
        .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
        .unwrap();
    assert_eq!(runs, 1);
}

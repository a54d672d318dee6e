//! `keyhook db init` and `keyhook db demo` write real SQLite files.

use crate::support::{Test, stderr, stdout};

#[test]
fn init_is_idempotent_and_keeps_data() {
    let test = Test::new();
    test.simple_license(1, "2026-12-01T00:00:00");
    let output = test.keyhook(["db", "init"]).output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        "license database licenses.db is ready (1 licenses)\n"
    );
}

#[test]
fn demo_refuses_to_overwrite_without_force() {
    let test = Test::new();
    let output = test.keyhook(["db", "demo"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("licenses.db already exists; pass --force"));
    let output = test
        .keyhook(["db", "demo", "--force", "--licenses", "1000"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "wrote 1000 demo licenses to licenses.db (dates around 2026-11-23)\n"
    );
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    let (count, trials, non_ascii): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(LicenseModel = 'trial'), sum(FullName GLOB '*[^ -~]*') FROM LicenseKeys",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(count, 1000);
    assert!(
        trials > 0 && non_ascii > 0,
        "{trials} trials, {non_ascii} non-ASCII names"
    );
}

#[test]
fn the_same_seed_and_day_give_the_same_database() {
    let dump = |test: &Test| -> Vec<String> {
        let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
        let mut statement = conn
            .prepare("SELECT ActivationKey || FullName || ifnull(SubscriptionExpiryDate, '') FROM LicenseKeys ORDER BY ID")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (a, b) = (Test::new(), Test::new());
    a.keyhook(["db", "demo", "--force"]).assert().success();
    b.keyhook(["db", "demo", "--force"]).assert().success();
    assert_eq!(dump(&a), dump(&b));
    b.keyhook(["db", "demo", "--force", "--seed", "7"])
        .assert()
        .success();
    assert_ne!(dump(&a), dump(&b));
}

/// A log a crash left beside the old database does not outlive it: SQLite would read the old
/// pages from it over the demo's. One that another process has open stops the demo instead.
#[test]
fn demo_force_over_a_database_with_a_log_left_beside_it_is_the_demo() {
    let test = Test::new();
    let db = test.path("licenses.db");
    let side = |suffix: &str| test.path(&format!("licenses.db{suffix}"));
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE Old (x); INSERT INTO Old VALUES (1);",
        )
        .unwrap();
        // A crash: the log as it was while the writer had it open, put back after it closed.
        std::fs::copy(side("-wal"), side("-wal.crash")).unwrap();
        std::fs::copy(side("-shm"), side("-shm.crash")).unwrap();
    }
    std::fs::rename(side("-wal.crash"), side("-wal")).unwrap();
    std::fs::rename(side("-shm.crash"), side("-shm")).unwrap();
    let output = test
        .keyhook(["db", "demo", "--force", "--licenses", "100"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!side("-wal").exists(), "the old log is gone");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!tables.contains(&"Old".to_string()), "{tables:?}");
    let count: i64 = conn
        .query_row("SELECT count(*) FROM LicenseKeys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 100);
    drop(conn);

    // Open in another process (here: this one, in WAL mode): not replaced under it.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode = WAL; UPDATE LicenseKeys SET Email = 'x';")
        .unwrap();
    let output = test
        .keyhook(["db", "demo", "--force", "--licenses", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is open in another process"),
        "{}",
        stderr(&output)
    );
    let count: i64 = holder
        .query_row("SELECT count(*) FROM LicenseKeys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 100, "left as it was");
    assert!(!test.path(".licenses.db.tmp").exists());
    drop(holder);

    // Another process in a transaction on a database with a rollback journal: not replaced,
    // and its journal left where it is.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .execute_batch(
            "PRAGMA journal_mode = DELETE; BEGIN IMMEDIATE; UPDATE LicenseKeys SET Email = 'y';",
        )
        .unwrap();
    assert!(side("-journal").exists());
    let output = test
        .keyhook(["db", "demo", "--force", "--licenses", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(side("-journal").exists(), "its journal is kept");
    holder.execute_batch("COMMIT").unwrap();
}

//! A license database keyhook cannot use as it is: missing columns, a read-only folder, and
//! searches that would take the machine's memory. Each is named, and none is blamed on the
//! wrong party.

use crate::support::unprivileged::{chmod, unprivileged};
use crate::support::{Test, stderr, stdout};

/// Replaces the license database with one whose table has only `columns`.
fn partial_table(test: &Test, columns: &str) {
    let path = test.path("licenses.db");
    std::fs::remove_file(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("CREATE TABLE LicenseKeys ({columns});"))
        .unwrap();
}

#[test]
fn a_table_without_qlms_columns_is_the_databases_fault() {
    let test = Test::new().search("by-email", "Email = 'a@example.com'");
    partial_table(
        &test,
        "ID INTEGER PRIMARY KEY, ActivationKey TEXT, Email TEXT",
    );
    for args in [
        vec!["dry-run", "by-email"],
        vec!["dry-run", "by-email", "--count"],
    ] {
        let output = test.keyhook(&args).output().unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {error}");
        assert!(
            error.contains("license database licenses.db lacks QLM's column(s) SubscriptionExpiryDate, LicenseUpdatedOnServer, FullName"),
            "{error}"
        );
        assert!(
            error.contains("OrganizationID in its LicenseKeys table"),
            "{error}"
        );
        assert!(!error.contains("no such column"), "{error}");
        assert!(!error.contains("ActivationKey,"), "{error}");
    }
    let output = test.keyhook(["check"]).output().unwrap();
    assert!(
        stdout(&output).contains("lacks QLM's column(s)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_searched_column_the_table_lacks_is_named() {
    let test = Test::new().search("recent", "CreationDate > '2026-01-01'");
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute_batch(
        "DROP INDEX idx_LicenseKeys_CreationDate; ALTER TABLE LicenseKeys DROP COLUMN CreationDate;",
    )
    .unwrap();
    let output = test
        .keyhook(["dry-run", "recent", "--count"])
        .output()
        .unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("search `recent` (searches/recent.toml): license database licenses.db lacks QLM's column(s) CreationDate in its LicenseKeys table"),
        "{error}"
    );
    // A column that is not QLM's is the search's typo, as before.
    let test = test.search("typo", "CreationDat > '2026-01-01'");
    let output = test
        .keyhook(["dry-run", "typo", "--count"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no such column: CreationDat"));
}

#[test]
fn paths_that_hold_no_database_say_why() {
    let test = Test::new().search("all", "1 = 1");
    std::fs::write(test.path("plain"), "not a folder").unwrap();
    std::fs::write(test.path("text.db"), "x".repeat(4096)).unwrap();
    let cases = [
        (
            "searches",
            "could not open license database searches: it is a folder, not a file",
        ),
        (
            "plain/licenses.db",
            "could not open license database plain/licenses.db: plain is a file, not a folder",
        ),
        (
            "text.db",
            "text.db is not a license database: it is not a SQLite file",
        ),
    ];
    for (db, expected) in cases {
        let output = test
            .keyhook(["dry-run", "all", "--db", db])
            .output()
            .unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{db}: {error}");
        assert!(error.contains(expected), "{db}: {error}");
        assert!(!error.contains("does not exist"), "{db}: {error}");
    }
}

/// A WAL-mode database with three licenses in `folder`; with `keep_wal`, its last change is
/// still in the `-wal` file (copied without the `-shm`, as a backup or a copy would leave it).
fn wal_database(test: &Test, folder: &str, keep_wal: bool) {
    let source = test.path("source");
    std::fs::create_dir_all(&source).unwrap();
    let conn = rusqlite::Connection::open(source.join("licenses.db")).unwrap();
    conn.execute_batch(&keyhook_ddl()).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1'), (2, 'K2');
         PRAGMA wal_checkpoint(TRUNCATE);
         INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (3, 'K3');",
    )
    .unwrap();
    let target = test.path(folder);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(source.join("licenses.db"), target.join("licenses.db")).unwrap();
    if keep_wal {
        std::fs::copy(
            source.join("licenses.db-wal"),
            target.join("licenses.db-wal"),
        )
        .unwrap();
    } else {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        std::fs::copy(source.join("licenses.db"), target.join("licenses.db")).unwrap();
    }
    chmod(test.dir.path(), 0o755);
    chmod(&target, 0o555);
}

fn keyhook_ddl() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ddl.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    drop(conn);
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("keyhook"))
        .args(["db", "init", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut statement = conn
        .prepare("SELECT sql || ';' FROM sqlite_master")
        .unwrap();
    let ddl: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ddl.join("\n")
}

#[test]
fn a_wal_database_in_a_read_only_folder_is_read() {
    let test = Test::new().search("all", "1 = 1");
    wal_database(&test, "readonly", false);
    let command = test.process(["dry-run", "all", "--count", "--db", "readonly/licenses.db"]);
    let Some(mut command) = unprivileged(command) else {
        return;
    };
    let output = command.output().unwrap();
    chmod(&test.path("readonly"), 0o755);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "3\n");
    let left: Vec<_> = std::fs::read_dir(test.path("readonly"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["licenses.db"], "nothing written beside it");
}

#[test]
fn a_wal_file_that_cannot_be_read_safely_says_what_to_do() {
    let test = Test::new().search("all", "1 = 1");
    wal_database(&test, "readonly", true);
    let command = test.process(["dry-run", "all", "--count", "--db", "readonly/licenses.db"]);
    let Some(mut command) = unprivileged(command) else {
        return;
    };
    let output = command.output().unwrap();
    chmod(&test.path("readonly"), 0o755);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("license database readonly/licenses.db is in WAL mode and its folder readonly is not writable"),
        "{error}"
    );
    assert!(error.contains("PRAGMA wal_checkpoint(TRUNCATE)"), "{error}");
    assert!(
        !error.contains("attempt to write a readonly database"),
        "{error}"
    );
}

#[test]
fn a_search_cannot_take_the_machines_memory() {
    let cases = [
        (
            "printf('%.*c', 900000000, 'x') <> ''",
            "made a value longer than 64 MiB",
        ),
        (
            "length(hex(zeroblob(50000000))) > 0",
            "made a value longer than 64 MiB",
        ),
        (
            "max(length(hex(zeroblob(30000000))), length(hex(zeroblob(30000001))), \
             length(hex(zeroblob(30000002))), length(hex(zeroblob(30000003))), \
             length(hex(zeroblob(30000004)))) > 0",
            "needed more than SQLite's memory limit of 256 MiB",
        ),
    ];
    for (sql, expected) in cases {
        let test = Test::new().search("greedy", sql);
        test.simple_license(1, "2026-12-01T00:00:00");
        let output = test
            .keyhook(["dry-run", "greedy", "--count"])
            .output()
            .unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{sql}: {error}");
        assert!(
            error.contains("search `greedy` (searches/greedy.toml): the search"),
            "{error}"
        );
        assert!(error.contains(expected), "{sql}: {error}");
    }
}

/// Every schema object of the license database, to compare before and after.
fn schema_of(test: &Test) -> Vec<String> {
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    let mut statement = conn
        .prepare("SELECT type || ' ' || name FROM sqlite_master ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn db_init_changes_nothing_on_a_table_it_cannot_complete() {
    let test = Test::new();
    partial_table(
        &test,
        "ID INTEGER PRIMARY KEY, ActivationKey TEXT, ExpiryDate TEXT",
    );
    let before = schema_of(&test);
    let output = test.keyhook(["db", "init"]).output().unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("license database licenses.db already has a LicenseKeys table, without QLM's column(s) LicenseUpdatedOnServer, FullName"),
        "{error}"
    );
    assert!(
        error.contains("CreationDate; nothing was changed"),
        "{error}"
    );
    assert!(!error.contains("CREATE INDEX"), "no DDL dumped: {error}");
    assert_eq!(schema_of(&test), before);
}

#[test]
fn db_init_is_one_transaction() {
    // Every column is there, but one index name is taken by a table: the whole init fails,
    // and the indexes it would have made before that one are not left behind.
    let test = Test::new();
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute_batch(
        "DROP INDEX idx_LicenseKeys_Email; DROP INDEX idx_LicenseKeys_OrderDate;
         CREATE TABLE idx_LicenseKeys_OrderDate (x);",
    )
    .unwrap();
    let before = schema_of(&test);
    let output = test.keyhook(["db", "init"]).output().unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("could not create the LicenseKeys table in licenses.db: there is already a table named idx_LicenseKeys_OrderDate; nothing was changed"),
        "{error}"
    );
    assert_eq!(schema_of(&test), before);
}

#[test]
fn db_init_names_what_is_wrong_with_its_path() {
    let test = Test::new();
    std::fs::write(test.path("plain"), "not a folder").unwrap();
    std::fs::write(test.path("text.db"), "x".repeat(4096)).unwrap();
    let cases = [
        (
            "searches",
            "could not create the LicenseKeys table in searches: it is a folder, not a file",
        ),
        (
            "plain/new.db",
            "in plain/new.db: plain is a file, not a folder",
        ),
        (
            "nowhere/new.db",
            "in nowhere/new.db: its folder nowhere does not exist",
        ),
        (
            "text.db",
            "in text.db: it is not a SQLite database; nothing was changed",
        ),
    ];
    std::fs::create_dir_all(test.path("searches")).unwrap();
    for (db, expected) in cases {
        let output = test.keyhook(["db", "init", "--db", db]).output().unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{db}: {error}");
        assert!(error.contains(expected), "{db}: {error}");
    }
    assert_eq!(
        std::fs::read(test.path("text.db")).unwrap(),
        "x".repeat(4096).as_bytes()
    );
}

#[test]
fn a_license_database_another_program_holds_locked_says_so() {
    // Another program's write transaction on the license database (rollback journal, so it
    // keeps readers out): after keyhook's wait, the run says what holds it, not that the
    // file cannot be read.
    let test = Test::new().search("all", "ID > 0");
    test.simple_license(1, "2027-01-01T00:00:00");
    let holder = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let output = test
        .keyhook(["dry-run", "all", "--count"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is locked: another program has held a write lock on it"),
        "{}",
        stderr(&output)
    );
    holder.execute_batch("ROLLBACK").unwrap();
    let output = test
        .keyhook(["dry-run", "all", "--count"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Dates stored with a space (as SQLite's `datetime()` and Python's sqlite3 write them), or
/// as days, are compared on their own day as keyhook's own `T` dates are: the placeholders
/// are bound in the database's shape. Bound as `2026-12-02T00:00:00`, every `2026-12-02 ...`
/// and `2026-12-02` sorted before the day's start, and today's licenses were missed.
#[test]
fn dates_in_another_shape_compare_on_their_own_day() {
    // Yesterday's last second, today's start, today 10:00, tomorrow's start. QLM's
    // `[today_start]` is 00:00:01, so the day's window holds today 10:00 and tomorrow's start
    // (a day alone is its midnight: tomorrow's).
    let shapes: [(&str, [&str; 4], &str); 4] = [
        (
            "T",
            [
                "2026-12-01T23:59:59",
                "2026-12-02T00:00:00",
                "2026-12-02T10:00:00",
                "2026-12-03T00:00:00",
            ],
            "2",
        ),
        (
            "space",
            [
                "2026-12-01 23:59:59",
                "2026-12-02 00:00:00",
                "2026-12-02 10:00:00",
                "2026-12-03 00:00:00",
            ],
            "2",
        ),
        (
            "minutes",
            [
                "2026-12-01 23:59",
                "2026-12-02 00:00",
                "2026-12-02 10:00",
                "2026-12-03 00:00",
            ],
            "2",
        ),
        (
            "days",
            ["2026-12-01", "2026-12-02", "2026-12-02", "2026-12-03"],
            "1",
        ),
    ];
    for (shape, dates, today) in shapes {
        let test = Test::new().search(
            "today",
            "SubscriptionExpiryDate >= [today_start] And SubscriptionExpiryDate < [today_start+1]",
        );
        for (id, date) in (1..).zip(dates) {
            test.simple_license(id, date);
        }
        let output = test
            .keyhook(["--now", "2026-12-02T05:00:00", "--timezone", "UTC"])
            .args(["dry-run", "today", "--count"])
            .output()
            .unwrap();
        assert_eq!(stdout(&output), format!("{today}\n"), "{shape}: {output:?}");
        let later = test
            .keyhook(["--now", "2026-12-02T10:00:00", "--timezone", "UTC"])
            .args(["dry-run", "today", "--count"])
            .output()
            .unwrap();
        assert_eq!(stdout(&later), format!("{today}\n"), "{shape} at 10:00");
        // `[now]` keeps its seconds: a license of today 10:00 is not yet expired at 09:59:30.
        let test = test.search("expired", "SubscriptionExpiryDate <= [now]");
        let before = test
            .keyhook(["--now", "2026-12-02T09:59:30", "--timezone", "UTC"])
            .args(["dry-run", "expired", "--count"])
            .output()
            .unwrap();
        let expected = if shape == "days" { "3\n" } else { "2\n" };
        assert_eq!(stdout(&before), expected, "{shape} at 09:59:30");
        let check = test.keyhook(["check"]).output().unwrap();
        assert!(
            !stdout(&check).contains("shape"),
            "{shape}: {}",
            stdout(&check)
        );
    }
}

/// A database that mixes shapes cannot be compared right by any one binding: `check` says
/// which columns, how many rows and the first ID, and how to fix it.
#[test]
fn check_warns_of_dates_stored_in_more_than_one_shape() {
    let test = Test::new().search("all", "SubscriptionExpiryDate > [today_start]");
    test.simple_license(1, "2026-12-02 10:00:00")
        .simple_license(2, "2026-12-03 10:00:00")
        .simple_license(3, "2026-12-04T10:00:00");
    let output = test.keyhook(["check"]).output().unwrap();
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "a warning, not an error: {output:?}"
    );
    assert!(
        text.contains("warning: ")
            && text.contains("more than one shape")
            && text.contains("`2026-12-01 10:00:00`")
            && text.contains("SubscriptionExpiryDate (1 row, the first ID 3)")
            && text.contains("replace(ExpiryDate, ' ', 'T')"),
        "{text}"
    );
}

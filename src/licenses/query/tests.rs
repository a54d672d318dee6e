use super::*;
use crate::licenses::{macros, schema};

fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("licenses.db");
    let conn = Connection::open(&path).unwrap();
    schema::create(&conn).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, Email, SubscriptionExpiryDate, LicenseModel)
         VALUES (1, 'K1', 'a@example.com', '2026-12-01T10:00:00', 'trial'),
                (2, 'K2', 'b@example.com', '2027-06-01T10:00:00', 'subscription'),
                (3, 'K3', NULL, NULL, 'permanent');
         CREATE TABLE Secrets (value TEXT);",
    )
    .unwrap();
    (dir, path)
}

/// The search's template; SQL the parser refuses (a `)` closing the wrapper, a `;`) goes to
/// the database as written, so these tests reach the authorizer, the second line.
fn template(sql: &str) -> Template {
    macros::parse(sql).unwrap_or_else(|_| Template {
        sql: sql.to_string(),
        placeholders: Vec::new(),
    })
}

fn matches(db: &mut LicenseDb, sql: &str) -> Result<Vec<i64>, QueryError> {
    let mut ids = Vec::new();
    db.for_each(&template(sql), &[], |license| {
        ids.push(license.unwrap().id);
        true
    })?;
    Ok(ids)
}

#[test]
fn evaluates_conditions_and_binds_values() {
    let (_dir, path) = database();
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    let search = template(
        "SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]",
    );
    let values = [macros::Context {
        now: "2026-11-23T10:00:00".parse().unwrap(),
        zone: chrono_tz::UTC,
        last_run: None,
    }]
    .iter()
    .flat_map(|context| search.values(context).unwrap())
    .collect::<Vec<_>>();
    let mut ids = Vec::new();
    db.for_each(&search, &values, |license| {
        ids.push(license.unwrap().id);
        true
    })
    .unwrap();
    assert_eq!(ids, [1]);
    assert_eq!(db.count(&search, &values).unwrap(), 1);
    assert_eq!(matches(&mut db, "LicenseModel = 'permanent'").unwrap(), [3]);
    assert_eq!(
        matches(&mut db, "1 = 1 -- every license").unwrap(),
        [1, 2, 3]
    );
    assert_eq!(
        matches(
            &mut db,
            "ID IN (SELECT ID FROM LicenseKeys WHERE Email IS NULL)"
        )
        .unwrap(),
        [3]
    );
}

#[test]
fn refuses_everything_but_reading_the_license_table() {
    let (_dir, path) = database();
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    let refused = [
        ("ID IN (SELECT rowid FROM Secrets)", "reads table Secrets"),
        (
            "ID IN (SELECT 1 FROM sqlite_master)",
            "reads table sqlite_master",
        ),
        (
            "ID IN (SELECT cid FROM pragma_table_info('LicenseKeys'))",
            "pragma_table_info",
        ),
        ("load_extension('evil') IS NULL", "calls load_extension"),
        (
            "1 = 1); DELETE FROM LicenseKeys WHERE (1 = 1",
            "deletes from LicenseKeys",
        ),
        ("1 = 1); ATTACH 'x.db' AS x; SELECT (1", "attaches database"),
        (
            "1 = 1); PRAGMA writable_schema = 1; SELECT (1",
            "PRAGMA writable_schema",
        ),
        (
            "1 = 1); UPDATE LicenseKeys SET Email = '' WHERE (1",
            "updates LicenseKeys",
        ),
        (
            "1 = 1); DROP TABLE LicenseKeys; SELECT (1",
            "changes the schema",
        ),
        (
            "1 = 1); CREATE TABLE x (y); SELECT (1",
            "changes the schema",
        ),
        ("1 = 1); BEGIN; SELECT (1", "does something other than read"),
        (
            "1 = 1); INSERT INTO LicenseKeys (ID) VALUES (9); SELECT (1",
            "inserts into LicenseKeys",
        ),
    ];
    for (sql, reason) in refused {
        if sql.contains(';') {
            assert!(macros::parse(sql).is_err(), "the parser, first: {sql}");
        }
        let error = matches(&mut db, sql).unwrap_err();
        assert!(matches!(error, QueryError::Refused(_)), "{sql}: {error:?}");
        assert!(error.to_string().contains(reason), "{sql}: {error}");
    }
    let error = matches(&mut db, "1 = 1); SELECT 1 FROM LicenseKeys WHERE (1").unwrap_err();
    assert!(matches!(error, QueryError::MultipleStatements), "{error:?}");
    // Nothing changed.
    assert_eq!(matches(&mut db, "1 = 1").unwrap(), [1, 2, 3]);
}

#[test]
fn reports_sqlite_errors_and_empty_searches() {
    let (_dir, path) = database();
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    let error = matches(&mut db, "NoSuchColumn = 1").unwrap_err();
    assert_eq!(
        error.to_string(),
        "SQLite rejected the search: no such column: NoSuchColumn"
    );
    let error = matches(&mut db, "ExpiryDate >").unwrap_err();
    assert!(error.to_string().contains("syntax error"), "{error}");
    assert!(matches!(
        matches(&mut db, "  ").unwrap_err(),
        QueryError::Empty
    ));
}

#[test]
fn a_runaway_search_hits_its_deadline() {
    let (_dir, path) = database();
    let mut db = LicenseDb::open(&path, Duration::from_millis(200)).unwrap();
    let forever = "ID IN (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                   SELECT i FROM n WHERE i < 0)";
    let started = Instant::now();
    let error = matches(&mut db, forever).unwrap_err();
    assert!(matches!(error, QueryError::Deadline(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_deadline_does_not_count_what_the_caller_does_with_each_match() {
    let (_dir, path) = database();
    let mut db = LicenseDb::open(&path, Duration::from_millis(100)).unwrap();
    let mut ids = Vec::new();
    db.for_each(&template("1 = 1"), &[], |license| {
        std::thread::sleep(Duration::from_millis(80));
        ids.push(license.unwrap().id);
        true
    })
    .unwrap();
    assert_eq!(
        ids,
        [1, 2, 3],
        "240 ms of caller time under a 100 ms deadline"
    );
}

#[test]
fn missing_and_foreign_databases_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let error = LicenseDb::open(&missing, Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("nope.db does not exist"),
        "{error}"
    );
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let error = LicenseDb::open(&other, Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("has no LicenseKeys table"),
        "{error}"
    );
}

#[test]
fn the_database_file_is_never_written() {
    let (_dir, path) = database();
    let before = std::fs::read(&path).unwrap();
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    let _ = matches(&mut db, "1 = 1); DELETE FROM LicenseKeys WHERE (1");
    let _ = matches(&mut db, "1 = 1");
    drop(db);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn rows_as_they_are_held_read_as_licenses_do_with_the_same_bodies_and_bad_rows() {
    let (_dir, path) = database();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, FullName, Duration, ExpiryDate, OrderDate,
             LicenseModel, Comment, ProductID, SubscriptionExpiryDate)
         VALUES (4, 42, 'Ann \"A\"\n', '12', '2026-01-31 08:00', ' 2026-02-01T00:00:00 ',
                 'Trial', 'x', 1.0, 'someday'),
                (5, 'K5', X'FF', 0, NULL, NULL, 'trial', '', 0, NULL),
                (6, 'K6', 'B', 0, '2026-02-30', NULL, 'trial', '', 0, NULL),
                (7, 'K7', 'C', 0, NULL, NULL, 'lifetime', '', 0, NULL),
                (8, 'K8', 'D', 'many', NULL, NULL, 'trial', '', 0, '2026-13-01'),
                -- Values whose packed lengths take two and three bytes.
                (9, 'K9', hex(zeroblob(150)), 0, NULL, NULL, 'trial', hex(zeroblob(10000)),
                 0, NULL);",
    )
    .unwrap();
    let envelope = crate::delivery::payload::Envelope::new("T", "u");
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    let mut as_licenses = Vec::new();
    db.for_each(&template("1 = 1"), &[], |license| {
        let license = license.map(|license| {
            let key = license.info.text("ActivationKey");
            (license.id, key, envelope.body(&license.info))
        });
        as_licenses.push(license);
        true
    })
    .unwrap();
    // Rows as a run reads them: as JSON (a run whose state stores bodies whole), and packed (a
    // run onto a SQLite state); both give the same bodies.
    for packed in [false, true] {
        let mut as_rows = Vec::new();
        db.for_each_row(&template("1 = 1"), &[], packed, |row| {
            let row = row.map(|row| {
                assert_eq!(row.info_json().is_none(), packed);
                let key = row.activation_key().to_string();
                // Packed, as a SQLite state stores it and a claim unpacks it.
                let body = envelope.body_of(&row);
                (row.id, key, body)
            });
            as_rows.push(row);
            true
        })
        .unwrap();
        assert_eq!(as_rows.len(), 9);
        assert_eq!(as_rows.iter().filter(|row| row.is_err()).count(), 4);
        assert_eq!(as_rows, as_licenses, "packed: {packed}");
    }
}

/// Seven licenses whose `SubscriptionExpiryDate` (indexed, as in QLM's schema) runs the other
/// way from their rowids: read through the index, they come 7, 6, ..., 1.
fn reversed_database(dir: &tempfile::TempDir, ddl: &str) -> PathBuf {
    let path = dir.path().join("reversed.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(ddl).unwrap();
    conn.execute_batch("CREATE TABLE Secrets (value TEXT);")
        .unwrap();
    for id in 1..=7 {
        conn.execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate)
             VALUES (?1, ?2, ?3)",
            rusqlite::params![
                id,
                format!("K{id}"),
                format!("2027-01-{:02}T00:00:00", 20 - id)
            ],
        )
        .unwrap();
    }
    path
}

const BY_EXPIRY: &str = "SubscriptionExpiryDate > '2026-01-01'";

/// QLM's table with `columns` added after `ID`.
fn ddl_with(columns: &str) -> String {
    let ddl = schema::ddl();
    let with = ddl.replacen(
        "ID INTEGER PRIMARY KEY",
        &format!("ID INTEGER PRIMARY KEY, {columns}"),
        1,
    );
    assert_ne!(with, ddl);
    with
}

/// The license database made by `ddl`, whose rowid name is `alias`, opened with groups of
/// three rowids.
fn opened(dir: &tempfile::TempDir, ddl: &str, alias: Option<&str>) -> LicenseDb {
    let path = reversed_database(dir, ddl);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(schema::rowid_alias(&conn).unwrap(), alias);
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    db.rowids_at_once = 3;
    db
}

/// Whether `db` reads the search `sql` a group of rowids at a time.
fn in_table_order(db: &LicenseDb, sql: &str) -> bool {
    let ids = format!("SELECT rowid FROM LicenseKeys WHERE (\n{sql}\n)");
    db.index_alone_finds(&ids, &[]).unwrap()
}

#[test]
fn a_search_read_through_an_index_comes_in_table_order_a_group_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = reversed_database(&dir, &schema::ddl());
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    assert!(in_table_order(&db, BY_EXPIRY));
    assert!(in_table_order(
        &db,
        "SubscriptionExpiryDate > '2027-01-18' AND SubscriptionExpiryDate < '2028'"
    ));
    // What SQLite reads in table order already, or all of, stays as it is; so does a search
    // that must read the table to tell a match (a column the index lacks, an OR of indexes).
    assert!(!in_table_order(&db, "ID > 2"));
    assert!(!in_table_order(&db, "Email LIKE '%@example.com'"));
    assert!(!in_table_order(&db, "1 = 1"));
    assert!(!in_table_order(
        &db,
        "SubscriptionExpiryDate > '2026' AND LicenseModel = 'permanent'"
    ));
    assert!(!in_table_order(
        &db,
        "SubscriptionExpiryDate > '2027-01-18' OR Email = 'x'"
    ));

    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [1, 2, 3, 4, 5, 6, 7]);
    let mut either = matches(
        &mut db,
        "SubscriptionExpiryDate > '2027-01-15' OR Email = 'x'",
    )
    .unwrap();
    either.sort_unstable();
    assert_eq!(either, [1, 2, 3, 4, 5]);
    // Read through the index as before: the index's order.
    assert_eq!(
        matches(
            &mut db,
            "SubscriptionExpiryDate > '2026' AND LicenseModel = 'permanent'"
        )
        .unwrap(),
        [7, 6, 5, 4, 3, 2, 1]
    );
    // Three rowids at a time: each group in table order, the groups in the index's.
    db.rowids_at_once = 3;
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [5, 6, 7, 2, 3, 4, 1]);
    // A caller that stops, mid-group; the read transaction ends with the search.
    let mut seen = Vec::new();
    let passed = db
        .for_each(&template(BY_EXPIRY), &[], |license| {
            seen.push(license.unwrap().id);
            seen.len() < 4
        })
        .unwrap();
    assert_eq!((passed, seen), (4, vec![5, 6, 7, 2]));
    assert!(db.conn.is_autocommit());
    // Rows as they are held, the path `run-task` takes, come the same way.
    let mut keys = Vec::new();
    db.for_each_row(&template(BY_EXPIRY), &[], true, |row| {
        keys.push(row.unwrap().activation_key().to_string());
        true
    })
    .unwrap();
    assert_eq!(keys, ["K5", "K6", "K7", "K2", "K3", "K4", "K1"]);
    assert!(db.conn.is_autocommit());
}

#[test]
fn a_table_without_rowids_or_with_a_column_named_rowid_is_searched_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = schema::ddl();
    let without_rowid = ddl.replacen("\n);\n", "\n) WITHOUT ROWID;\n", 1);
    assert_ne!(without_rowid, ddl);
    let mut db = opened(&dir, &without_rowid, None);
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap().len(), 7);

    let dir = tempfile::tempdir().unwrap();
    let mut db = opened(&dir, &ddl_with("RowId TEXT DEFAULT 'x'"), Some("_rowid_"));
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [5, 6, 7, 2, 3, 4, 1]);
}

#[test]
fn a_search_read_in_table_order_still_meets_its_deadline_and_its_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = reversed_database(&dir, &schema::ddl());
    let mut db = LicenseDb::open(&path, Duration::from_millis(200)).unwrap();
    let forever = "SubscriptionExpiryDate > '2026-01-01' AND SubscriptionExpiryDate NOT IN \
                   (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                   SELECT i FROM n WHERE i < 0)";
    assert!(in_table_order(&db, forever));
    let started = Instant::now();
    let error = matches(&mut db, forever).unwrap_err();
    assert!(matches!(error, QueryError::Deadline(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(db.conn.is_autocommit());
    let error = matches(
        &mut db,
        "SubscriptionExpiryDate > (SELECT value FROM Secrets)",
    )
    .unwrap_err();
    assert!(matches!(error, QueryError::Refused(_)), "{error:?}");
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn groups_of_rowids_grow_for_a_caller_that_may_stop_and_start_whole_for_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = reversed_database(&dir, &schema::ddl());
    let mut db = LicenseDb::open(&path, Duration::from_secs(5)).unwrap();
    db.first_rowids = 2;
    db.rowids_at_once = 4;
    // Read through the index: 7, 6 | 5, 4, 3, 2 | 1.
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [6, 7, 2, 3, 4, 5, 1]);
    let mut ids = Vec::new();
    db.for_each_row(&template(BY_EXPIRY), &[], false, |row| {
        ids.push(row.unwrap().activation_key().to_string());
        true
    })
    .unwrap();
    assert_eq!(ids, ["K4", "K5", "K6", "K7", "K1", "K2", "K3"]);
    // Matches that fill their groups exactly: none twice, none lost.
    db.first_rowids = 3;
    db.rowids_at_once = 3;
    let six = "SubscriptionExpiryDate > '2027-01-14'";
    assert_eq!(matches(&mut db, six).unwrap(), [4, 5, 6, 1, 2, 3]);
    assert!(db.conn.is_autocommit());
    // A group fetched a few rows per statement: whole fetches, a short last one (filled up
    // with its last rowid), a caller that stops between two fetches. Groups: 7, 6, 5 |
    // 4, 3, 2, 1.
    db.rowids_at_once = 5;
    for per_fetch in [1, 2, 3, 5, 64] {
        db.rows_per_fetch = per_fetch;
        assert_eq!(
            matches(&mut db, BY_EXPIRY).unwrap(),
            [5, 6, 7, 1, 2, 3, 4],
            "{per_fetch} rows per fetch"
        );
        let mut seen = Vec::new();
        db.for_each(&template(BY_EXPIRY), &[], |license| {
            seen.push(license.unwrap().id);
            seen.len() < 3
        })
        .unwrap();
        assert_eq!(seen, [5, 6, 7], "{per_fetch} rows per fetch");
        assert!(db.conn.is_autocommit());
    }
}

#[test]
fn a_table_whose_columns_take_every_rowid_name_is_read_in_the_plans_order() {
    // A generated column takes the name as well as a stored one.
    let dir = tempfile::tempdir().unwrap();
    let generated = ddl_with("rowid INTEGER GENERATED ALWAYS AS (ID % 2) VIRTUAL");
    let mut db = opened(&dir, &generated, Some("_rowid_"));
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [5, 6, 7, 2, 3, 4, 1]);

    let dir = tempfile::tempdir().unwrap();
    let all_taken = ddl_with("RowId TEXT, _rowid_ TEXT, \"OID\" TEXT");
    let mut db = opened(&dir, &all_taken, None);
    // Through the index, in one statement: the index's order, every match once.
    assert_eq!(matches(&mut db, BY_EXPIRY).unwrap(), [7, 6, 5, 4, 3, 2, 1]);
}

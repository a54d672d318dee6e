use super::*;
use crate::events::drift;
use crate::licenses::schema;

fn database() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    schema::create(&conn).unwrap();
    conn
}

fn events(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    read_after(conn, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|row| (row.event_type, row.table_name, row.row_key))
        .collect()
}

fn names(conn: &Connection) -> Vec<String> {
    events(conn).into_iter().map(|(name, _, _)| name).collect()
}

#[test]
fn install_is_idempotent_and_uninstall_removes_it_all() {
    let mut conn = database();
    let catalog = Catalog::builtin();
    let report = install(&mut conn, &catalog).unwrap();
    assert_eq!(report[0], "created table keyhook_outbox");
    assert!(report.iter().any(|line| line.starts_with("LicenseKeys: created triggers keyhook_LicenseKeys_insert, keyhook_LicenseKeys_update, keyhook_LicenseKeys_delete")), "{report:?}");
    assert!(install(&mut conn, &catalog).unwrap().is_empty());
    assert!(drift::status(&conn, &catalog).unwrap().is_current());
    let report = uninstall(&mut conn, false).unwrap();
    assert!(
        report.contains(&"dropped table keyhook_outbox (0 event(s))".to_string()),
        "{report:?}"
    );
    assert!(uninstall(&mut conn, false).unwrap().is_empty());
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'keyhook%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn the_stored_trigger_text_is_what_was_generated() {
    let mut conn = database();
    install(&mut conn, &Catalog::builtin()).unwrap();
    let plan = TablePlan::new(
        &Catalog::builtin(),
        "Customers",
        table_columns(&conn, "Customers").unwrap(),
    );
    for (name, sql) in &plan.triggers {
        let stored: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(&stored, sql);
    }
}

#[test]
fn each_condition_fires_its_events_in_catalog_order() {
    let mut conn = database();
    install(&mut conn, &Catalog::builtin()).unwrap();
    conn.execute_batch("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')")
        .unwrap();
    let cases: [(&str, &[&str]); 8] = [
        (
            "ComputerID = 'PC-1'",
            &["license.activated", "license.updated"],
        ),
        (
            "ActivationCount = 1",
            &["license.activated", "license.updated"],
        ),
        (
            "ComputerID = NULL",
            &["license.deactivated", "license.updated"],
        ),
        (
            "ActivationCount = 0",
            &["license.deactivated", "license.updated"],
        ),
        ("Disabled = 1", &["license.suspended", "license.updated"]),
        ("Disabled = 1", &["license.updated"]),
        (
            "CustomerID = 1001",
            &["license.assigned", "license.updated"],
        ),
        ("Email = 'x@example.com'", &["license.updated"]),
    ];
    for (set, expected) in cases {
        conn.execute_batch("DELETE FROM keyhook_outbox").unwrap();
        conn.execute_batch(&format!("UPDATE LicenseKeys SET {set} WHERE ID = 7"))
            .unwrap();
        assert_eq!(names(&conn), expected, "{set}");
    }
}

#[test]
fn a_snapshot_holds_every_column_and_blobs_as_hex() {
    let mut conn = database();
    install(&mut conn, &Catalog::builtin()).unwrap();
    conn.execute_batch(
        "INSERT INTO Products (ProductID, ProductName, Features) VALUES (9, 'It''s', x'00ff');
         DELETE FROM Products WHERE ProductID = 9;",
    )
    .unwrap();
    let rows = read_after(&conn, 0, 10).unwrap();
    assert_eq!(rows.len(), 2);
    let snapshot: serde_json::Value = serde_json::from_str(&rows[1].snapshot).unwrap();
    let keys: Vec<&String> = snapshot.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        table_columns(&conn, "Products")
            .unwrap()
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(snapshot["ProductName"], "It's");
    assert_eq!(snapshot["Features"], "00FF");
    assert_eq!(
        (rows[1].event_type.as_str(), rows[1].row_key.as_deref()),
        ("product.deleted", Some("9"))
    );
}

#[test]
fn wide_tables_are_snapshotted_in_several_objects() {
    let columns: Vec<String> = (0..130).map(|i| format!("c{i}")).collect();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE Wide (id INTEGER PRIMARY KEY, {})",
        columns.join(", ")
    ))
    .unwrap();
    let mut all = vec!["id".to_string()];
    all.extend(columns);
    let sql = format!("SELECT {} FROM Wide AS NEW", snapshot_sql("NEW", &all));
    conn.execute_batch("INSERT INTO Wide (id, c129) VALUES (1, 'last')")
        .unwrap();
    assert!(sql.contains("rtrim("), "{sql}");
    let json: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value.as_object().unwrap().len(), 131);
    assert_eq!(value["c129"], "last");
}

#[test]
fn a_without_rowid_table_gets_triggers_too() {
    let mut conn = database();
    conn.execute_batch("CREATE TABLE Seats (Code TEXT PRIMARY KEY, Holder TEXT) WITHOUT ROWID")
        .unwrap();
    let mut catalog = Catalog::builtin();
    let user: crate::events::catalog::Source = toml::from_str(
        "table = \"Seats\"\nkey = \"Code\"\npayload = \"generic\"\n\
         [[event]]\nname = \"seat.taken\"\noperation = \"update\"\n\
         condition = \"NEW.Holder IS NOT NULL\"\n",
    )
    .unwrap();
    catalog.sources.push(user);
    install(&mut conn, &catalog).unwrap();
    conn.execute_batch("INSERT INTO Seats VALUES ('A1', NULL); UPDATE Seats SET Holder = 'me';")
        .unwrap();
    assert_eq!(
        events(&conn),
        [("seat.taken".into(), "Seats".into(), Some("A1".into()))]
    );
}

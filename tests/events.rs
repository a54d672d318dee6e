//! Event capture: `keyhook events install|uninstall|status|catalog` on a real SQLite file,
//! changes committed (and rolled back) by another connection, as QLM's writer would make them.

use crate::support::{Test, stderr, stdout};
use rusqlite::Connection;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn run(test: &Test, args: &[&str]) -> (Option<i32>, String, String) {
    let output = test.keyhook(args).output().unwrap();
    (output.status.code(), stdout(&output), stderr(&output))
}

fn installed() -> Test {
    let test = Test::new();
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    test
}

fn writer(test: &Test) -> Connection {
    Connection::open(test.path("licenses.db")).unwrap()
}

/// (event type, table, key, snapshot) of every outbox row, in sequence order.
fn outbox(test: &Test) -> Vec<(String, String, String, Json)> {
    let conn = writer(test);
    let mut statement = conn
        .prepare(
            "SELECT event_type, table_name, row_key, snapshot FROM keyhook_outbox ORDER BY seq",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            let snapshot: String = row.get(3)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                serde_json::from_str(&snapshot).unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn types(test: &Test) -> Vec<String> {
    outbox(test).into_iter().map(|(kind, ..)| kind).collect()
}

/// Every schema object but SQLite's own `sqlite_sequence`, with its SQL.
fn schema(test: &Test) -> Vec<String> {
    let conn = writer(test);
    let mut statement = conn
        .prepare("SELECT type || ' ' || name || ' ' || ifnull(sql, '') FROM sqlite_master WHERE name <> 'sqlite_sequence' ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn file_hash(test: &Test) -> String {
    let bytes = std::fs::read(test.path("licenses.db")).unwrap();
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn install_is_reported_idempotent_and_uninstall_removes_exactly_it() {
    let test = Test::new();
    let before = schema(&test);
    let (code, out, _) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("created table keyhook_outbox\n"), "{out}");
    assert!(out.contains("LicenseKeys: created triggers keyhook_LicenseKeys_insert, keyhook_LicenseKeys_update, keyhook_LicenseKeys_delete\n"), "{out}");
    assert!(out.contains("Customers: created triggers"), "{out}");
    let installed = file_hash(&test);
    let (code, out, _) = run(&test, &["events", "install"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "events are already installed in licenses.db and current: nothing changed\n"
        )
    );
    assert_eq!(
        file_hash(&test),
        installed,
        "a second install wrote to the file"
    );
    let (code, out, _) = run(&test, &["events", "uninstall"]);
    assert_eq!(code, Some(0));
    assert!(
        out.ends_with("dropped table keyhook_events_meta\nuninstalled from licenses.db\n"),
        "{out}"
    );
    assert_eq!(schema(&test), before);
    let (code, out, _) = run(&test, &["events", "uninstall"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "events are not installed in licenses.db: nothing changed\n"
        )
    );
}

#[test]
fn committed_changes_make_exactly_their_events_with_snapshots_of_that_change() {
    let test = installed();
    let conn = writer(&test);
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (5, 'K5', 'a@example.com');
         UPDATE LicenseKeys SET Email = 'b@example.com' WHERE ID = 5;
         DELETE FROM LicenseKeys WHERE ID = 5;
         INSERT INTO Customers (CustomerID, FullName) VALUES (1001, 'Zoë');
         UPDATE Customers SET FullName = 'Zoë Müller' WHERE CustomerID = 1001;
         DELETE FROM Customers WHERE CustomerID = 1001;",
    )
    .unwrap();
    let rows = outbox(&test);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(t, table, key, _)| (t.as_str(), table.as_str(), key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("license.created", "LicenseKeys", "5"),
            ("license.updated", "LicenseKeys", "5"),
            ("license.deleted", "LicenseKeys", "5"),
            ("customer.created", "Customers", "1001"),
            ("customer.updated", "Customers", "1001"),
            ("customer.deleted", "Customers", "1001"),
        ]
    );
    assert_eq!(rows[0].3["Email"], "a@example.com");
    assert_eq!(rows[1].3["Email"], "b@example.com");
    assert_eq!(
        rows[2].3["Email"], "b@example.com",
        "a delete carries the old row"
    );
    assert_eq!(
        rows[0].3.as_object().unwrap().len(),
        45,
        "every LicenseKeys column"
    );
    assert_eq!(rows[0].3["NewFloatingSeats"], -1);
    assert_eq!(rows[0].3["ComputerID"], Json::Null);
    assert_eq!(rows[4].3["FullName"], "Zoë Müller");
    let times: Vec<i64> = conn
        .prepare("SELECT created_ms FROM keyhook_outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        times.iter().all(|t| (now_ms - t).abs() < 60_000),
        "{times:?} vs {now_ms}"
    );
}

#[test]
fn a_rolled_back_transaction_makes_no_event() {
    let test = installed();
    let mut conn = writer(&test);
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1');
         UPDATE LicenseKeys SET ComputerID = 'PC' WHERE ID = 1;
         INSERT INTO Products (ProductID, ProductName) VALUES (1, 'P');",
    )
    .unwrap();
    let inside: i64 = tx
        .query_row("SELECT count(*) FROM keyhook_outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(inside, 4, "the writer's own transaction sees its events");
    tx.rollback().unwrap();
    assert!(outbox(&test).is_empty());
    conn.execute_batch("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2')")
        .unwrap();
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM keyhook_outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seqs.len(), 1, "only the committed insert: {seqs:?}");
}

#[test]
fn activation_release_suspension_and_assignment_are_told_apart() {
    let test = installed();
    let conn = writer(&test);
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (3, 'K3'); DELETE FROM keyhook_outbox;",
    )
    .unwrap();
    let cases: [(&str, &[&str]); 7] = [
        (
            "ComputerID = 'PC-1', ActivationCount = 1",
            &["license.activated", "license.updated"],
        ),
        (
            "ComputerID = 'PC-1', Comment = 'same machine'",
            &["license.updated"],
        ),
        (
            "ComputerID = '', ActivationCount = 0",
            &["license.deactivated", "license.updated"],
        ),
        (
            "ActivationCount = 2",
            &["license.activated", "license.updated"],
        ),
        ("Disabled = 1", &["license.suspended", "license.updated"]),
        (
            "CustomerID = 1002",
            &["license.assigned", "license.updated"],
        ),
        ("CustomerID = 1002, Disabled = 0", &["license.updated"]),
    ];
    for (set, expected) in cases {
        conn.execute_batch(&format!(
            "DELETE FROM keyhook_outbox; UPDATE LicenseKeys SET {set} WHERE ID = 3"
        ))
        .unwrap();
        assert_eq!(types(&test), expected, "{set}");
    }
}

#[test]
fn a_column_added_after_install_is_reported_and_reinstall_fixes_it() {
    let test = installed().search("all", "1 = 1");
    writer(&test)
        .execute_batch("ALTER TABLE Customers ADD COLUMN Mobile TEXT")
        .unwrap();
    let (code, out, _) = run(&test, &["events", "status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "  Customers: column(s) Mobile added since install are missing from snapshots\n"
        ),
        "{out}"
    );
    assert!(out.contains("  LicenseKeys: triggers current\n"), "{out}");
    let (code, out, _) = run(&test, &["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "error: licenses.db: events: table `Customers`: column(s) Mobile added since install"
        ),
        "{out}"
    );
    let (code, out, _) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("Customers: replaced (column(s) Mobile added since install are missing from snapshots) triggers keyhook_Customers_insert"), "{out}");
    assert!(!out.contains("LicenseKeys:"), "{out}");
    let (code, out, _) = run(&test, &["check"]);
    assert_eq!(code, Some(0), "{out}");
    writer(&test)
        .execute_batch("INSERT INTO Customers (CustomerID, Mobile) VALUES (1, '+33 6')")
        .unwrap();
    assert_eq!(outbox(&test)[0].3["Mobile"], "+33 6");
}

#[test]
fn a_table_dropped_and_recreated_has_lost_its_triggers_and_says_so() {
    let test = installed();
    writer(&test)
        .execute_batch("DROP TABLE Products; CREATE TABLE Products (ProductID INTEGER PRIMARY KEY, ProductName TEXT NOT NULL, MajorVersion INTEGER, MinorVersion INTEGER, Features TEXT, Description TEXT, CreationDate TEXT);")
        .unwrap();
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("  Products: trigger(s) keyhook_Products_insert, keyhook_Products_update, keyhook_Products_delete are gone (was the table dropped and re-created?)"), "{out}");
    let json: Json = serde_json::from_str(&run(&test, &["events", "status", "--json"]).1).unwrap();
    assert_eq!(json["current"], false);
    assert_eq!(json["status"]["tables"][2]["state"], "triggers_missing");
    run(&test, &["events", "install"]);
    writer(&test)
        .execute_batch("INSERT INTO Products (ProductID, ProductName) VALUES (4, 'Lyra')")
        .unwrap();
    assert_eq!(types(&test), ["product.created"]);
}

#[test]
fn a_user_source_gets_triggers_and_a_changed_catalog_is_noticed() {
    let contracts = "[[source]]\ntable = \"Contracts\"\nkey = \"ContractID\"\npayload = \"generic\"\n\n\
        [[source.event]]\nname = \"contract.signed\"\noperation = \"update\"\n\
        condition = \"OLD.SignedOn IS NULL AND NEW.SignedOn IS NOT NULL\"\n";
    let test = Test::new().write("events.toml", contracts);
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("events.toml: source 1 (table `Contracts`): field `table`: the license database has no table `Contracts`"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!schema(&test).iter().any(|o| o.contains("keyhook")));
    writer(&test)
        .execute_batch("CREATE TABLE Contracts (ContractID INTEGER PRIMARY KEY, SignedOn TEXT)")
        .unwrap();
    let (code, out, _) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Contracts: created triggers keyhook_Contracts_update\n"),
        "{out}"
    );
    writer(&test)
        .execute_batch("INSERT INTO Contracts VALUES (1, NULL); UPDATE Contracts SET SignedOn = '2026-11-23' WHERE ContractID = 1; UPDATE Contracts SET SignedOn = '2026-11-24';")
        .unwrap();
    assert_eq!(types(&test), ["contract.signed"]);
    let (_, out, _) = run(&test, &["events", "catalog"]);
    assert!(
        out.contains("contract.signed")
            && out.contains("contract_signed")
            && out.contains("events.toml"),
        "{out}"
    );
    let edited = contracts.replace("IS NOT NULL", "IS NOT NULL AND NEW.SignedOn <> ''");
    std::fs::write(test.path("events.toml"), edited).unwrap();
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(
        out.contains("  Contracts: the event catalog changed since install\n"),
        "{out}"
    );
    std::fs::remove_file(test.path("events.toml")).unwrap();
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("Contracts: removed its triggers (no longer in the event catalog)"),
        "{out}"
    );
}

#[test]
fn uninstall_keeps_undispatched_events_unless_forced() {
    let test = installed();
    writer(&test)
        .execute_batch("INSERT INTO Products (ProductID, ProductName) VALUES (1, 'P')")
        .unwrap();
    let (code, _, err) = run(&test, &["events", "uninstall"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("the outbox holds 1 event(s) that uninstall would delete; pass --force"),
        "{err}"
    );
    assert_eq!(types(&test).len(), 1);
    let (code, out, _) = run(&test, &["events", "uninstall", "--force"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("dropped table keyhook_outbox (1 event(s))"),
        "{out}"
    );
}

#[test]
fn an_older_database_without_the_customer_table_is_told_to_run_db_init() {
    let test = Test::new();
    writer(&test).execute_batch("DROP TABLE Customers").unwrap();
    let (code, _, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("built-in: source 2 (table `Customers`): field `table`: the license database has no table `Customers` (`keyhook db init` adds QLM's tables that are missing)"), "{err}");
    run(&test, &["db", "init"]);
    assert_eq!(run(&test, &["events", "install"]).0, Some(0));
}

#[test]
fn every_other_command_leaves_the_license_database_byte_identical() {
    let test = installed()
        .search("all", "1 = 1")
        .task("all", "all", "http://127.0.0.1:9/hook", "");
    test.simple_license(1, "2026-12-01T00:00:00");
    writer(&test)
        .execute_batch("ALTER TABLE Products ADD COLUMN Url TEXT")
        .unwrap();
    let before = file_hash(&test);
    for args in [
        vec!["events", "status"],
        vec!["events", "status", "--json"],
        vec!["events", "catalog"],
        vec!["events", "catalog", "--json"],
        vec!["check"],
        vec!["dry-run", "all"],
        vec!["dry-run", "all", "--payloads"],
        vec!["list"],
        vec!["next"],
    ] {
        test.keyhook(&args).output().unwrap();
        assert_eq!(
            file_hash(&test),
            before,
            "{args:?} changed the license database"
        );
    }
}

#[test]
fn the_catalog_prints_as_a_table_and_as_json() {
    let test = Test::new();
    let (code, out, _) = run(&test, &["events", "catalog"]);
    assert_eq!(code, Some(0));
    for expected in [
        "license.activated",
        "license_activated",
        "activation.created",
        "license_released",
        "customer_modified",
        "product.deleted",
        "built-in",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    let json: Json = serde_json::from_str(&run(&test, &["events", "catalog", "--json"]).1).unwrap();
    let suspended = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "license.suspended")
        .unwrap();
    assert_eq!(suspended["qlm"], "license_suspended");
    assert_eq!(suspended["operation"], "update");
    assert_eq!(
        suspended["condition"],
        "ifnull(OLD.Disabled, 0) = 0 AND ifnull(NEW.Disabled, 0) <> 0"
    );
    assert_eq!(suspended["payload"], "license");
}

/// A broken `events.toml` holds new events (exit 2, naming the file) instead of taking them
/// with the built-in catalog: a webhook subscribed by a wildcard would have missed the user's
/// events for good. Fixed, the held event goes out.
#[test]
fn a_broken_event_catalog_holds_new_events() {
    let contracts = "[[source]]\ntable = \"Contracts\"\nkey = \"ContractID\"\npayload = \"generic\"\n\n\
        [[source.event]]\nname = \"contract.changed\"\noperation = \"update\"\n";
    let server =
        keyhook::receiver::Server::start("127.0.0.1:0", |_| keyhook::receiver::Reply::ok())
            .unwrap();
    let test = Test::new().write("events.toml", contracts).write(
        "webhooks/all.toml",
        &format!(
            "name = \"all\"\nurl = \"{}\"\nevents = [\"*\"]\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    writer(&test)
        .execute_batch("CREATE TABLE Contracts (ContractID INTEGER PRIMARY KEY, Amount REAL)")
        .unwrap();
    assert_eq!(run(&test, &["events", "install"]).0, Some(0));
    writer(&test)
        .execute_batch("INSERT INTO Contracts VALUES (1, 1)")
        .unwrap();
    std::fs::write(
        test.path("events.toml"),
        format!("{contracts}garbage = [\n"),
    )
    .unwrap();
    writer(&test)
        .execute_batch("UPDATE Contracts SET Amount = 8")
        .unwrap();
    for command in ["dispatch", "run-due"] {
        let (code, out, err) = run(&test, &[command]);
        assert_eq!(code, Some(2), "{command}: {out}{err}");
        assert!(
            format!("{out}{err}").contains("events.toml: invalid TOML"),
            "{command}: {out}{err}"
        );
    }
    assert_eq!(server.request_count(), 0);
    std::fs::write(test.path("events.toml"), contracts).unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(server.request_count(), 1, "{out}");
    let body = String::from_utf8_lossy(&server.requests()[0].body).to_string();
    assert!(body.contains("contract"), "{body}");
}

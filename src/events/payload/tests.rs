use rusqlite::Connection;

use super::*;
use crate::events::outbox::{self, OutboxRow};
use crate::licenses::license_info::License;
use crate::licenses::schema;

/// A license database with the triggers installed, a license and a customer, then an
/// activation and a customer update: the outbox rows those changes left.
fn changes() -> (Connection, Vec<OutboxRow>) {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::create(&conn).unwrap();
    outbox::install(&mut conn, &Catalog::builtin()).unwrap();
    conn.execute_batch(
        "INSERT INTO Customers (CustomerID, FullName, Email, Country, OptIn, CreationDate)
         VALUES (3, 'Ada Lovelace', 'ada@example.com', 'UK', 1, '2026-01-02 09:30');
         INSERT INTO LicenseKeys (ID, ActivationKey, Email, LicenseModel, NumLicenses,
             ExpiryDate, ProductName, UsesAdminEncryption)
         VALUES (7, 'KEY-7', 'ada@example.com', 'subscription', 5, '2027-01-31', 'Pro', 1);
         DELETE FROM keyhook_outbox;
         UPDATE LicenseKeys SET ComputerID = 'PC-1' WHERE ID = 7;
         UPDATE Customers SET Phone = '+44 1' WHERE CustomerID = 3;",
    )
    .unwrap();
    let rows = outbox::read_after(&conn, 0, 100).unwrap();
    (conn, rows)
}

fn event<'a>(rows: &'a [OutboxRow], name: &str, test: bool) -> EventBody<'a> {
    let row = rows.iter().find(|row| row.event_type == name).unwrap();
    EventBody {
        event_type: &row.event_type,
        created_ms: 1_795_428_000_123,
        snapshot: &row.snapshot,
        test,
    }
}

fn text(format: Format, event: &EventBody) -> String {
    String::from_utf8(body(format, event, &Catalog::builtin()).unwrap()).unwrap()
}

const LICENSE_INFO_7: &str = r#"{"LicenseUpdatedOnServer":false,"ActivationKey":"KEY-7","FullName":"","Country":"","AffiliateID":"","Email":"ada@example.com","Duration":0,"ExpiryDate":"2027-01-31T00:00:00","UsesAdminEncryption":true,"MaintenanceRenewalDate":null,"Features":"","OrderID":"","ReceiptID":"","SubscriptionID":"","LicenseModel":3,"ProductID":0,"MajorVersion":0,"MinorVersion":0,"NumLicenses":5,"FloatingSeats":0,"UserData":"","NewFeatures":"","NewFloatingSeats":-1,"ComputerID":"PC-1","ComputerName":"","Comment":"","LegacyKey":"","AvailableLicenses":0,"OrderDate":null,"ProductProperties":"","BundleID":"","ProductName":"Pro","MaxReleaseCount":-2,"MaxReleasePeriodInDays":-2,"OrganizationID":0}"#;

#[test]
fn qlm_license_events_carry_the_license_info_of_scheduled_tasks() {
    let (conn, rows) = changes();
    let activated = text(Format::Qlm, &event(&rows, "license.activated", false));
    assert_eq!(
        activated,
        format!(r#"{{"EventType":"license_activated","LicenseInfo":{LICENSE_INFO_7}}}"#)
    );
    // The same mapping as a search's row: the bytes of `LicenseInfo` are identical.
    let sql = format!(
        "SELECT ID, SubscriptionExpiryDate, {} FROM LicenseKeys WHERE ID = 7",
        schema::LICENSE_INFO.map(|(name, _)| name).join(", ")
    );
    let license = conn
        .query_row(&sql, [], |row| Ok(License::from_row(row).unwrap()))
        .unwrap();
    assert_eq!(
        serde_json::to_string(&license.info).unwrap(),
        LICENSE_INFO_7
    );
    let released = text(Format::Qlm, &event(&rows, "license.updated", true));
    assert!(released.starts_with(r#"{"EventType":"license_updated","LicenseInfo":{"#));
    assert!(
        released.ends_with(r#""OrganizationID":0},"Test":true}"#),
        "{released}"
    );
}

#[test]
fn standard_events_and_customers() {
    let (_conn, rows) = changes();
    let activated = text(Format::Standard, &event(&rows, "license.activated", false));
    assert_eq!(
        activated,
        format!(
            r#"{{"type":"license.activated","timestamp":"2026-11-23T10:00:00.123Z","data":{LICENSE_INFO_7}}}"#
        )
    );
    let customer = text(Format::Qlm, &event(&rows, "customer.updated", false));
    assert_eq!(
        customer,
        r#"{"EventType":"customer_modified","CustomerInfo":{"CustomerID":3,"FullName":"Ada Lovelace","Contact":"","Company":"","Email":"ada@example.com","Phone":"+44 1","Fax":"","Address1":"","Address2":"","City":"","State":"","Zip":"","Country":"UK","UserData1":"","OptIn":true,"OrganizationID":0,"PrivacyPolicyConsent":false,"PrivacyPolicyLastUpdate":null,"CreationDate":"2026-01-02T09:30:00","LastUpdatedDate":null}}"#
    );
    let test = text(Format::Standard, &event(&rows, "customer.updated", true));
    assert!(
        test.ends_with(r#""LastUpdatedDate":null,"test":true}}"#),
        "{test}"
    );
}

#[test]
fn bad_snapshots_are_reported_like_bad_rows() {
    let snapshot = r#"{"ID":9,"ActivationKey":"KEY-9","LicenseModel":"lifetime"}"#;
    let event = EventBody {
        event_type: "license.created",
        created_ms: 0,
        snapshot,
        test: false,
    };
    let error = body(Format::Qlm, &event, &Catalog::builtin()).unwrap_err();
    assert!(
        error.to_string().starts_with("license 9 (KEY-9): column "),
        "{error}"
    );
    let not_json = EventBody {
        snapshot: "[1]",
        ..event
    };
    let error = body(Format::Qlm, &not_json, &Catalog::builtin()).unwrap_err();
    assert!(matches!(error, PayloadError::Snapshot(_)), "{error}");
}

#[test]
fn time_based_and_product_events() {
    let event = EventBody {
        event_type: "product.created",
        created_ms: 0,
        snapshot: r#"{"ProductID":1,"ProductName":"Pro","Features":null}"#,
        test: false,
    };
    assert_eq!(
        text(Format::Qlm, &event),
        r#"{"EventType":"product_created","ProductInfo":{"ProductID":1,"ProductName":"Pro","Features":null}}"#
    );
    assert_eq!(
        describe("license.expired", &Catalog::builtin()),
        (PayloadKind::License, "license_expired".to_string())
    );
}

#[test]
fn bodies_written_straight_are_the_bytes_of_the_json_value_path() {
    let (_conn, rows) = changes();
    let catalog = Catalog::builtin();
    for row in &rows {
        let event = event(&rows, &row.event_type, false);
        let snapshot = parse(event.snapshot).unwrap();
        for format in [Format::Qlm, Format::Standard] {
            let straight = body_of(format, &event, &snapshot, &catalog).unwrap();
            let valued = test_body(format, &event, snapshot.clone(), &catalog).unwrap();
            assert_eq!(
                String::from_utf8(straight).unwrap(),
                String::from_utf8(valued).unwrap(),
                "{} {format:?}",
                row.event_type
            );
        }
    }
}

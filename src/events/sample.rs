//! A realistic example event for `keyhook webhooks test`: a fixed sample row of the event's
//! kind (license, customer, product), as the triggers would snapshot it. Built from the same
//! schema and snapshot SQL in an in-memory database, so it has every column a real event has,
//! and the same bytes every time.

use rusqlite::Connection;

use super::catalog::{Catalog, PayloadKind, table_columns};
use super::outbox::snapshot_sql;
use crate::licenses::schema::{self, CUSTOMERS, PRODUCTS, TABLE};

/// When the sample change was made: 2026-01-01T00:00:00Z, fixed so the body is reproducible.
pub const CREATED_MS: i64 = 1_767_225_600_000;

const LICENSE: &str = "INSERT INTO LicenseKeys (ID, ActivationKey, FullName, Email, Country,
    ProductID, ProductName, MajorVersion, MinorVersion, NumLicenses, AvailableLicenses,
    LicenseModel, ComputerID, ComputerName, ActivationCount, ActivationDate, OrderDate,
    ExpiryDate, SubscriptionExpiryDate, CustomerID, CreationDate)
    VALUES (1001, 'TEST-0000-0000-1001', 'Test Customer', 'test@example.com', 'Canada',
    7, 'Example Product', 2, 1, 1, 0, 'subscription', 'TEST-PC-1', 'test-pc', 1,
    '2026-01-01T00:00:00', '2025-12-31T12:00:00', '2027-01-01T00:00:00',
    '2027-01-01T00:00:00', 501, '2025-12-31T12:00:00')";

const CUSTOMER: &str = "INSERT INTO Customers (CustomerID, FullName, Contact, Company, Email,
    Phone, City, Country, OptIn, PrivacyPolicyConsent, CreationDate, LastUpdatedDate)
    VALUES (501, 'Test Customer', 'Test Contact', 'Example Inc.', 'test@example.com',
    '+1 555 0100', 'Ottawa', 'Canada', 1, 1, '2025-12-31T12:00:00', '2026-01-01T00:00:00')";

const PRODUCT: &str = "INSERT INTO Products (ProductID, ProductName, MajorVersion,
    MinorVersion, Features, Description, CreationDate)
    VALUES (7, 'Example Product', 2, 1, 'F1:1', 'A product for test events',
    '2025-01-01T00:00:00')";

/// The sample snapshot for `event_type`: a JSON object by column.
pub fn snapshot(event_type: &str, catalog: &Catalog) -> String {
    let (kind, key) = match catalog.find(event_type) {
        Some((source, _)) => (source.payload, source.key.as_str()),
        None => (PayloadKind::License, "ID"),
    };
    match kind {
        PayloadKind::License => row_of(TABLE, LICENSE),
        PayloadKind::Customer => row_of(CUSTOMERS, CUSTOMER),
        PayloadKind::Product => row_of(PRODUCTS, PRODUCT),
        PayloadKind::Generic => serde_json::json!({ key: 1 }).to_string(),
    }
}

/// The one row `insert` writes into `table` of an in-memory QLM database, as a snapshot.
fn row_of(table: &str, insert: &str) -> String {
    let read = || -> rusqlite::Result<String> {
        let conn = Connection::open_in_memory()?;
        schema::create(&conn)?;
        conn.execute_batch(insert)?;
        let columns = table_columns(&conn, table)?;
        let sql = format!(
            "SELECT {} FROM {table} AS NEW",
            snapshot_sql("NEW", &columns)
        );
        conn.query_row(&sql, [], |row| row.get(0))
    };
    // Fixed SQL over a schema built just now: it fails only if SQLite lacks JSON functions.
    read().unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::registry::Format;
    use crate::events::payload::{EventBody, body};

    #[test]
    fn each_kind_makes_a_complete_sendable_body_the_same_every_time() {
        let catalog = Catalog::builtin();
        for (event, key) in [
            ("license.activated", "LicenseInfo"),
            ("customer.updated", "CustomerInfo"),
            ("product.created", "ProductInfo"),
            ("license.expired", "LicenseInfo"),
        ] {
            let snapshot = snapshot(event, &catalog);
            assert_eq!(snapshot, super::snapshot(event, &catalog));
            let event = EventBody {
                event_type: event,
                created_ms: CREATED_MS,
                snapshot: &snapshot,
                test: true,
            };
            let bytes = body(Format::Qlm, &event, &catalog).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["Test"], true, "{json}");
            assert!(json[key].as_object().unwrap().len() > 5, "{json}");
        }
        let license: serde_json::Value =
            serde_json::from_str(&snapshot("license.created", &catalog)).unwrap();
        assert_eq!(license["ActivationKey"], "TEST-0000-0000-1001");
        assert!(license.as_object().unwrap().contains_key("ReleaseDate"));
    }
}

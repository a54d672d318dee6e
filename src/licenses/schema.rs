//! The license database's schema: QLM's `LicenseKeys` table, in QLM's own column names, so a
//! search written for QLM runs here verbatim.

use rusqlite::{Connection, OptionalExtension};

/// The one table a search may read.
pub const TABLE: &str = "LicenseKeys";

/// How a column's value is stored, and so how it is read back and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0/1 integer, sent as a JSON boolean.
    Bool,
    /// Text, sent as a string; NULL is sent as `""`.
    Text,
    /// Integer, sent as a number; NULL is sent as `0`.
    Int,
    /// ISO-8601 text `YYYY-MM-DDTHH:MM:SS`, sent as that string; NULL is sent as `null`.
    Date,
    /// QLM's license model, stored as its name (`trial`) and sent as QLM's integer (`2`).
    Model,
}

/// The fields of QLM's `LicenseInfo`, in the order QLM sends them.
pub const LICENSE_INFO: [(&str, Kind); 35] = [
    ("LicenseUpdatedOnServer", Kind::Bool),
    ("ActivationKey", Kind::Text),
    ("FullName", Kind::Text),
    ("Country", Kind::Text),
    ("AffiliateID", Kind::Text),
    ("Email", Kind::Text),
    ("Duration", Kind::Int),
    ("ExpiryDate", Kind::Date),
    ("UsesAdminEncryption", Kind::Bool),
    ("MaintenanceRenewalDate", Kind::Date),
    ("Features", Kind::Text),
    ("OrderID", Kind::Text),
    ("ReceiptID", Kind::Text),
    ("SubscriptionID", Kind::Text),
    ("LicenseModel", Kind::Model),
    ("ProductID", Kind::Int),
    ("MajorVersion", Kind::Int),
    ("MinorVersion", Kind::Int),
    ("NumLicenses", Kind::Int),
    ("FloatingSeats", Kind::Int),
    ("UserData", Kind::Text),
    ("NewFeatures", Kind::Text),
    ("NewFloatingSeats", Kind::Int),
    ("ComputerID", Kind::Text),
    ("ComputerName", Kind::Text),
    ("Comment", Kind::Text),
    ("LegacyKey", Kind::Text),
    ("AvailableLicenses", Kind::Int),
    ("OrderDate", Kind::Date),
    ("ProductProperties", Kind::Text),
    ("BundleID", Kind::Text),
    ("ProductName", Kind::Text),
    ("MaxReleaseCount", Kind::Int),
    ("MaxReleasePeriodInDays", Kind::Int),
    ("OrganizationID", Kind::Int),
];

/// QLM license columns that are not part of `LicenseInfo` but that searches filter on.
pub const EXTRA: [(&str, Kind); 9] = [
    ("SubscriptionExpiryDate", Kind::Date),
    ("Disabled", Kind::Bool),
    ("ActivationDate", Kind::Date),
    ("ActivationCount", Kind::Int),
    ("ReleaseDate", Kind::Date),
    ("OrderStatus", Kind::Int),
    ("LastAccessedDate", Kind::Date),
    ("CustomerID", Kind::Int),
    ("CreationDate", Kind::Date),
];

/// QLM's license models, in the order of their integer values (`trial` is 2).
pub const LICENSE_MODELS: [&str; 10] = [
    "none",
    "permanent",
    "trial",
    "subscription",
    "permanent_floating",
    "trial_floating",
    "subscription_floating",
    "permanent_cloud",
    "trial_cloud",
    "subscription_cloud",
];

/// Whether `name` is a column of the license table (case-insensitively, as SQLite compares).
pub fn is_column(name: &str) -> bool {
    name.eq_ignore_ascii_case("ID")
        || LICENSE_INFO
            .iter()
            .chain(EXTRA.iter())
            .any(|(column, _)| column.eq_ignore_ascii_case(name))
}

/// Whether `name` is one of the license table's date columns.
pub fn is_date_column(name: &str) -> bool {
    LICENSE_INFO
        .iter()
        .chain(EXTRA.iter())
        .any(|(column, kind)| *kind == Kind::Date && column.eq_ignore_ascii_case(name))
}

/// The columns every search reads: the id, the subscription expiry, and `LicenseInfo`.
pub fn searched_columns() -> impl Iterator<Item = &'static str> {
    ["ID", "SubscriptionExpiryDate"]
        .into_iter()
        .chain(LICENSE_INFO.iter().map(|(name, _)| *name))
}

/// Every column `keyhook db init` creates.
pub fn all_columns() -> impl Iterator<Item = &'static str> {
    std::iter::once("ID").chain(
        LICENSE_INFO
            .iter()
            .chain(EXTRA.iter())
            .map(|(name, _)| *name),
    )
}

/// Which of `wanted` the license table lacks, in the order given.
pub fn missing_columns<'a>(
    conn: &Connection,
    wanted: impl Iterator<Item = &'a str>,
) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare(&format!("SELECT name FROM pragma_table_info('{TABLE}')"))?;
    let present = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(wanted
        .filter(|name| !present.iter().any(|have| have.eq_ignore_ascii_case(name)))
        .map(str::to_string)
        .collect())
}

/// The name that reaches the license table's rows in the table's own order: `rowid`, or
/// `_rowid_` or `oid` where a column of the table takes that name; `None` for a table
/// without one (`WITHOUT ROWID`, or all three names taken).
pub fn rowid_alias(conn: &Connection) -> rusqlite::Result<Option<&'static str>> {
    let without_rowid: Option<bool> = conn
        .query_row(
            &format!("SELECT wr FROM pragma_table_list('{TABLE}') WHERE schema = 'main'"),
            [],
            |row| row.get(0),
        )
        .optional()?;
    if without_rowid != Some(false) {
        return Ok(None);
    }
    // `table_xinfo`: generated and hidden columns can take those names too.
    let mut statement = conn.prepare(&format!("SELECT name FROM pragma_table_xinfo('{TABLE}')"))?;
    let columns = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(["rowid", "_rowid_", "oid"].into_iter().find(|alias| {
        !columns
            .iter()
            .any(|column| column.eq_ignore_ascii_case(alias))
    }))
}

/// The `CREATE TABLE` and `CREATE INDEX` statements, in one script.
pub fn ddl() -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {TABLE} (\n    ID INTEGER PRIMARY KEY");
    for (name, kind) in LICENSE_INFO.iter().chain(EXTRA.iter()) {
        let definition = match (name, kind) {
            (_, Kind::Bool) => "INTEGER NOT NULL DEFAULT 0",
            (&"NewFloatingSeats", _) => "INTEGER DEFAULT -1",
            (&"MaxReleaseCount" | &"MaxReleasePeriodInDays", _) => "INTEGER DEFAULT -2",
            (_, Kind::Int) => "INTEGER",
            (_, Kind::Text | Kind::Date) => "TEXT",
            (_, Kind::Model) => "TEXT NOT NULL DEFAULT 'permanent'",
        };
        sql.push_str(&format!(",\n    {name} {definition}"));
    }
    sql.push_str("\n);\n");
    sql.push_str(&index_ddl());
    sql
}

/// The license table's indexes (dates, `ActivationKey`, `Email`): the same statements on
/// SQLite and on PostgreSQL.
pub fn index_ddl() -> String {
    let indexed = LICENSE_INFO
        .iter()
        .chain(EXTRA.iter())
        .filter(|(name, kind)| *kind == Kind::Date || *name == "ActivationKey" || *name == "Email");
    indexed
        .map(|(name, _)| {
            format!("CREATE INDEX IF NOT EXISTS idx_{TABLE}_{name} ON {TABLE}({name});\n")
        })
        .collect()
}

/// QLM's customer table. QLM does not publish its full schema: these are the customer fields
/// its documentation and APIs name (`FullName`, `Company`, `Email`, the address, `UserData1`,
/// and v11's `PrivacyPolicyConsent` / `PrivacyPolicyLastUpdate`), keyed on `CustomerID`, which
/// `LicenseKeys.CustomerID` refers to. Plausible, not a copy of QLM's SQL Server DDL.
pub const CUSTOMERS: &str = "Customers";

/// QLM's product table, keyed on the `ProductID` that `LicenseKeys.ProductID` refers to; the
/// same caveat as [`CUSTOMERS`]. No encryption key column: a snapshot of it would leak it.
pub const PRODUCTS: &str = "Products";

/// The fields of `CustomerInfo` in event payloads, in this order: the columns of
/// [`CUSTOMERS`] with the JSON types and NULL rules of `LicenseInfo`.
pub const CUSTOMER_INFO: [(&str, Kind); 20] = [
    ("CustomerID", Kind::Int),
    ("FullName", Kind::Text),
    ("Contact", Kind::Text),
    ("Company", Kind::Text),
    ("Email", Kind::Text),
    ("Phone", Kind::Text),
    ("Fax", Kind::Text),
    ("Address1", Kind::Text),
    ("Address2", Kind::Text),
    ("City", Kind::Text),
    ("State", Kind::Text),
    ("Zip", Kind::Text),
    ("Country", Kind::Text),
    ("UserData1", Kind::Text),
    ("OptIn", Kind::Bool),
    ("OrganizationID", Kind::Int),
    ("PrivacyPolicyConsent", Kind::Bool),
    ("PrivacyPolicyLastUpdate", Kind::Date),
    ("CreationDate", Kind::Date),
    ("LastUpdatedDate", Kind::Date),
];

/// The customer and product tables' `CREATE` statements.
pub const RELATED_DDL: &str = "CREATE TABLE IF NOT EXISTS Customers (
    CustomerID INTEGER PRIMARY KEY,
    FullName TEXT,
    Contact TEXT,
    Company TEXT,
    Email TEXT,
    Phone TEXT,
    Fax TEXT,
    Address1 TEXT,
    Address2 TEXT,
    City TEXT,
    State TEXT,
    Zip TEXT,
    Country TEXT,
    UserData1 TEXT,
    OptIn INTEGER NOT NULL DEFAULT 0,
    OrganizationID INTEGER,
    PrivacyPolicyConsent INTEGER NOT NULL DEFAULT 0,
    PrivacyPolicyLastUpdate TEXT,
    CreationDate TEXT,
    LastUpdatedDate TEXT
);
CREATE INDEX IF NOT EXISTS idx_Customers_Email ON Customers(Email);
CREATE TABLE IF NOT EXISTS Products (
    ProductID INTEGER PRIMARY KEY,
    ProductName TEXT NOT NULL,
    MajorVersion INTEGER,
    MinorVersion INTEGER,
    Features TEXT,
    Description TEXT,
    CreationDate TEXT
);
";

/// Creates the tables and their indexes if they are not there yet.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&ddl())?;
    conn.execute_batch(RELATED_DDL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_creates_every_column_once() {
        let conn = Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        create(&conn).unwrap();
        let count: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('LicenseKeys')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count as usize, 1 + LICENSE_INFO.len() + EXTRA.len());
    }

    #[test]
    fn missing_columns_are_listed_in_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE LicenseKeys (id INTEGER, activationkey TEXT)")
            .unwrap();
        let missing = missing_columns(
            &conn,
            ["ID", "Email", "ActivationKey", "Country"].into_iter(),
        );
        assert_eq!(missing.unwrap(), ["Email", "Country"]);
        let fresh = Connection::open_in_memory().unwrap();
        create(&fresh).unwrap();
        assert!(missing_columns(&fresh, all_columns()).unwrap().is_empty());
    }

    #[test]
    fn create_makes_the_customer_and_product_tables() {
        let conn = Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        for (table, key) in [(CUSTOMERS, "CustomerID"), (PRODUCTS, "ProductID")] {
            let pk: String = conn
                .query_row(
                    &format!("SELECT name FROM pragma_table_info('{table}') WHERE pk = 1"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(pk, key);
        }
    }

    #[test]
    fn columns_are_recognised_case_insensitively() {
        assert!(is_column("subscriptionexpirydate"));
        assert!(is_column("Email"));
        assert!(!is_column("today_start"));
    }
}

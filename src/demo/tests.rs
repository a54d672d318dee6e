use super::row::push_folded;
use super::*;
use crate::licenses::schema::{self, Kind};
use chrono::Months;
use rusqlite::types::Value;

/// The example searches shipped in `searches/`, which the demo must match on any day.
const SEARCHES: [&str; 5] = [
    "upcoming-renewals",
    "expired-yesterday",
    "trials-ending-soon",
    "maintenance-due-this-month",
    "new-orders-yesterday",
];

/// Leap day, year end, the day after February, a month start, mid-year.
const DAYS: [(i32, u32, u32); 6] = [
    (2024, 2, 29),
    (2026, 12, 31),
    (2027, 3, 1),
    (2026, 1, 1),
    (2025, 7, 15),
    (2024, 12, 1),
];

fn day((year, month, day): (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn demo(today: NaiveDate, licenses: usize, seed: u64) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::create(&conn).unwrap();
    let options = DemoOptions {
        licenses,
        today,
        seed,
    };
    assert_eq!(populate(&mut conn, &options).unwrap(), licenses);
    conn
}

fn count(conn: &Connection, condition: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM LicenseKeys WHERE {condition}");
    conn.query_row(&sql, [], |r| r.get(0)).unwrap()
}

/// The search's SQL with its placeholders replaced by their values on `today`; `[now]` is
/// the last second of the day, the hardest moment for a search about the future.
fn expanded_search(name: &str, today: NaiveDate) -> String {
    let path = format!("{}/searches/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut sql = file["sql"].as_str().unwrap().to_string();
    let at = |date: NaiveDate, time: &str| format!("'{date}T{time}'");
    let yesterday = today.pred_opt().unwrap();
    let month = today.with_day(1).unwrap();
    let month_end = month + Months::new(1) - Days::new(1);
    for (placeholder, value) in [
        ("[today_start]", at(today, "00:00:01")),
        ("[today_start+30]", at(today + Days::new(30), "00:00:01")),
        ("[today_end+7]", at(today + Days::new(7), "23:59:59")),
        ("[yesterday_start]", at(yesterday, "00:00:01")),
        ("[yesterday_end]", at(yesterday, "23:59:59")),
        ("[this_month_start]", at(month, "00:00:01")),
        ("[this_month_end]", at(month_end, "23:59:59")),
        ("[now]", at(today, "23:59:59")),
    ] {
        sql = sql.replace(placeholder, &value);
    }
    assert!(
        !sql.contains('['),
        "unexpanded placeholder in {name}: {sql}"
    );
    sql
}

#[test]
fn every_example_search_matches_on_any_day() {
    for today in DAYS.map(day) {
        let conn = demo(today, 300, 42);
        for name in SEARCHES {
            let matches = count(&conn, &expanded_search(name, today));
            assert!(matches >= 10, "{name} on {today}: {matches} rows");
        }
        let renewals = count(&conn, &expanded_search("upcoming-renewals", today));
        assert!(renewals >= 30, "only {renewals} renewals on {today}");
    }
}

#[test]
fn every_ninth_license_has_maintenance_due_this_month_and_the_next_one_next_month() {
    for today in DAYS.map(day) {
        let conn = demo(today, 300, 42);
        let month = today.with_day(1).unwrap();
        let next = month + Months::new(1);
        for (cycle, first) in [(0, month), (1, next)] {
            let last = first + Months::new(1);
            let outside = format!(
                "(ID - 1) % {MAINTENANCE_CYCLE} = {cycle} AND LicenseModel <> 'trial' AND \
                 NOT (MaintenanceRenewalDate > '{first}' AND MaintenanceRenewalDate < '{last}')"
            );
            assert_eq!(count(&conn, &outside), 0, "{today}, cycle {cycle}");
        }
    }
}

#[test]
fn searches_match_in_a_tiny_demo_too() {
    let today = day((2027, 3, 1));
    let conn = demo(today, 20, 7);
    for name in SEARCHES {
        assert!(count(&conn, &expanded_search(name, today)) >= 1, "{name}");
    }
}

fn dump(conn: &Connection) -> Vec<Vec<Value>> {
    let mut statement = conn
        .prepare("SELECT * FROM LicenseKeys ORDER BY ID")
        .unwrap();
    let width = statement.column_count();
    let rows = statement.query_map([], |row| (0..width).map(|i| row.get(i)).collect());
    rows.unwrap().map(Result::unwrap).collect()
}

#[test]
fn the_same_seed_gives_the_same_rows() {
    let today = day((2026, 12, 31));
    assert_eq!(dump(&demo(today, 200, 9)), dump(&demo(today, 200, 9)));
    assert_ne!(dump(&demo(today, 200, 9)), dump(&demo(today, 200, 10)));
}

#[test]
fn keys_are_unique_and_shaped_like_qlm_keys() {
    let mut conn = demo(day((2024, 2, 29)), 1000, 42);
    let options = DemoOptions {
        licenses: 1000,
        today: day((2024, 2, 29)),
        seed: 42,
    };
    populate(&mut conn, &options).unwrap();
    assert_eq!(count(&conn, "1"), 2000);
    let distinct: i64 = conn
        .query_row(
            "SELECT count(DISTINCT ActivationKey) FROM LicenseKeys",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(distinct, 2000);
    let malformed = "length(ActivationKey) <> 39 OR ActivationKey GLOB '*[^0-9A-Z]*'";
    assert_eq!(count(&conn, malformed), 0);
}

#[test]
fn dates_have_qlm_format_and_times_between_1am_and_11pm() {
    let conn = demo(day((2024, 2, 29)), 500, 42);
    let format = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]'";
    let dates = schema::LICENSE_INFO.iter().chain(schema::EXTRA.iter());
    for (column, _) in dates.filter(|(_, kind)| *kind == Kind::Date) {
        assert!(
            count(&conn, &format!("{column} IS NOT NULL")) > 0,
            "{column}"
        );
        let bad = format!(
            "{column} IS NOT NULL AND ({column} NOT GLOB {format} OR date({column}) IS NULL \
             OR substr({column}, 12) NOT BETWEEN '01:00:00' AND '23:00:00')"
        );
        assert_eq!(count(&conn, &bad), 0, "{column}");
    }
    let distinct_times: i64 = conn
        .query_row(
            "SELECT count(DISTINCT substr(OrderDate, 12)) FROM LicenseKeys",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(distinct_times > 100);
}

#[test]
fn dates_spread_about_a_year_either_side_of_today() {
    let today = day((2026, 1, 1));
    let conn = demo(today, 300, 42);
    let spread = |column: &str| -> (String, String) {
        let sql = format!("SELECT min({column}), max({column}) FROM LicenseKeys");
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    let (first, last) = spread("SubscriptionExpiryDate");
    assert!(first.as_str() < "2025-01-15" && last.as_str() > "2026-12-15");
    let (first, last) = spread("OrderDate");
    assert!(first.as_str() < "2024-02-01" && last.as_str() < today.to_string().as_str());
}

#[test]
fn every_kind_of_license_is_there() {
    let today = day((2026, 12, 31));
    let conn = demo(today, 300, 42);
    let perpetual = "LicenseModel = 'permanent' AND ExpiryDate IS NULL \
                     AND SubscriptionExpiryDate IS NULL";
    assert!(count(&conn, perpetual) >= 20);
    let (from, to) = (today - Days::new(30), today + Days::new(31));
    let trials = format!(
        "LicenseModel = 'trial' AND Duration IN (14, 30) \
         AND ExpiryDate BETWEEN '{from}' AND '{to}'"
    );
    assert_eq!(
        count(&conn, &trials),
        count(&conn, "LicenseModel = 'trial'")
    );
    assert!(count(&conn, &trials) >= 30);
    assert!(count(&conn, &format!("SubscriptionExpiryDate < '{today}'")) >= 20);
    let disabled = count(&conn, "Disabled = 1");
    assert!((3..=30).contains(&disabled), "{disabled} disabled");
    assert_eq!(count(&conn, "ProductID IN (1, 2, 3, 4)"), 300);
    assert!(count(&conn, "ProductID = 2 AND Features = 'STD,PRO,'") > 0);
}

#[test]
fn text_exercises_encoding_and_nulls() {
    let conn = demo(day((2025, 7, 15)), 300, 42);
    assert!(count(&conn, "length(FullName) < length(CAST(FullName AS BLOB))") >= 30);
    assert!(count(&conn, "FullName LIKE '%陈美%'") > 0);
    assert_eq!(
        count(
            &conn,
            "Email GLOB '*[^a-z0-9.@-]*' OR Email NOT LIKE '_%@_%.example'"
        ),
        0
    );
    assert_eq!(count(&conn, "Email LIKE '%..%' OR Email LIKE '%.@%'"), 0);
    assert!(count(&conn, "Email LIKE 'lukasz.wrobel@%'") > 0);
    for column in [
        "ComputerID",
        "LegacyKey",
        "OrderID",
        "Comment",
        "AffiliateID",
    ] {
        assert!(count(&conn, &format!("{column} IS NULL")) > 0, "{column}");
        assert!(
            count(&conn, &format!("{column} IS NOT NULL")) > 0,
            "{column}"
        );
    }
    assert_eq!(
        count(
            &conn,
            "OrderID NOT GLOB 'SO-[0-9][0-9][0-9][0-9][0-9][0-9][0-9]'"
        ),
        0
    );
}

#[test]
fn folding_keeps_only_lowercase_ascii() {
    let fold = |text: &str, separator: char| {
        let mut out = String::from("x:");
        push_folded(&mut out, text, separator);
        out
    };
    assert_eq!(fold("Ólafur Þórsson", '.'), "x:olafur.thorsson");
    assert_eq!(fold("Mei Chen 陈美", '.'), "x:mei.chen");
    assert_eq!(fold("Żółty Kod sp. z o.o.", '-'), "x:zolty-kod-sp-z-oo");
    assert_eq!(fold("Øresund Data A/S", '-'), "x:oresund-data-a-s");
    assert_eq!(fold("James O'Brien", '.'), "x:james.obrien");
}

fn indexes(conn: &Connection) -> Vec<(String, String)> {
    let sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index' ORDER BY name";
    let mut statement = conn.prepare(sql).unwrap();
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)));
    rows.unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_large_demo_rebuilds_the_indexes_it_dropped() {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::create(&conn).unwrap();
    let before = indexes(&conn);
    assert!(before.len() >= 10);
    let options = DemoOptions {
        licenses: REBUILD_INDEXES_FROM,
        ..DemoOptions::default()
    };
    populate(&mut conn, &options).unwrap();
    assert_eq!(indexes(&conn), before);
    let threads: i64 = conn.query_row("PRAGMA threads", [], |r| r.get(0)).unwrap();
    assert_eq!(threads, 0);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_today_without_room_for_four_digit_years_is_an_error() {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::create(&conn).unwrap();
    let options = DemoOptions {
        today: NaiveDate::MAX,
        ..DemoOptions::default()
    };
    assert!(populate(&mut conn, &options).is_err());
    assert_eq!(count(&conn, "1"), 0);
}

#[test]
fn every_license_names_a_demo_customer_and_product_with_its_email() {
    let conn = demo(day(DAYS[0]), 300, 42);
    let orphans = count(
        &conn,
        "CustomerID NOT IN (SELECT CustomerID FROM Customers) \
         OR ProductID NOT IN (SELECT ProductID FROM Products) \
         OR Email <> (SELECT Email FROM Customers c WHERE c.CustomerID = LicenseKeys.CustomerID)",
    );
    assert_eq!(orphans, 0);
    let (customers, products): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM Customers), (SELECT count(*) FROM Products)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!((10..=336).contains(&customers), "{customers} customers");
    assert_eq!(products, PRODUCTS.len() as i64);
}

//! The demo licenses written to PostgreSQL: the same rows as in SQLite (the same generator,
//! ids and text), loaded with one `COPY` in the caller's transaction.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use ::postgres::Transaction;

use super::row::{Cell, Row};
use super::*;
use crate::licenses::schema::{EXTRA, LICENSE_INFO};

/// Appends `options.licenses` rows (ids continuing after the highest), then the products and
/// the customers they name. Returns `None` when `stop` was set meanwhile: the caller then
/// rolls back.
pub fn populate(
    tx: &mut Transaction<'_>,
    options: &DemoOptions,
    stop: &AtomicBool,
) -> anyhow::Result<Option<usize>> {
    let calendar = Calendar::new(options.today)?;
    let first: i64 = tx
        .query_one("SELECT coalesce(max(ID), 0) FROM LicenseKeys", &[])?
        .get(0);
    let columns: Vec<&str> = LICENSE_INFO
        .iter()
        .chain(EXTRA.iter())
        .map(|(name, _)| *name)
        .collect();
    let copy = format!("COPY LicenseKeys (ID, {}) FROM STDIN", columns.join(", "));
    let mut writer = tx.copy_in(&copy)?;
    let (mut row, mut line) = (Row::default(), String::new());
    for index in (first as u64)..(first as u64 + options.licenses as u64) {
        if index % 10_000 == 0 && stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        row.fill(index, options.seed, &calendar);
        copy_line(&mut line, index as i64 + 1, &row.cells());
        writer.write_all(line.as_bytes())?;
    }
    writer.finish()?;
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('licensekeys', 'id'), \
         (SELECT coalesce(max(ID), 0) + 1 FROM LicenseKeys), false)",
    )?;
    populate_related(tx)?;
    tx.batch_execute("ANALYZE LicenseKeys")?;
    Ok(Some(options.licenses))
}

/// One line of `COPY`'s text format: tab-separated, `\N` for NULL, backslashes escaped.
fn copy_line(line: &mut String, id: i64, cells: &[Cell<'_>]) {
    line.clear();
    line.push_str(&id.to_string());
    for cell in cells {
        line.push('\t');
        match cell {
            Cell::Null => line.push_str("\\N"),
            Cell::Int(number) => line.push_str(&number.to_string()),
            Cell::Text(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        c => line.push(c),
                    }
                }
            }
        }
    }
    line.push('\n');
}

/// The products, and the customers the licenses name, as `related` writes them in SQLite.
fn populate_related(tx: &mut Transaction<'_>) -> Result<(), ::postgres::Error> {
    let product = tx.prepare(
        "INSERT INTO Products
         (ProductID, ProductName, MajorVersion, MinorVersion, Features, Description, CreationDate)
         VALUES ($1::int4, $2, $3::int4, $4::int4, $5, $6, '2020-01-01T09:00:00')
         ON CONFLICT DO NOTHING",
    )?;
    for (id, name, versions, features) in PRODUCTS {
        let (major, minor) = versions[versions.len() - 1];
        let description = format!("{name}, the demo's product {id}");
        let (id, major, minor) = (id as i32, major as i32, minor as i32);
        let feature = features[features.len() - 1];
        tx.execute(
            &product,
            &[&id, &name, &major, &minor, &feature, &description],
        )?;
    }
    let ids: Vec<i32> = tx
        .query(
            "SELECT DISTINCT CustomerID FROM LicenseKeys WHERE CustomerID IS NOT NULL",
            &[],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let customer = tx.prepare(
        "INSERT INTO Customers
         (CustomerID, FullName, Company, Email, Country, OrganizationID, OptIn, CreationDate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, '2020-01-01T09:00:00') ON CONFLICT DO NOTHING",
    )?;
    for id in ids {
        if let Some((name, company, email, country, organization)) =
            related::customer_of(i64::from(id))
        {
            let (organization, opt_in) = (organization as i32, id % 2);
            tx.execute(
                &customer,
                &[
                    &id,
                    &name,
                    &company,
                    &email,
                    &country,
                    &organization,
                    &opt_in,
                ],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_escape_what_copy_reads_as_syntax() {
        let mut line = String::new();
        let cells = [Cell::Null, Cell::Int(-1), Cell::Text("a\tb\\c\nd")];
        copy_line(&mut line, 7, &cells);
        assert_eq!(line, "7\t\\N\t-1\ta\\tb\\\\c\\nd\n");
    }

    #[test]
    fn insert_columns_are_license_info_then_extra() {
        let listed = &INSERT[INSERT.find('(').unwrap() + 1..INSERT.find(')').unwrap()];
        let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
        let expected: Vec<&str> = LICENSE_INFO
            .iter()
            .chain(EXTRA.iter())
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(listed, expected);
    }
}

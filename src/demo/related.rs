//! The demo's customers and products: one row per customer its licenses name and one per
//! product, so `LicenseKeys.CustomerID` and `ProductID` resolve and the customer and product
//! events have rows to fire on.

use super::*;
use row::push_folded;

/// Writes the products, and the customers the licenses refer to; rows already there are kept.
pub(super) fn populate_related(tx: &Connection) -> rusqlite::Result<()> {
    let mut product = tx.prepare(
        "INSERT OR IGNORE INTO Products
         (ProductID, ProductName, MajorVersion, MinorVersion, Features, Description, CreationDate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '2020-01-01T09:00:00')",
    )?;
    for (id, name, versions, features) in PRODUCTS {
        let (major, minor) = versions[versions.len() - 1];
        let description = format!("{name}, the demo's product {id}");
        product.execute(params![
            id,
            name,
            major,
            minor,
            features[features.len() - 1],
            description
        ])?;
    }
    let ids: Vec<i64> = tx
        .prepare("SELECT DISTINCT CustomerID FROM LicenseKeys WHERE CustomerID IS NOT NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut customer = tx.prepare(
        "INSERT OR IGNORE INTO Customers
         (CustomerID, FullName, Company, Email, Country, OrganizationID, OptIn, CreationDate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '2020-01-01T09:00:00')",
    )?;
    for id in ids {
        if let Some(values) = customer_of(id) {
            let (name, company, email, country, organization) = values;
            customer.execute(params![
                id,
                name,
                company,
                email,
                country,
                organization,
                id % 2
            ])?;
        }
    }
    Ok(())
}

/// The person and company a demo `CustomerID` was made from (see `Row::fill_customer`).
pub(super) fn customer_of(
    id: i64,
) -> Option<(&'static str, &'static str, String, &'static str, i64)> {
    let index = usize::try_from(id.checked_sub(1000)?).ok()?;
    let (person, company) = (index / COMPANIES.len(), index % COMPANIES.len());
    let (name, country) = *PEOPLE.get(person)?;
    let company_name = COMPANIES[company];
    let mut email = String::new();
    push_folded(&mut email, name, '.');
    email.push('@');
    push_folded(&mut email, company_name, '-');
    email.push_str(".example");
    Some((name, company_name, email, country, 1 + company as i64))
}

//! A PostgreSQL row as a license: each value read by its type into the values SQLite has
//! (integer, real, text), then through the one mapping both back ends share, so the same row
//! gives the same payload bytes. A timestamp is sent as `YYYY-MM-DDTHH:MM:SS`.

use chrono::{NaiveDate, NaiveDateTime};
use postgres::Row;
use postgres::types::{FromSql, Type};
use rusqlite::types::{Value, ValueRef};

use crate::licenses::license_info::{Field, License, LicenseInfo, RowError, read_fields};
use crate::licenses::macros::DATE_FORMAT;
use crate::licenses::schema::{Kind, LICENSE_INFO};

/// The columns a search selects, in order: `ID`, `SubscriptionExpiryDate`, then
/// [`LICENSE_INFO`].
const FIRST_INFO_COLUMN: usize = 2;

/// Why a PostgreSQL value cannot be read as the value SQLite would hold; worded to follow
/// `column <name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgValueError {
    #[error(
        "holds a value of PostgreSQL type {0}, which keyhook does not read (use integer, text, \
         timestamp or date)"
    )]
    UnreadType(Type),
    #[error("holds text that is not UTF-8")]
    NotUtf8,
    /// The driver's words.
    #[error("could not be read: {0}")]
    Unreadable(String),
    #[error("is not a number")]
    NotANumber,
    #[error("was not selected")]
    NotSelected,
}

/// Reads a row selected as `ID, SubscriptionExpiryDate, <LicenseInfo columns>`.
pub fn license(row: &Row) -> Result<License, RowError> {
    let values: Vec<Result<Value, PgValueError>> = (0..row.len()).map(|i| value(row, i)).collect();
    let key = key_of(&values);
    let bad = |id, column, problem| RowError {
        id,
        key: key.clone(),
        column,
        problem,
    };
    let id = match values.first() {
        Some(Ok(Value::Integer(id))) => *id,
        Some(Err(problem)) => return Err(bad(0, "ID", problem.to_string())),
        _ => return Err(bad(0, "ID", PgValueError::NotANumber.to_string())),
    };
    let at = |index: usize| match values.get(index) {
        Some(Ok(value)) => Ok(ValueRef::from(value)),
        Some(Err(problem)) => Err(problem.clone()),
        None => Err(PgValueError::NotSelected),
    };
    let expiry = read_fields(&[("SubscriptionExpiryDate", Kind::Date)], |_, _| at(1))
        .map_err(|(column, problem)| bad(id, column, problem.to_string()))?;
    let subscription_expiry = match expiry.into_iter().next() {
        Some(Field::Date(date)) => date,
        _ => None,
    };
    let fields = read_fields(&LICENSE_INFO, |offset, _| at(FIRST_INFO_COLUMN + offset))
        .map_err(|(column, problem)| bad(id, column, problem.to_string()))?;
    Ok(License {
        id,
        subscription_expiry,
        info: LicenseInfo::from_fields(fields),
    })
}

/// The `ActivationKey`, best effort, to name a bad row by.
fn key_of(values: &[Result<Value, PgValueError>]) -> String {
    let offset = LICENSE_INFO
        .iter()
        .position(|(name, _)| *name == "ActivationKey");
    match offset.and_then(|offset| values.get(FIRST_INFO_COLUMN + offset)) {
        Some(Ok(Value::Text(text))) => text.clone(),
        Some(Ok(Value::Integer(number))) => number.to_string(),
        _ => String::new(),
    }
}

/// One value as SQLite would hold it. A type keyhook cannot send truthfully is an error,
/// which makes the row a bad row.
fn value(row: &Row, index: usize) -> Result<Value, PgValueError> {
    let kind = row.columns()[index].type_().clone();
    let integer = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
    let text = |t: Option<String>| t.map_or(Value::Null, Value::Text);
    Ok(match kind {
        Type::INT2 => integer(get::<i16>(row, index)?.map(i64::from)),
        Type::INT4 => integer(get::<i32>(row, index)?.map(i64::from)),
        Type::INT8 => integer(get::<i64>(row, index)?),
        Type::BOOL => integer(get::<bool>(row, index)?.map(i64::from)),
        Type::FLOAT4 => real(get::<f32>(row, index)?.map(f64::from)),
        Type::FLOAT8 => real(get::<f64>(row, index)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => text(get(row, index)?),
        Type::TIMESTAMP => {
            text(get::<NaiveDateTime>(row, index)?.map(|at| at.format(DATE_FORMAT).to_string()))
        }
        Type::DATE => text(
            get::<NaiveDate>(row, index)?.map(|day| format!("{}T00:00:00", day.format("%Y-%m-%d"))),
        ),
        other => return Err(PgValueError::UnreadType(other)),
    })
}

fn real(number: Option<f64>) -> Value {
    number.map_or(Value::Null, Value::Real)
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<Option<T>, PgValueError> {
    row.try_get::<_, Option<T>>(index).map_err(|error| {
        let text = error.to_string();
        if text.contains("utf") || text.contains("UTF") {
            PgValueError::NotUtf8
        } else {
            PgValueError::Unreadable(text)
        }
    })
}

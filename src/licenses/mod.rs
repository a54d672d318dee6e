//! The license database: its schema, the placeholder grammar and values, safe read-only
//! evaluation of a search, and the mapping from a row to QLM's `LicenseInfo`.

pub mod database;
pub mod date_text;
pub mod license_info;
pub mod macros;
pub mod open;
pub mod placeholders;
pub mod postgres;
pub mod query;
pub mod refusal;
pub mod schema;
pub mod snapshot;

//! Value parsers of flags whose values keyhook bounds itself.

use std::time::Duration;

use crate::definitions::settings::{DurationError, parse_duration};

/// The most licenses a demo database may hold.
const MAX_LICENSES: usize = 100_000_000;

/// A number of demo licenses that is not one, or is over [`MAX_LICENSES`], as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a number of licenses from 0 to {MAX_LICENSES}")]
pub struct LicenseCountError(String);

/// A duration from the command line or its environment variable: `30s`, `5m`, `2h 30m`, `90d`;
/// positive and at most 100 years, so no arithmetic on it can wrap.
pub fn duration(text: &str) -> Result<Duration, DurationError> {
    parse_duration(text)
}

/// A number of demo licenses: bounded, so the ids and dates derived from it cannot overflow.
pub fn license_count(text: &str) -> Result<usize, LicenseCountError> {
    match text.trim().parse::<usize>() {
        Ok(count) if count <= MAX_LICENSES => Ok(count),
        _ => Err(LicenseCountError(text.to_string())),
    }
}

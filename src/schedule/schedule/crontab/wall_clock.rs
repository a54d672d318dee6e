//! Wall-clock arithmetic for the DST rules: UTC offsets, local minutes, and where a zone's
//! offset changes.

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

pub(super) fn offset_at(at: DateTime<Utc>, zone: Tz) -> FixedOffset {
    zone.offset_from_utc_datetime(&at.naive_utc()).fix()
}

pub(super) fn local_at(at: DateTime<Utc>, offset: FixedOffset) -> Option<NaiveDateTime> {
    at.naive_utc().checked_add_offset(offset)
}

pub(super) fn instant(local: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    local.checked_sub_offset(offset).map(|utc| utc.and_utc())
}

/// The first instant after `low` whose UTC offset differs from `low`'s; `high`'s must differ.
pub(super) fn first_change(
    low: DateTime<Utc>,
    high: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let offset = offset_at(low, zone);
    let (mut low, mut high) = (low.timestamp(), high.timestamp());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let changed = DateTime::from_timestamp(middle, 0).map(|at| offset_at(at, zone) != offset);
        match changed? {
            true => high = middle,
            false => low = middle,
        }
    }
    DateTime::from_timestamp(high, 0)
}

pub(super) fn floor_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    local.with_second(0)?.with_nanosecond(0)
}

pub(super) fn ceil_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = floor_minute(local)?;
    match floor == local {
        true => Some(floor),
        false => floor.checked_add_signed(MINUTE),
    }
}

pub(super) fn plus_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    local.checked_add_signed(MINUTE)
}

pub(in crate::schedule::schedule) const MINUTE: Duration = Duration::minutes(1);

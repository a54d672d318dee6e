//! How a SQLite license database writes its dates, so that a placeholder compares with them
//! as the user means.
//!
//! SQLite compares dates stored as text byte by byte. A placeholder bound as
//! `2026-12-01T00:00:00` sorts after every `2026-12-01 10:00:00` (a space sorts before `T`)
//! and after `2026-12-01` (a prefix sorts first): on the day a search's window starts or
//! ends, such rows fell on the wrong side, in silence. So the placeholders are bound in the
//! shape the database's own dates have, read off one stored date: the same separator, and
//! no seconds (or no time at all) where the dates have none and the value has none either.

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use rusqlite::Connection;

use super::schema::TABLE;

/// The shape of a stored date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateText {
    /// Between the date and the time: `T` or a space.
    separator: char,
    precision: Precision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    /// `2026-12-01`
    Day,
    /// `2026-12-01 10:00`
    Minute,
    /// `2026-12-01 10:00:00`, with or without a fraction or a zone after it.
    Second,
}

/// The shape of the dates of a SQLite license database: that of its first subscription
/// expiry (or, without one, expiry) date; keyhook's own when there is none or it is no date.
pub fn of_database(conn: &Connection) -> DateText {
    let sample = format!(
        "SELECT coalesce(SubscriptionExpiryDate, ExpiryDate) FROM {TABLE}
         WHERE coalesce(SubscriptionExpiryDate, ExpiryDate) IS NOT NULL LIMIT 1"
    );
    conn.query_row(&sample, [], |row| row.get::<_, String>(0))
        .ok()
        .and_then(|date| DateText::of(&date))
        .unwrap_or(DateText::ISO)
}

/// A stored date in any of the shapes [`DateText`] reads (`T` or a space, with or without
/// seconds or a fraction, or a day alone), as the wall-clock time it stands for. What follows
/// the seconds (a fraction, a zone) is left out.
pub fn parse(text: &str) -> Option<NaiveDateTime> {
    let shape = DateText::of(text)?;
    let day = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let time = match shape.precision {
        Precision::Day => return day.and_hms_opt(0, 0, 0),
        Precision::Minute => text.get(11..16)?.to_string() + ":00",
        Precision::Second => text.get(11..19)?.to_string(),
    };
    let time = chrono::NaiveTime::parse_from_str(&time, "%H:%M:%S").ok()?;
    Some(day.and_time(time))
}

impl DateText {
    /// keyhook's own: `2026-12-01T10:00:00`, as `keyhook db init` and `db demo` store dates.
    pub const ISO: DateText = DateText {
        separator: 'T',
        precision: Precision::Second,
    };

    /// The shape of `sample`, a stored date; `None` for text that is not one.
    pub fn of(sample: &str) -> Option<DateText> {
        let bytes = sample.as_bytes();
        let digits = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
        };
        let date = digits(0..4)
            && bytes.get(4) == Some(&b'-')
            && digits(5..7)
            && bytes.get(7) == Some(&b'-')
            && digits(8..10);
        if !date {
            return None;
        }
        let separator = match bytes.get(10) {
            None => {
                return Some(DateText {
                    separator: 'T',
                    precision: Precision::Day,
                });
            }
            Some(b'T') => 'T',
            Some(b' ') => ' ',
            Some(_) => return None,
        };
        if !(digits(11..13) && bytes.get(13) == Some(&b':') && digits(14..16)) {
            return None;
        }
        let precision = if bytes.get(16) == Some(&b':') {
            Precision::Second
        } else {
            Precision::Minute
        };
        Some(DateText {
            separator,
            precision,
        })
    }

    /// Whether dates of this shape and of `other` compare as text the way they compare as
    /// times (a minute-shaped date beside a second-shaped one does, but for the seconds).
    pub fn agrees_with(&self, other: &DateText) -> bool {
        match (self.precision, other.precision) {
            (Precision::Day, Precision::Day) => true,
            (Precision::Day, _) | (_, Precision::Day) => false,
            _ => self.separator == other.separator,
        }
    }

    /// The character between a date and its time; `None` for dates without a time.
    pub fn separator(&self) -> Option<char> {
        (self.precision != Precision::Day).then_some(self.separator)
    }

    /// How dates of this shape look, for a message: `2026-12-01 10:00:00`.
    pub fn example(&self) -> String {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|date| date.and_hms_opt(10, 0, 0))
            .expect("a valid date");
        self.format(&at)
    }

    /// `value` as text of this shape. A time the shape cannot hold (10:30 for a date-only
    /// shape, 10:30:15 for a minute shape) is written whole: `2026-12-01` sorts before
    /// `2026-12-01T10:30:00`, as the day's start does.
    pub fn format(&self, value: &NaiveDateTime) -> String {
        let date = value.format("%Y-%m-%d");
        let (hour, minute, second) = (value.hour(), value.minute(), value.second());
        match self.precision {
            Precision::Day if (hour, minute, second) == (0, 0, 0) => date.to_string(),
            Precision::Minute if second == 0 => {
                format!("{date}{}{hour:02}:{minute:02}", self.separator)
            }
            _ => format!("{date}{}{hour:02}:{minute:02}:{second:02}", self.separator),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DateText;
    use chrono::NaiveDateTime;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn the_shape_is_read_off_a_stored_date() {
        assert_eq!(DateText::of("2026-12-01T10:00:00"), Some(DateText::ISO));
        assert_eq!(
            DateText::of("2026-12-01T10:00:00.123Z"),
            Some(DateText::ISO)
        );
        for not_a_date in [
            "",
            "12/01/2026",
            "2026-12-01X10",
            "2026-12-01 10",
            "20261201",
        ] {
            assert_eq!(DateText::of(not_a_date), None, "{not_a_date}");
        }
        let space = DateText::of("2026-12-01 10:00:00.5").unwrap();
        assert_eq!(
            space.format(&at("2026-12-02T00:00:00")),
            "2026-12-02 00:00:00"
        );
        let day = DateText::of("2026-12-01").unwrap();
        assert_eq!(day.format(&at("2026-12-02T00:00:00")), "2026-12-02");
        assert_eq!(
            day.format(&at("2026-12-02T10:30:00")),
            "2026-12-02T10:30:00"
        );
        let minute = DateText::of("2026-12-01 10:00").unwrap();
        assert_eq!(
            minute.format(&at("2026-12-02T10:30:00")),
            "2026-12-02 10:30"
        );
        assert_eq!(
            minute.format(&at("2026-12-02T10:30:15")),
            "2026-12-02 10:30:15"
        );
        assert_eq!(space.example(), "2026-12-01 10:00:00");
    }

    /// The point of it all: a stored date and a bound value compare as text exactly as the
    /// times they stand for compare, on the day itself too.
    #[test]
    fn bound_values_compare_with_stored_dates_as_times_do() {
        let stored = [
            "2026-12-01",
            "2026-12-01 00:00",
            "2026-12-01 09:59",
            "2026-12-01 10:00",
            "2026-12-01 00:00:00",
            "2026-12-01 10:00:00",
            "2026-12-01 23:59:59",
            "2026-12-01T00:00:00",
            "2026-12-01T10:00:00",
            "2026-12-02T00:00:00",
        ];
        let bounds = [
            "2026-12-01T00:00:00",
            "2026-12-01T09:59:30",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:01",
            "2026-12-02T00:00:00",
        ];
        let as_time = |text: &str| {
            let padded = match text.len() {
                10 => format!("{text}T00:00:00"),
                16 => format!("{text}:00"),
                _ => text.to_string(),
            };
            at(&padded.replace(' ', "T"))
        };
        for value in stored {
            let shape = DateText::of(value).unwrap();
            for bound in bounds {
                let text = shape.format(&at(bound));
                assert_eq!(
                    value.cmp(text.as_str()),
                    as_time(value).cmp(&at(bound)),
                    "{value} against {bound} bound as {text}"
                );
            }
        }
    }

    #[test]
    fn stored_dates_of_every_shape_parse() {
        for (text, expected) in [
            ("2026-12-01T10:00:00", "2026-12-01T10:00:00"),
            ("2026-12-01 10:00:00", "2026-12-01T10:00:00"),
            ("2026-12-01 10:00:00.500", "2026-12-01T10:00:00"),
            ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00"),
            ("2026-12-01 10:00", "2026-12-01T10:00:00"),
            ("2026-12-01", "2026-12-01T00:00:00"),
        ] {
            assert_eq!(super::parse(text), Some(at(expected)), "{text}");
        }
        for not_a_date in ["2026-02-30", "2026-12-01 25:00:00", "tomorrow"] {
            assert_eq!(super::parse(not_a_date), None, "{not_a_date}");
        }
    }

    #[test]
    fn shapes_that_compare_alike_agree() {
        let iso = DateText::ISO;
        let space = DateText::of("2026-12-01 10:00:00").unwrap();
        let space_minutes = DateText::of("2026-12-01 10:00").unwrap();
        let day = DateText::of("2026-12-01").unwrap();
        assert!(iso.agrees_with(&DateText::of("2026-12-01T10:00").unwrap()));
        assert!(space.agrees_with(&space_minutes));
        assert!(!iso.agrees_with(&space));
        assert!(!iso.agrees_with(&day));
        assert!(day.agrees_with(&day));
    }
}

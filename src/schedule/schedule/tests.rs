use chrono::Datelike;
use std::str::FromStr;

use super::crontab::{MINUTE, has};
use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn zone(name: &str) -> Tz {
    name.parse().unwrap()
}

fn schedule(text: &str, at: Option<&str>, start: Option<&str>) -> Schedule {
    Schedule::parse(text, at, start).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// The next `count` slots after `after` as local times, checking on the way that
/// `latest_at_or_before` returns each slot at its instant and the one before a second earlier.
fn slots(schedule: &Schedule, zone: Tz, after: DateTime<Utc>, count: usize) -> Vec<String> {
    let mut found = Vec::new();
    let (mut at, mut previous) = (after, None);
    while found.len() < count {
        let Some(next) = schedule.next_after(at, zone) else {
            break;
        };
        assert!(next > at, "{next} is not after {at}");
        assert_eq!(schedule.latest_at_or_before(next, zone), Some(next));
        let before = schedule.latest_at_or_before(next - Duration::seconds(1), zone);
        match previous {
            Some(previous) => assert_eq!(before, Some(previous), "just before {next}"),
            None => assert!(before.is_none_or(|before| before <= after), "{before:?}"),
        }
        found.push(
            next.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string(),
        );
        (at, previous) = (next, Some(next));
    }
    found
}

type SlotCase<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a [&'a str],
);

fn check_slots(cases: &[SlotCase]) {
    for (text, at, start, name, after, expected) in cases {
        let schedule = schedule(text, *at, *start);
        let got = slots(&schedule, zone(name), utc(after), expected.len());
        assert_eq!(
            got, *expected,
            "`{text}` at={at:?} start={start:?} in {name} after {after}"
        );
    }
}

#[test]
fn crontab_lines_number_weekdays_like_vixie_cron() {
    // 2026-01-01 is a Thursday.
    let sundays: &[&str] = &["2026-01-04 08:00 +00:00", "2026-01-11 08:00 +00:00"];
    let weekdays: &[&str] = &[
        "2026-01-02 08:00 +00:00",
        "2026-01-05 08:00 +00:00",
        "2026-01-06 08:00 +00:00",
        "2026-01-07 08:00 +00:00",
        "2026-01-08 08:00 +00:00",
        "2026-01-09 08:00 +00:00",
        "2026-01-12 08:00 +00:00",
    ];
    let new_year = "2026-01-01T00:00:00Z";
    check_slots(&[
        ("0 8 * * 0", None, None, "UTC", new_year, sundays),
        ("0 8 * * 7", None, None, "UTC", new_year, sundays),
        ("0 8 * * SUN", None, None, "UTC", new_year, sundays),
        ("0 8 * * sun", None, None, "UTC", new_year, sundays),
        (
            "0 8 * * 1-5",
            None,
            None,
            "UTC",
            "2026-01-02T00:00:00Z",
            weekdays,
        ),
        (
            "0 8 * * MON-FRI",
            None,
            None,
            "UTC",
            "2026-01-02T00:00:00Z",
            weekdays,
        ),
        (
            "0 8 * * 5-7",
            None,
            None,
            "UTC",
            new_year,
            &[
                "2026-01-02 08:00 +00:00",
                "2026-01-03 08:00 +00:00",
                "2026-01-04 08:00 +00:00",
                "2026-01-09 08:00 +00:00",
            ],
        ),
        // Every other day from Sunday: Sunday, Tuesday, Thursday, Saturday.
        (
            "0 8 * * */2",
            None,
            None,
            "UTC",
            new_year,
            &[
                "2026-01-01 08:00 +00:00",
                "2026-01-03 08:00 +00:00",
                "2026-01-04 08:00 +00:00",
                "2026-01-06 08:00 +00:00",
                "2026-01-08 08:00 +00:00",
            ],
        ),
    ]);
}

#[test]
fn day_of_month_and_day_of_week_combine_like_vixie_cron() {
    check_slots(&[
        // Both restricted: either one.
        (
            "0 9 1 * MON",
            None,
            None,
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01 09:00 +00:00",
                "2026-01-05 09:00 +00:00",
                "2026-01-12 09:00 +00:00",
                "2026-01-19 09:00 +00:00",
                "2026-01-26 09:00 +00:00",
                "2026-02-01 09:00 +00:00",
                "2026-02-02 09:00 +00:00",
            ],
        ),
        // A field starting with `*` counts as unrestricted, so both must match: odd Mondays.
        (
            "0 9 */2 * MON",
            None,
            None,
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-05 09:00 +00:00",
                "2026-01-19 09:00 +00:00",
                "2026-02-09 09:00 +00:00",
                "2026-02-23 09:00 +00:00",
            ],
        ),
        // `1-31` does not start with `*`: Monday or any day, so every day.
        (
            "0 9 1-31 * MON",
            None,
            None,
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01 09:00 +00:00", "2026-01-02 09:00 +00:00"],
        ),
    ]);
}

#[test]
fn crontab_lines_and_shorthands_fire_when_expected() {
    let new_year = "2026-01-01T00:00:00Z";
    check_slots(&[
        (
            "@hourly",
            None,
            None,
            "UTC",
            "2026-01-01T10:20:00Z",
            &["2026-01-01 11:00 +00:00", "2026-01-01 12:00 +00:00"],
        ),
        (
            "@daily",
            None,
            None,
            "UTC",
            "2026-01-01T10:00:00Z",
            &["2026-01-02 00:00 +00:00", "2026-01-03 00:00 +00:00"],
        ),
        (
            "@MIDNIGHT",
            None,
            None,
            "UTC",
            "2026-01-01T10:00:00Z",
            &["2026-01-02 00:00 +00:00"],
        ),
        (
            "@weekly",
            None,
            None,
            "UTC",
            new_year,
            &["2026-01-04 00:00 +00:00", "2026-01-11 00:00 +00:00"],
        ),
        (
            "@monthly",
            None,
            None,
            "UTC",
            new_year,
            &["2026-02-01 00:00 +00:00", "2026-03-01 00:00 +00:00"],
        ),
        (
            "@yearly",
            None,
            None,
            "UTC",
            new_year,
            &["2027-01-01 00:00 +00:00", "2028-01-01 00:00 +00:00"],
        ),
        (
            "@annually",
            None,
            None,
            "UTC",
            new_year,
            &["2027-01-01 00:00 +00:00"],
        ),
        // Short months are skipped, not clamped.
        (
            "0 0 31 * *",
            None,
            None,
            "UTC",
            new_year,
            &[
                "2026-01-31 00:00 +00:00",
                "2026-03-31 00:00 +00:00",
                "2026-05-31 00:00 +00:00",
                "2026-07-31 00:00 +00:00",
                "2026-08-31 00:00 +00:00",
            ],
        ),
        (
            "0 12 29 2 *",
            None,
            None,
            "UTC",
            new_year,
            &["2028-02-29 12:00 +00:00", "2032-02-29 12:00 +00:00"],
        ),
        (
            "*/15 9-10 * * *",
            None,
            None,
            "UTC",
            "2026-01-01T10:40:00Z",
            &[
                "2026-01-01 10:45 +00:00",
                "2026-01-02 09:00 +00:00",
                "2026-01-02 09:15 +00:00",
            ],
        ),
        (
            "5/20 * * * *",
            None,
            None,
            "UTC",
            new_year,
            &[
                "2026-01-01 00:05 +00:00",
                "2026-01-01 00:25 +00:00",
                "2026-01-01 00:45 +00:00",
                "2026-01-01 01:05 +00:00",
            ],
        ),
        (
            "0,30 8 1,15 JAN,jul *",
            None,
            None,
            "UTC",
            new_year,
            &[
                "2026-01-01 08:00 +00:00",
                "2026-01-01 08:30 +00:00",
                "2026-01-15 08:00 +00:00",
                "2026-01-15 08:30 +00:00",
                "2026-07-01 08:00 +00:00",
            ],
        ),
        (
            "59 23 31 12 *",
            None,
            None,
            "Europe/Berlin",
            "2026-06-01T00:00:00Z",
            &["2026-12-31 23:59 +01:00", "2027-12-31 23:59 +01:00"],
        ),
    ]);
}

#[test]
fn every_forms_step_from_their_anchor() {
    check_slots(&[
        (
            "every 30 minutes",
            None,
            None,
            "UTC",
            "2026-01-01T10:10:00Z",
            &["2026-01-01 10:30 +00:00", "2026-01-01 11:00 +00:00"],
        ),
        (
            "Every 30 MIN",
            None,
            None,
            "America/New_York",
            "2026-01-15T15:10:00Z",
            &["2026-01-15 10:30 -05:00", "2026-01-15 11:00 -05:00"],
        ),
        (
            "every 6 hours",
            None,
            None,
            "UTC",
            "2026-01-01T01:00:00Z",
            &[
                "2026-01-01 06:00 +00:00",
                "2026-01-01 12:00 +00:00",
                "2026-01-01 18:00 +00:00",
                "2026-01-02 00:00 +00:00",
            ],
        ),
        (
            "every 6h",
            None,
            None,
            "America/New_York",
            "2026-01-15T06:00:00Z",
            &["2026-01-15 06:00 -05:00", "2026-01-15 12:00 -05:00"],
        ),
        // Aligned to standard time, so an hour later on the clock in summer.
        (
            "every 6 hours",
            None,
            None,
            "America/New_York",
            "2026-07-15T05:00:00Z",
            &["2026-07-15 07:00 -04:00", "2026-07-15 13:00 -04:00"],
        ),
        // Nepal was at +05:30 in 1970: slots still fall on the local hour and half hour.
        (
            "every 30 minutes",
            None,
            None,
            "Asia/Kathmandu",
            "2026-01-01T00:00:00Z",
            &["2026-01-01 06:00 +05:45", "2026-01-01 06:30 +05:45"],
        ),
        (
            "every hour",
            None,
            None,
            "Asia/Kolkata",
            "2026-01-01T00:00:00Z",
            &["2026-01-01 06:00 +05:30", "2026-01-01 07:00 +05:30"],
        ),
        (
            "every 90 minutes",
            None,
            Some("2027-01-01T08:00"),
            "UTC",
            "2026-12-01T00:00:00Z",
            &[
                "2027-01-01 08:00 +00:00",
                "2027-01-01 09:30 +00:00",
                "2027-01-01 11:00 +00:00",
            ],
        ),
        (
            "every 1 day",
            None,
            None,
            "UTC",
            "2026-01-30T12:00:00Z",
            &[
                "2026-01-31 00:00 +00:00",
                "2026-02-01 00:00 +00:00",
                "2026-02-02 00:00 +00:00",
            ],
        ),
        (
            "every day",
            Some("08:00"),
            None,
            "Europe/Berlin",
            "2026-01-30T12:00:00Z",
            &["2026-01-31 08:00 +01:00", "2026-02-01 08:00 +01:00"],
        ),
        // 2026-01-01 is an even number of days after 1970-01-01.
        (
            "every 2 days",
            None,
            None,
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-03 00:00 +00:00", "2026-01-05 00:00 +00:00"],
        ),
        (
            "every 2 days",
            None,
            Some("2027-01-01T08:00"),
            "UTC",
            "2026-06-01T00:00:00Z",
            &[
                "2027-01-01 08:00 +00:00",
                "2027-01-03 08:00 +00:00",
                "2027-01-05 08:00 +00:00",
            ],
        ),
        (
            "every 2 d",
            Some("08:00"),
            Some("2027-01-01"),
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2027-01-01 08:00 +00:00", "2027-01-03 08:00 +00:00"],
        ),
        (
            "every 3 days",
            Some("09:30"),
            Some("2026-02-27T09:30"),
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-02-27 09:30 +00:00", "2026-03-02 09:30 +00:00"],
        ),
    ]);
}

#[test]
fn fixed_times_run_once_across_clock_changes() {
    check_slots(&[
        // New York springs forward at 2026-03-08 02:00: 02:30 runs right after the jump.
        (
            "30 2 * * *",
            None,
            None,
            "America/New_York",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07 02:30 -05:00",
                "2026-03-08 03:00 -04:00",
                "2026-03-09 02:30 -04:00",
            ],
        ),
        (
            "every 1 day",
            Some("02:30"),
            None,
            "America/New_York",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07 02:30 -05:00",
                "2026-03-08 03:00 -04:00",
                "2026-03-09 02:30 -04:00",
            ],
        ),
        // Several skipped times still make one run.
        (
            "0,30 2 * * *",
            None,
            None,
            "America/New_York",
            "2026-03-08T00:00:00Z",
            &["2026-03-08 03:00 -04:00", "2026-03-09 02:00 -04:00"],
        ),
        // ...and falls back at 2026-11-01 02:00: 01:30 runs in the first pass only.
        (
            "30 1 * * *",
            None,
            None,
            "America/New_York",
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31 01:30 -04:00",
                "2026-11-01 01:30 -04:00",
                "2026-11-02 01:30 -05:00",
            ],
        ),
        (
            "every 1 day",
            Some("01:30"),
            None,
            "America/New_York",
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31 01:30 -04:00",
                "2026-11-01 01:30 -04:00",
                "2026-11-02 01:30 -05:00",
            ],
        ),
        // Berlin springs forward at 2026-03-29 02:00 and falls back at 2026-10-25 03:00.
        (
            "30 2 * * *",
            None,
            None,
            "Europe/Berlin",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28 02:30 +01:00",
                "2026-03-29 03:00 +02:00",
                "2026-03-30 02:30 +02:00",
            ],
        ),
        (
            "every day",
            Some("02:30"),
            None,
            "Europe/Berlin",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28 02:30 +01:00",
                "2026-03-29 03:00 +02:00",
                "2026-03-30 02:30 +02:00",
            ],
        ),
        (
            "30 2 * * *",
            None,
            None,
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            &[
                "2026-10-24 02:30 +02:00",
                "2026-10-25 02:30 +02:00",
                "2026-10-26 02:30 +01:00",
            ],
        ),
        (
            "every day",
            Some("02:30"),
            None,
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            &[
                "2026-10-24 02:30 +02:00",
                "2026-10-25 02:30 +02:00",
                "2026-10-26 02:30 +01:00",
            ],
        ),
        // No `*` in minute or hour: cron(8) adjusts it like any fixed time.
        (
            "0,30 0-23 * * *",
            None,
            None,
            "America/New_York",
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01 01:00 -04:00",
                "2026-11-01 01:30 -04:00",
                "2026-11-01 02:00 -05:00",
            ],
        ),
        (
            "0,30 0-23 * * *",
            None,
            None,
            "America/New_York",
            "2026-03-08T06:10:00Z",
            &[
                "2026-03-08 01:30 -05:00",
                "2026-03-08 03:00 -04:00",
                "2026-03-08 03:30 -04:00",
            ],
        ),
        // A start inside the gap, or in the repeated hour, is read like any fixed time.
        (
            "every 1 day",
            None,
            Some("2026-03-08T02:30"),
            "America/New_York",
            "2026-03-01T00:00:00Z",
            &["2026-03-08 03:00 -04:00", "2026-03-09 02:30 -04:00"],
        ),
        (
            "every 2 hours",
            None,
            Some("2026-11-01T01:30"),
            "America/New_York",
            "2026-11-01T00:00:00Z",
            &[
                "2026-11-01 01:30 -04:00",
                "2026-11-01 02:30 -05:00",
                "2026-11-01 04:30 -05:00",
            ],
        ),
    ]);
}

#[test]
fn wildcard_times_and_elapsed_steps_follow_real_time() {
    check_slots(&[
        (
            "30 * * * *",
            None,
            None,
            "America/New_York",
            "2026-11-01T04:00:00Z",
            &[
                "2026-11-01 00:30 -04:00",
                "2026-11-01 01:30 -04:00",
                "2026-11-01 01:30 -05:00",
                "2026-11-01 02:30 -05:00",
            ],
        ),
        (
            "30 * * * *",
            None,
            None,
            "America/New_York",
            "2026-03-08T05:00:00Z",
            &[
                "2026-03-08 00:30 -05:00",
                "2026-03-08 01:30 -05:00",
                "2026-03-08 03:30 -04:00",
            ],
        ),
        (
            "@hourly",
            None,
            None,
            "America/New_York",
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01 01:00 -04:00",
                "2026-11-01 01:00 -05:00",
                "2026-11-01 02:00 -05:00",
            ],
        ),
        (
            "*/20 1 * * *",
            None,
            None,
            "America/New_York",
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01 01:00 -04:00",
                "2026-11-01 01:20 -04:00",
                "2026-11-01 01:40 -04:00",
                "2026-11-01 01:00 -05:00",
                "2026-11-01 01:20 -05:00",
                "2026-11-01 01:40 -05:00",
                "2026-11-02 01:00 -05:00",
            ],
        ),
        (
            "30 * * * *",
            None,
            None,
            "Europe/Berlin",
            "2026-10-25T00:00:00Z",
            &[
                "2026-10-25 02:30 +02:00",
                "2026-10-25 02:30 +01:00",
                "2026-10-25 03:30 +01:00",
            ],
        ),
        (
            "every 30 minutes",
            None,
            None,
            "America/New_York",
            "2026-03-08T06:10:00Z",
            &[
                "2026-03-08 01:30 -05:00",
                "2026-03-08 03:00 -04:00",
                "2026-03-08 03:30 -04:00",
            ],
        ),
        (
            "every 30 minutes",
            None,
            None,
            "America/New_York",
            "2026-11-01T05:10:00Z",
            &[
                "2026-11-01 01:30 -04:00",
                "2026-11-01 01:00 -05:00",
                "2026-11-01 01:30 -05:00",
                "2026-11-01 02:00 -05:00",
            ],
        ),
        (
            "every 30 minutes",
            None,
            None,
            "Europe/Berlin",
            "2026-03-29T00:10:00Z",
            &["2026-03-29 01:30 +01:00", "2026-03-29 03:00 +02:00"],
        ),
        (
            "every 30 minutes",
            None,
            None,
            "Europe/Berlin",
            "2026-10-25T00:10:00Z",
            &[
                "2026-10-25 02:30 +02:00",
                "2026-10-25 02:00 +01:00",
                "2026-10-25 02:30 +01:00",
                "2026-10-25 03:00 +01:00",
            ],
        ),
    ]);
}

#[test]
fn every_30_minutes_neither_doubles_nor_drops_a_slot_on_change_days() {
    let every = schedule("every 30 minutes", None, None);
    let days = [
        ("America/New_York", "2026-03-08T00:00:00Z"),
        ("America/New_York", "2026-11-01T00:00:00Z"),
        ("Europe/Berlin", "2026-03-29T00:00:00Z"),
        ("Europe/Berlin", "2026-10-25T00:00:00Z"),
    ];
    for (name, day) in days {
        let (zone, start) = (zone(name), utc(day));
        let mut at = every.latest_at_or_before(start, zone).unwrap();
        for _ in 0..48 {
            let next = every.next_after(at, zone).unwrap();
            assert_eq!(next - at, Duration::minutes(30), "{name} after {at}");
            at = next;
        }
        assert_eq!(at, start + Duration::hours(24), "{name}");
    }
}

#[test]
fn latest_at_or_before_picks_the_right_slot() {
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, Option<&'a str>);
    let cases: [Case; 12] = [
        (
            "every 2 days",
            Some("2027-01-01T08:00"),
            "UTC",
            "2026-12-31T23:00:00Z",
            None,
        ),
        (
            "every 2 days",
            Some("2027-01-01T08:00"),
            "UTC",
            "2027-01-01T07:59:59Z",
            None,
        ),
        (
            "every 2 days",
            Some("2027-01-01T08:00"),
            "UTC",
            "2027-01-01T08:00:00Z",
            Some("2027-01-01T08:00:00Z"),
        ),
        (
            "every 2 days",
            Some("2027-01-01T08:00"),
            "UTC",
            "2027-01-02T12:00:00Z",
            Some("2027-01-01T08:00:00Z"),
        ),
        (
            "every 30 minutes",
            Some("2027-01-01T08:00"),
            "UTC",
            "2027-01-01T07:59:00Z",
            None,
        ),
        (
            "every 30 minutes",
            None,
            "UTC",
            "2026-05-05T10:29:59.9Z",
            Some("2026-05-05T10:00:00Z"),
        ),
        (
            "0 12 29 2 *",
            None,
            "UTC",
            "2027-06-01T00:00:00Z",
            Some("2024-02-29T12:00:00Z"),
        ),
        (
            "0 8 * * MON-FRI",
            None,
            "UTC",
            "2026-11-29T23:00:00Z",
            Some("2026-11-27T08:00:00Z"),
        ),
        // In New York's repeated hour (01:10 EST = 06:10Z) the fixed 01:30 already ran (EDT).
        (
            "30 1 * * *",
            None,
            "America/New_York",
            "2026-11-01T06:10:00Z",
            Some("2026-11-01T05:30:00Z"),
        ),
        (
            "30 1 * * *",
            None,
            "America/New_York",
            "2026-11-01T06:40:00Z",
            Some("2026-11-01T05:30:00Z"),
        ),
        (
            "30 * * * *",
            None,
            "America/New_York",
            "2026-11-01T06:10:00Z",
            Some("2026-11-01T05:30:00Z"),
        ),
        (
            "30 * * * *",
            None,
            "America/New_York",
            "2026-11-01T06:40:00Z",
            Some("2026-11-01T06:30:00Z"),
        ),
    ];
    for (text, start, name, now, expected) in cases {
        let latest = schedule(text, None, start).latest_at_or_before(utc(now), zone(name));
        assert_eq!(
            latest,
            expected.map(utc),
            "`{text}` start={start:?} at {now}"
        );
    }
}

#[test]
fn period_is_the_step_or_the_shortest_crontab_gap() {
    let cases = [
        ("every 30 minutes", Duration::minutes(30)),
        ("every 6 hours", Duration::hours(6)),
        ("every day", Duration::days(1)),
        ("every 2 days", Duration::days(2)),
        ("0 8 * * MON-FRI", Duration::days(1)),
        ("*/15 * * * *", Duration::minutes(15)),
        ("0,30 8 * * *", Duration::minutes(30)),
        ("@hourly", Duration::hours(1)),
        ("@daily", Duration::days(1)),
        ("@weekly", Duration::days(7)),
        ("@monthly", Duration::days(28)),
        ("@yearly", Duration::days(365)),
        ("0 12 29 2 *", Duration::days(1461)),
        ("0 9 1 * MON", Duration::days(1)),
    ];
    for (text, expected) in cases {
        assert_eq!(schedule(text, None, None).period(), expected, "{text}");
    }
}

#[test]
fn describe_reads_as_words() {
    let start = Some("2027-01-01T08:00");
    let cases = [
        ("every 30 minutes", None, None, "every 30 minutes"),
        ("every 1 minute", None, None, "every minute"),
        ("EVERY 1 HOUR", None, None, "every hour"),
        ("every 6h", None, None, "every 6 hours"),
        ("every day", None, None, "every day at 00:00"),
        ("every 1 day", Some("08:00"), None, "every day at 08:00"),
        (
            "every 2 days",
            None,
            start,
            "every 2 days at 08:00, from 2027-01-01",
        ),
        (
            "every 90 min",
            None,
            start,
            "every 90 minutes, from 2027-01-01 08:00",
        ),
        ("0 8 * * *", None, None, "every day at 08:00"),
        (
            "0 8 * * MON-FRI",
            None,
            None,
            "at 08:00 on Monday through Friday",
        ),
        (
            "0 8 * * 1-5",
            None,
            None,
            "at 08:00 on Monday through Friday",
        ),
        (
            "30 18 * * 5-7",
            None,
            None,
            "at 18:30 on Friday through Sunday",
        ),
        ("0 8 * * 6,0", None, None, "at 08:00 on Saturday and Sunday"),
        (
            "0 8 * * 1,3,5",
            None,
            None,
            "at 08:00 on Monday, Wednesday and Friday",
        ),
        ("0 8 * * 7", None, None, "at 08:00 on Sunday"),
        ("15 * * * *", None, None, "every hour at :15"),
        ("@hourly", None, None, "every hour at :00"),
        ("@daily", None, None, "every day at 00:00"),
        ("@weekly", None, None, "at 00:00 on Sunday"),
        ("@monthly", None, None, "at 00:00 on day 1 of every month"),
        ("@yearly", None, None, "at 00:00 on January 1"),
        ("0 8 1-31 * MON", None, None, "every day at 08:00"),
        ("0 9 1 * MON", None, None, "cron `0 9 1 * MON`"),
        ("*/15 * * * *", None, None, "cron `*/15 * * * *`"),
    ];
    for (text, at, start, expected) in cases {
        assert_eq!(schedule(text, at, start).describe(), expected, "{text}");
    }
}

#[test]
fn bad_schedules_say_what_is_wrong_and_what_is_accepted() {
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str]);
    let not_a_schedule: &[&str] = &[
        "is not a schedule",
        "every N minutes|hours|days",
        "0 8 * * MON-FRI",
    ];
    let cases: &[Case] = &[
        (
            "every 0 days",
            None,
            None,
            &["`every 0 days`", "at least 1"],
        ),
        ("every 0 minutes", None, None, &["at least 1"]),
        (
            "every 53000000 days",
            None,
            None,
            &["`every 53000000 days`", "at most 100 years"],
        ),
        ("every 36526 days", None, None, &["at most 100 years"]),
        ("every 876601 hours", None, None, &["at most 100 years"]),
        ("every 3 fortnights", None, None, not_a_schedule),
        ("every 1.5 hours", None, None, not_a_schedule),
        ("every", None, None, not_a_schedule),
        ("every 99999999999 days", None, None, not_a_schedule),
        ("daily", None, None, not_a_schedule),
        ("", None, None, not_a_schedule),
        (
            "every 6 hours",
            Some("08:00"),
            None,
            &["`at`", "every N days", "`every 6 hours`"],
        ),
        (
            "every 30 minutes",
            Some("08:00"),
            None,
            &["`at`", "`every 30 minutes`"],
        ),
        (
            "0 8 * * *",
            Some("08:00"),
            None,
            &["`at`", "crontab line `0 8 * * *`"],
        ),
        ("@daily", None, Some("2027-01-01"), &["`start`", "`@daily`"]),
        (
            "every 1 day",
            Some("25:00"),
            None,
            &["`at = \"25:00\"`", "HH:MM"],
        ),
        ("every 1 day", Some("8am"), None, &["`at = \"8am\"`"]),
        (
            "every 1 day",
            None,
            Some("next week"),
            &["`start = \"next week\"`", "YYYY-MM-DDTHH:MM"],
        ),
        (
            "every 1 hour",
            None,
            Some("2027-13-01"),
            &["`start = \"2027-13-01\"`"],
        ),
        (
            "every 1 day",
            Some("09:00"),
            Some("2027-01-01T08:00"),
            &["disagrees", "09:00", "2027-01-01T08:00"],
        ),
        (
            "61 * * * *",
            None,
            None,
            &["`61 * * * *`: minute `61` is not allowed", "0-59"],
        ),
        ("* 24 * * *", None, None, &["hour `24`", "0-23"]),
        ("* * 0 * *", None, None, &["day of month `0`", "1-31"]),
        ("* * 32 * *", None, None, &["day of month `32`"]),
        ("* * * 13 *", None, None, &["month `13`", "JAN-DEC"]),
        ("0 8 * FOO *", None, None, &["month `FOO`"]),
        (
            "* * * * 8",
            None,
            None,
            &["day of week `8`", "0 and 7 are Sunday"],
        ),
        (
            "0 8 * * MONDAY",
            None,
            None,
            &["day of week `MONDAY`", "SUN-SAT"],
        ),
        ("*/0 * * * *", None, None, &["minute `*/0` has a bad step"]),
        ("*/x * * * *", None, None, &["minute `*/x` has a bad step"]),
        ("5-1 * * * *", None, None, &["minute `5-1` runs backwards"]),
        (
            "0 8 * * FRI-MON",
            None,
            None,
            &["day of week `FRI-MON` runs backwards"],
        ),
        (
            "1,,2 * * * *",
            None,
            None,
            &["minute `1,,2` is not allowed"],
        ),
        ("-5 * * * *", None, None, &["minute `-5` is not allowed"]),
        ("@reboot", None, None, &["`@reboot` is not supported"]),
        (
            "@often",
            None,
            None,
            &["`@often` is not a schedule", "@hourly"],
        ),
        (
            "0 0 8 * * *",
            None,
            None,
            &["`0 0 8 * * *` has 6 fields", "5-field"],
        ),
        ("0 0 8 * * * 2027", None, None, &["has 7 fields", "5-field"]),
        ("0 8 * *", None, None, &["has 4 fields"]),
        ("0 0 30 2 *", None, None, &["`0 0 30 2 *` never runs"]),
        ("0 0 31 4,6,9,11 *", None, None, &["never runs"]),
    ];
    for (text, at, start, expected) in cases {
        let error = Schedule::parse(text, *at, *start).unwrap_err().to_string();
        for part in *expected {
            assert!(error.contains(part), "`{text}`: {error:?} lacks {part:?}");
        }
    }
}

/// Every slot in `[from, to)` by brute force: a minute-by-minute walk of real time that
/// applies cron(8)'s rules directly.
fn brute_force(line: &str, zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let Kind::Cron(crontab) = schedule(line, None, None).0 else {
        panic!("{line} is not a crontab line");
    };
    let matches = |local: NaiveDateTime| {
        let time = has(crontab.hours, local.hour()) && has(crontab.minutes, local.minute());
        time && has(crontab.months, local.month()) && crontab.day_matches(local.date())
    };
    let local = |at: DateTime<Utc>| at.with_timezone(&zone).naive_local();
    let mut found = Vec::new();
    let mut at = from;
    while at < to {
        let (now, before) = (local(at), local(at - MINUTE));
        let skipped = (1..)
            .map(|minutes| before + Duration::minutes(minutes))
            .take_while(|skipped| *skipped < now)
            .any(matches);
        let first_pass = resolve_local(now, zone).is_some_and(|first| first.to_utc() == at);
        let hit = match crontab.real_time {
            true => matches(now),
            false => (matches(now) && first_pass) || skipped,
        };
        if hit {
            found.push(at);
        }
        at += MINUTE;
    }
    found
}

#[test]
fn crontab_search_agrees_with_a_brute_force_walk_around_clock_changes() {
    let lines = [
        "30 2 * * *",
        "0,30 2 * * *",
        "30 1 * * *",
        "15 2,3 * * *",
        "0 2 * * 0",
        "*/20 1 * * *",
        "30 * * * *",
        "*/7 * * * *",
        "0,30 0-23 * * *",
        "45 1-3 * * SUN",
    ];
    let changes = [
        ("America/New_York", "2026-03-07T00:00:00Z"),
        ("America/New_York", "2026-10-31T00:00:00Z"),
        ("Europe/Berlin", "2026-03-28T00:00:00Z"),
        ("Europe/Berlin", "2026-10-24T00:00:00Z"),
        // Lord Howe Island moves its clocks by half an hour.
        ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
        ("Australia/Lord_Howe", "2026-10-03T00:00:00Z"),
    ];
    for line in lines {
        let schedule = schedule(line, None, None);
        for (name, from) in changes {
            let (zone, from) = (zone(name), utc(from));
            let to = from + Duration::days(3);
            let expected = brute_force(line, zone, from, to);
            assert!(
                !expected.is_empty(),
                "`{line}` in {name}: nothing to compare"
            );
            let mut got = Vec::new();
            let mut at = from - Duration::seconds(1);
            while let Some(next) = schedule.next_after(at, zone).filter(|next| *next < to) {
                assert_eq!(
                    schedule.latest_at_or_before(next, zone),
                    Some(next),
                    "`{line}` {name}"
                );
                got.push(next);
                at = next;
            }
            assert_eq!(got, expected, "`{line}` in {name} from {from}");
        }
    }
}

/// Where the `cron` crate is right (in UTC, with its own weekday numbers, and with an OR of
/// day fields written as two lines), it agrees with this module.
#[test]
fn crontab_search_agrees_with_the_cron_crate_in_utc() {
    let cases: [(&str, &[&str]); 11] = [
        ("0 8 * * MON-FRI", &["0 0 8 * * MON-FRI"]),
        ("0 8 * * 1-5", &["0 0 8 * * 2-6"]),
        ("0 8 * * 0", &["0 0 8 * * 1"]),
        ("0 8 * * */2", &["0 0 8 * * */2"]),
        ("*/15 9-17 * * *", &["0 */15 9-17 * * *"]),
        ("0 0 31 * *", &["0 0 0 31 * *"]),
        ("0 12 29 2 *", &["0 0 12 29 2 *"]),
        ("0,30 8 1,15 JAN,JUL *", &["0 0,30 8 1,15 JAN,JUL *"]),
        ("5/20 */3 * * *", &["0 5/20 */3 * * *"]),
        ("@weekly", &["0 0 0 * * SUN"]),
        ("0 9 1 * MON", &["0 0 9 1 * *", "0 0 9 * * MON"]),
    ];
    let from = utc("2026-01-01T00:00:00Z");
    for (line, crate_lines) in cases {
        let mut expected: Vec<DateTime<Utc>> = crate_lines
            .iter()
            .flat_map(|crate_line| {
                let crate_schedule = cron::Schedule::from_str(crate_line).unwrap();
                crate_schedule.after(&from).take(60).collect::<Vec<_>>()
            })
            .collect();
        expected.sort();
        expected.dedup();
        expected.truncate(60);
        let schedule = schedule(line, None, None);
        let mut got = Vec::new();
        let mut at = from;
        while got.len() < expected.len() {
            at = schedule.next_after(at, Tz::UTC).unwrap();
            got.push(at);
        }
        assert_eq!(got, expected, "`{line}`");
    }
}

#[test]
fn an_error_names_the_key_it_is_about() {
    let cases: [(&str, Option<&str>, Option<&str>, &str); 6] = [
        ("every 1 day", Some("25:00"), None, "at"),
        ("every 6 hours", Some("08:00"), None, "at"),
        ("every 1 day", Some("09:00"), Some("2027-01-01T08:00"), "at"),
        ("every 1 day", None, Some("yesterday"), "start"),
        ("@daily", None, Some("2027-01-01"), "start"),
        ("every 0 days", None, None, "schedule"),
    ];
    for (text, at, start, field) in cases {
        let error = Schedule::parse(text, at, start).unwrap_err();
        assert_eq!(error.field(), field, "{text} {at:?} {start:?}: {error}");
    }
}

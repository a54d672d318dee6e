use super::*;

fn context(now: &str, zone: &str) -> Context {
    Context {
        now: clock::parse_wall_clock(now).unwrap(),
        zone: zone.parse().unwrap(),
        last_run: None,
    }
}

fn expand(sql: &str, context: &Context) -> Vec<String> {
    let template = parse(sql).unwrap();
    template
        .values(context)
        .unwrap()
        .iter()
        .map(|value| value.format(DATE_FORMAT).to_string())
        .collect()
}

#[test]
fn placeholder_values_table() {
    // (now, zone, placeholder, expected)
    let table = [
        // QLM's documented values.
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[today_start]",
            "2026-11-23T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[today_end]",
            "2026-11-23T23:59:59",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[yesterday_start]",
            "2026-11-22T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[yesterday_end]",
            "2026-11-22T23:59:59",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[this_month_start]",
            "2026-11-01T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[this_month_end]",
            "2026-11-30T23:59:59",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[last_month_start]",
            "2026-10-01T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[last_month_end]",
            "2026-10-31T23:59:59",
        ),
        (
            "2026-11-23T10:15:30.250",
            "UTC",
            "[now]",
            "2026-11-23T10:15:30",
        ),
        // Arithmetic, units, spaces, case.
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[today_start+30]",
            "2026-12-23T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[today_start+5d]",
            "2026-11-28T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[today_start - 30]",
            "2026-10-24T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[TODAY_START+1]",
            "2026-11-24T00:00:01",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[Today_End - 1 d]",
            "2026-11-22T23:59:59",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[now-2h]",
            "2026-11-23T08:15:30",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[now+90m]",
            "2026-11-23T11:45:30",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[now-45s]",
            "2026-11-23T10:14:45",
        ),
        (
            "2026-11-23T10:15:30",
            "UTC",
            "[this_month_start-3M]",
            "2026-08-01T00:00:01",
        ),
        // Month ends: calendar arithmetic clamps to the last day, as .NET's AddMonths does.
        (
            "2027-01-31T12:00:00",
            "UTC",
            "[today_start+1M]",
            "2027-02-28T00:00:01",
        ),
        (
            "2027-03-31T12:00:00",
            "UTC",
            "[today_end-1M]",
            "2027-02-28T23:59:59",
        ),
        (
            "2027-01-31T12:00:00",
            "UTC",
            "[this_month_end]",
            "2027-01-31T23:59:59",
        ),
        (
            "2027-02-10T12:00:00",
            "UTC",
            "[this_month_end]",
            "2027-02-28T23:59:59",
        ),
        (
            "2027-03-01T00:30:00",
            "UTC",
            "[yesterday_end]",
            "2027-02-28T23:59:59",
        ),
        (
            "2027-03-15T00:30:00",
            "UTC",
            "[last_month_end]",
            "2027-02-28T23:59:59",
        ),
        // Year end.
        (
            "2026-12-31T23:00:00",
            "UTC",
            "[today_start+1]",
            "2027-01-01T00:00:01",
        ),
        (
            "2027-01-01T08:00:00",
            "UTC",
            "[yesterday_start]",
            "2026-12-31T00:00:01",
        ),
        (
            "2027-01-15T08:00:00",
            "UTC",
            "[last_month_start]",
            "2026-12-01T00:00:01",
        ),
        (
            "2026-12-05T08:00:00",
            "UTC",
            "[this_month_end]",
            "2026-12-31T23:59:59",
        ),
        // Leap day.
        (
            "2028-02-29T09:00:00",
            "UTC",
            "[today_start]",
            "2028-02-29T00:00:01",
        ),
        (
            "2028-02-29T09:00:00",
            "UTC",
            "[today_start+1]",
            "2028-03-01T00:00:01",
        ),
        (
            "2028-02-29T09:00:00",
            "UTC",
            "[today_start+12M]",
            "2029-02-28T00:00:01",
        ),
        (
            "2028-03-01T09:00:00",
            "UTC",
            "[yesterday_end]",
            "2028-02-29T23:59:59",
        ),
        (
            "2028-02-10T09:00:00",
            "UTC",
            "[this_month_end]",
            "2028-02-29T23:59:59",
        ),
        (
            "2028-03-29T09:00:00",
            "UTC",
            "[today_start-1M]",
            "2028-02-29T00:00:01",
        ),
        // DST days: days keep the wall clock; hours are elapsed time.
        // Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00.
        (
            "2026-03-29T03:30:00",
            "Europe/Berlin",
            "[now-2h]",
            "2026-03-29T00:30:00",
        ),
        (
            "2026-03-29T03:30:00",
            "Europe/Berlin",
            "[today_start+1]",
            "2026-03-30T00:00:01",
        ),
        (
            "2026-03-28T12:00:00",
            "Europe/Berlin",
            "[now+24h]",
            "2026-03-29T13:00:00",
        ),
        (
            "2026-03-28T12:00:00",
            "Europe/Berlin",
            "[now+1d]",
            "2026-03-29T12:00:00",
        ),
        // Europe/Berlin falls back 2026-10-25 03:00 -> 02:00.
        (
            "2026-10-25T12:00:00",
            "Europe/Berlin",
            "[now-12h]",
            "2026-10-25T01:00:00",
        ),
        (
            "2026-10-24T12:00:00",
            "Europe/Berlin",
            "[now+24h]",
            "2026-10-25T11:00:00",
        ),
        // America/New_York springs forward 2026-03-08, falls back 2026-11-01.
        (
            "2026-03-08T05:00:00",
            "America/New_York",
            "[now-4h]",
            "2026-03-08T00:00:00",
        ),
        (
            "2026-11-01T05:00:00",
            "America/New_York",
            "[today_start+4h]",
            "2026-11-01T03:00:01",
        ),
        (
            "2026-11-01T05:00:00",
            "America/New_York",
            "[yesterday_start]",
            "2026-10-31T00:00:01",
        ),
    ];
    for (now, zone, placeholder, expected) in table {
        let values = expand(&format!("x > {placeholder}"), &context(now, zone));
        assert_eq!(values, [expected], "{placeholder} at {now} in {zone}");
    }
}

#[test]
fn placeholders_become_numbered_parameters() {
    let template = parse(
        "SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]",
    )
    .unwrap();
    assert_eq!(
        template.sql,
        "SubscriptionExpiryDate > ?1 And SubscriptionExpiryDate < ?2"
    );
    assert_eq!(template.placeholders.len(), 2);
    assert_eq!(template.placeholders[1].offset, 30);
}

#[test]
fn literals_identifiers_and_comments_are_left_alone() {
    let sql = "Comment = '[today_start] it''s [x]' And \"[now]\" = 1 -- [nope]\n\
               And [Email] <> '' /* [later] */ And ExpiryDate < [now]";
    let template = parse(sql).unwrap();
    assert_eq!(
        template.sql,
        "Comment = '[today_start] it''s [x]' And \"[now]\" = 1 -- [nope]\n\
         And [Email] <> '' /* [later] */ And ExpiryDate < ?1"
    );
    assert_eq!(template.placeholders.len(), 1);
    assert_eq!(
        (
            template.placeholders[0].line,
            template.placeholders[0].column
        ),
        (2, 50)
    );
}

#[test]
fn errors_name_the_placeholder_and_its_position() {
    let cases = [
        (
            "x > [todya_start]",
            "unknown placeholder `[todya_start]` at line 1, column 5",
        ),
        (
            "x > [today_start+]",
            "malformed placeholder `[today_start+]` at line 1, column 5",
        ),
        (
            "x > [today_start*2]",
            "malformed placeholder `[today_start*2]`",
        ),
        ("x > [now+2w]", "malformed placeholder `[now+2w]`"),
        (
            "x >\n  [today_start",
            "`[` at line 2, column 3 is never closed",
        ),
        ("x > []", "unknown placeholder `[]`"),
    ];
    for (sql, expected) in cases {
        let error = parse(sql).unwrap_err().to_string();
        assert!(error.contains(expected), "{sql}: {error}");
    }
}

#[test]
fn last_run_needs_a_task() {
    let template = parse("x > [date]").unwrap();
    let mut context = context("2026-11-23T10:00:00", "UTC");
    let error = template.values(&context).unwrap_err();
    assert!(matches!(error, MacroError::NoLastRun { .. }));
    context.last_run = clock::parse_wall_clock("2026-11-22T08:00:00");
    let values = template.values(&context).unwrap();
    assert_eq!(
        values[0].format(DATE_FORMAT).to_string(),
        "2026-11-22T08:00:00"
    );
}

#[test]
fn out_of_range_offsets_are_errors_not_panics() {
    let template = parse("x > [now+99999999999d]").unwrap();
    let error = template.values(&context("2026-11-23T10:00:00", "UTC"));
    assert!(matches!(error, Err(MacroError::OutOfRange { .. })));
    let template = parse("x > [now+99999999999999h]").unwrap();
    assert!(
        template
            .values(&context("2026-11-23T10:00:00", "UTC"))
            .is_err()
    );
}

#[test]
fn a_value_past_year_9999_or_before_year_0_is_out_of_range() {
    // chrono reaches these, but their text (`+10240-08-13T...`, `-0164-...`) sorts before
    // every real date.
    for sql in [
        "x > [now+3000000d]",
        "x > [today_start+999999M]",
        "x > [now-800000d]",
        "x > [now+70000000h]",
    ] {
        let error = parse(sql)
            .unwrap()
            .values(&context("2026-11-23T10:00:00", "UTC"));
        assert!(
            matches!(error, Err(MacroError::OutOfRange { .. })),
            "{sql}: {error:?}"
        );
    }
    // The calendar's last and first seconds still work.
    let values = parse("x > [today_end+2912116d] AND x < [today_start-739942d]")
        .unwrap()
        .values(&context("2026-11-23T10:00:00", "UTC"))
        .unwrap();
    assert_eq!(
        values[0].format(DATE_FORMAT).to_string(),
        "9999-12-31T23:59:59"
    );
    assert_eq!(
        values[1].format(DATE_FORMAT).to_string(),
        "0001-01-01T00:00:01"
    );
}

#[test]
fn a_search_is_one_condition_with_no_parameter_of_its_own() {
    for (sql, says) in [
        (
            "1=1) LIMIT 5 /*",
            "`)` at line 1, column 4 closes a parenthesis",
        ),
        (
            "ID > 0) OR (1=1",
            "`)` at line 1, column 7 closes a parenthesis",
        ),
        (
            "(ID > 0\nAND Email IS NULL",
            "`(` at line 1, column 1 is never closed",
        ),
        (
            "ID > 0 /* no end",
            "`/*` at line 1, column 8 is never closed by `*/`",
        ),
        ("ID > 0 /*/", "`/*` at line 1, column 8 is never closed"),
        ("ID > 0; DELETE FROM LicenseKeys", "`;` at line 1, column 7"),
        (
            "SubscriptionExpiryDate < ?2",
            "`?2` at line 1, column 26 is an SQL parameter",
        ),
        ("Email = ?", "`?` at line 1, column 9 is an SQL parameter"),
        ("Email = :who", "`:who` at line 1, column 9"),
        ("Email = @who", "`@who`"),
        ("Email = $who", "`$who`"),
        ("Email = :1", "`:1`"),
    ] {
        let error = parse(sql).unwrap_err().to_string();
        assert!(error.contains(says), "{sql}: {error}");
    }
    // Inside strings, quoted names and comments, and in names, they are text.
    for sql in [
        "Email = 'a;b?c:d@e$f(' AND \"odd)name\" = 1 -- ) ; ?",
        "ID > 0 /* ( ; ? */ AND (ID < 5 OR (ID = 7))",
        "a$b = 1 AND x::date > [today_start]",
        "[Email] = 'x'",
    ] {
        assert!(parse(sql).is_ok(), "{sql}: {:?}", parse(sql));
    }
}

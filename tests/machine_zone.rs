//! The machine's zone comes from `TZ`: a value that names no zone is said on stderr, not
//! silently read as UTC (where "today" can be another day).

use crate::support::{Test, stderr, stdout};

fn dry_run_with_tz(test: &Test, tz: &str, extra: &[&str]) -> std::process::Output {
    test.keyhook(["dry-run", "all"].iter().chain(extra))
        .env_remove("KEYHOOK_TIMEZONE")
        .env("TZ", tz)
        .output()
        .unwrap()
}

#[test]
fn a_tz_that_names_no_zone_is_warned_about() {
    let test = Test::new().search("all", "1 = 1");
    for tz in [
        "Mars/Olympus",
        ":Europe/Pariss",
        "/usr/share/zoneinfo/No/Where",
    ] {
        let output = dry_run_with_tz(&test, tz, &[]);
        assert!(output.status.success(), "{tz}: {}", stderr(&output));
        let expected = format!("warning: TZ=`{tz}` names no time zone keyhook knows; using ");
        assert!(
            stderr(&output).contains(&expected),
            "{tz}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("--timezone"),
            "{}",
            stderr(&output)
        );
        assert!(!stdout(&output).contains("warning"), "stdout stays clean");
    }
}

#[test]
fn zones_that_are_known_or_not_used_are_not_warned_about() {
    let test = Test::new().search("all", "1 = 1");
    let cases: [(&str, &[&str], &str); 4] = [
        ("Europe/Paris", &[], "(Europe/Paris)"),
        ("/usr/share/zoneinfo/Asia/Tokyo", &[], "(Asia/Tokyo)"),
        (":America/New_York", &[], "(America/New_York)"),
        (
            "Mars/Olympus",
            &["--timezone", "Asia/Tokyo"],
            "(Asia/Tokyo)",
        ),
    ];
    for (tz, extra, shown) in cases {
        let output = dry_run_with_tz(&test, tz, extra);
        assert!(output.status.success(), "{tz}: {}", stderr(&output));
        assert_eq!(stderr(&output), "", "{tz}");
        assert!(stdout(&output).contains(shown), "{tz}: {}", stdout(&output));
    }
    // A zone file, as `TZ=:/etc/localtime` names one: the zone it links to, without a word.
    let link = test.path("localtime");
    std::os::unix::fs::symlink("/usr/share/zoneinfo/Asia/Tokyo", &link).unwrap();
    let output = dry_run_with_tz(&test, &format!(":{}", link.display()), &[]);
    assert_eq!(stderr(&output), "");
    assert!(
        stdout(&output).contains("(Asia/Tokyo)"),
        "{}",
        stdout(&output)
    );
    let output = dry_run_with_tz(&test, ":/etc/localtime", &[]);
    assert!(output.status.success());
    assert_eq!(stderr(&output), "", "the system's own zone");
    let test = test.write("keyhook.toml", "timezone = \"Asia/Tokyo\"\n");
    let output = dry_run_with_tz(&test, "Mars/Olympus", &[]);
    assert_eq!(stderr(&output), "");
    assert!(stdout(&output).contains("(Asia/Tokyo)"));
}

//! Time zones: a named IANA zone, or the machine's local zone as QLM's agent uses.

use chrono_tz::Tz;

/// A zone name that is not an IANA zone keyhook knows, as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time zone: use an IANA name such as UTC or Europe/Paris")]
pub struct UnknownZone(pub String);

/// Parses an IANA zone name such as `UTC` or `Europe/Paris`.
pub fn parse(name: &str) -> Result<Tz, UnknownZone> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| UnknownZone(name.to_string()))
}

/// The machine's zone: `$TZ` when it names a zone, else the system setting, else UTC.
pub fn local() -> Tz {
    local_checked().0
}

/// The machine's zone, with a warning when `$TZ` or the system names a zone that keyhook does
/// not know: "today" would silently be another day's, so the caller says so.
pub fn local_checked() -> (Tz, Option<String>) {
    match std::env::var("TZ") {
        // An empty TZ is UTC, as the C library reads it.
        Ok(value) if value.trim().is_empty() => (Tz::UTC, None),
        // A file (`:/etc/localtime`, a common setting): the zone it is, by where it links
        // to; the system's own zone for /etc/localtime itself.
        Ok(value) if tz_name(&value).starts_with('/') => {
            let path = tz_name(&value);
            match file_zone(path) {
                Some(zone) => (zone, None),
                None if path == "/etc/localtime" => system_zone(),
                None => (
                    system_zone().0,
                    Some(format!(
                        "TZ=`{value}` is a file keyhook cannot tell the zone of; using {} \
                         instead. Set TZ to an IANA name such as Europe/Paris, or `timezone` \
                         in keyhook.toml, or --timezone",
                        system_zone().0
                    )),
                ),
            }
        }
        Ok(value) => match parse(tz_name(&value)) {
            Ok(zone) => (zone, None),
            Err(_) => {
                let zone = system_zone().0;
                let warning = format!(
                    "TZ=`{value}` names no time zone keyhook knows; using {zone} instead. \
                     Set TZ to an IANA name such as Europe/Paris, or `timezone` in \
                     keyhook.toml, or --timezone"
                );
                (zone, Some(warning))
            }
        },
        Err(_) => system_zone(),
    }
}

/// The zone of a zone file, by the `zoneinfo/<name>` it is (or links to).
fn file_zone(path: &str) -> Option<Tz> {
    let real = std::fs::canonicalize(path).ok()?;
    let real = real.to_str()?;
    let at = real.rfind("zoneinfo/")?;
    parse(&real[at + "zoneinfo/".len()..]).ok()
}

/// The zone the system is set to, or UTC when none is set.
fn system_zone() -> (Tz, Option<String>) {
    match iana_time_zone::get_timezone() {
        Ok(name) => match parse(&name) {
            Ok(zone) => (zone, None),
            Err(_) => (
                Tz::UTC,
                Some(format!(
                    "the system's time zone `{name}` is not one keyhook knows; using UTC \
                     instead. Set `timezone` in keyhook.toml, or --timezone"
                )),
            ),
        },
        Err(_) => (Tz::UTC, None),
    }
}

/// The zone name in a `TZ` value: `:Europe/Paris` and `/usr/share/zoneinfo/Europe/Paris`
/// both name Europe/Paris.
fn tz_name(value: &str) -> &str {
    let value = value.trim().trim_start_matches(':');
    match value.rfind("zoneinfo/") {
        Some(at) => &value[at + "zoneinfo/".len()..],
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_typos_do_not() {
        assert_eq!(parse("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(parse(" UTC ").unwrap(), Tz::UTC);
        assert!(
            parse("Europe/Pariss")
                .unwrap_err()
                .to_string()
                .contains("Europe/Pariss")
        );
    }

    #[test]
    fn tz_values_name_zones_as_the_c_library_reads_them() {
        let cases = [
            (":Europe/Paris", "Europe/Paris"),
            ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
            (":/usr/share/zoneinfo/UTC", "UTC"),
            ("Mars/Olympus", "Mars/Olympus"),
        ];
        for (value, name) in cases {
            assert_eq!(tz_name(value), name);
        }
    }
}

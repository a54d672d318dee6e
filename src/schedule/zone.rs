//! Time zones: a named IANA zone, or the machine's local zone as QLM's agent uses.

use chrono_tz::Tz;

/// Parses an IANA zone name such as `UTC` or `Europe/Paris`.
pub fn parse(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("`{name}` is not a time zone: use an IANA name such as UTC or Europe/Paris")
    })
}

/// The machine's zone: `$TZ` when it names a zone, else the system setting, else UTC.
pub fn local() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|name| parse(name.trim_start_matches(':')).ok())
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .and_then(|name| parse(&name).ok())
        })
        .unwrap_or(Tz::UTC)
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
                .contains("Europe/Pariss")
        );
    }
}

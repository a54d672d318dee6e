//! What a webhook's `events` list means: each entry, in either naming style, an alias or a
//! `prefix.*` wildcard, resolved against the catalog to canonical dotted names.

use super::catalog::Catalog;

/// Events no trigger makes (see [`super::expiry`]): `(canonical, QLM-style)`.
pub const TIME_BASED: [(&str, &str); 1] = [("license.expired", "license_expired")];

/// Every event a webhook can subscribe to: its canonical name and all the names it answers to,
/// in catalog order, then the time-based ones.
pub fn known(catalog: &Catalog) -> Vec<(String, Vec<String>)> {
    let mut known: Vec<(String, Vec<String>)> = catalog
        .events()
        .map(|(_, event)| (event.name.clone(), event.names()))
        .collect();
    for (name, qlm) in TIME_BASED {
        known.push((name.to_string(), vec![name.to_string(), qlm.to_string()]));
    }
    known
}

/// Why a list of events subscribes to nothing it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamesError {
    #[error("the list is empty: name at least one event (`keyhook events catalog` lists them)")]
    Empty,
    /// An entry that names no event, with what the closest known names suggest.
    #[error("`{entry}` is not an event; {hint}")]
    Unknown { entry: String, hint: String },
}

/// The canonical names `entries` subscribe to, each once, in catalog order. An entry that
/// names nothing is an error naming it and the closest known names.
pub fn resolve(entries: &[String], catalog: &Catalog) -> Result<Vec<String>, NamesError> {
    if entries.is_empty() {
        return Err(NamesError::Empty);
    }
    let known = known(catalog);
    let mut chosen = vec![false; known.len()];
    for entry in entries {
        let entry = entry.trim();
        let mut matched = false;
        for (index, (_, names)) in known.iter().enumerate() {
            if names.iter().any(|name| matches(entry, name)) {
                chosen[index] = true;
                matched = true;
            }
        }
        if !matched {
            return Err(unknown(entry, &known));
        }
    }
    Ok(known
        .into_iter()
        .zip(chosen)
        .filter_map(|((name, _), chosen)| chosen.then_some(name))
        .collect())
}

/// The canonical name of `name` (any style or alias), if it is an event.
pub fn canonical(name: &str, catalog: &Catalog) -> Option<String> {
    known(catalog)
        .into_iter()
        .find(|(_, names)| names.iter().any(|known| known == name))
        .map(|(canonical, _)| canonical)
}

/// `*` is every event; `license.*` (or `license_*`) every event with a name in that family.
fn matches(entry: &str, name: &str) -> bool {
    if entry == "*" {
        return true;
    }
    match entry.strip_suffix('*') {
        Some(prefix) if prefix.ends_with(['.', '_']) => {
            name.len() > prefix.len() && name.starts_with(prefix)
        }
        _ => entry == name,
    }
}

fn unknown(entry: &str, known: &[(String, Vec<String>)]) -> NamesError {
    let mut close: Vec<(usize, &str)> = known
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|name| (distance(entry, name), name.as_str()))
        .filter(|(distance, name)| *distance <= 3.max(name.len() / 4))
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    let suggestions: Vec<String> = close
        .iter()
        .take(3)
        .map(|(_, name)| format!("`{name}`"))
        .collect();
    let hint = match suggestions.is_empty() {
        true => "`keyhook events catalog` lists the events".to_string(),
        false => format!("did you mean {}?", suggestions.join(", ")),
    };
    NamesError::Unknown {
        entry: entry.to_string(),
        hint,
    }
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(entries: &[&str]) -> Result<Vec<String>, NamesError> {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        resolve(&entries, &Catalog::builtin())
    }

    #[test]
    fn styles_aliases_and_wildcards_resolve_to_canonical_names() {
        let cases: [(&[&str], &[&str]); 6] = [
            (&["license_activated"], &["license.activated"]),
            (&["activation.deleted"], &["license.deactivated"]),
            (
                &["customer_modified", "license.created", "license_created"],
                &["license.created", "customer.updated"],
            ),
            (
                &["customer.*"],
                &["customer.created", "customer.updated", "customer.deleted"],
            ),
            (
                &["activation.*"],
                &["license.activated", "license.deactivated"],
            ),
            (&["license_expired"], &["license.expired"]),
        ];
        for (entries, expected) in cases {
            assert_eq!(resolved(entries).unwrap(), expected, "{entries:?}");
        }
        let all = resolved(&["license.*"]).unwrap();
        assert_eq!(all.len(), 8, "{all:?}");
        assert_eq!(all.last().map(String::as_str), Some("license.expired"));
        assert_eq!(resolved(&["*"]).unwrap().len(), 14);
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let error = resolved(&["license.activate"]).unwrap_err().to_string();
        assert!(
            error.contains("did you mean `license.activated`"),
            "{error}"
        );
        let error = resolved(&["licence_released"]).unwrap_err().to_string();
        assert!(error.contains("`license_released`"), "{error}");
        let error = resolved(&["nothing.like.it.at.all"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("keyhook events catalog"), "{error}");
        assert_eq!(resolved(&[]).unwrap_err(), NamesError::Empty);
        assert!(resolved(&["license*"]).is_err(), "a wildcard needs its dot");
    }

    #[test]
    fn canonical_names() {
        let catalog = Catalog::builtin();
        assert_eq!(
            canonical("customer_modified", &catalog).as_deref(),
            Some("customer.updated")
        );
        assert_eq!(canonical("nope", &catalog), None);
    }
}

//! Webhook addresses: which URLs keyhook accepts, and how they are shown (a password in
//! them masked).

/// `url` as it may be shown: a password in it (`https://user:pass@host/`) masked, and the
/// value of a query parameter that names a credential (`?token=...`, `password`, `key`...).
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let path = masked_query(path);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// Words that make a query parameter's value a credential: a name holding one of them as a
/// word of its own (`token`, `access_token`, `client_secret`, `X-Amz-Signature`, `apiKey`),
/// compared without regard to case. `keyhook` holds none: words, not substrings.
const CREDENTIAL_WORDS: [&str; 20] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "auth",
    "authorization",
    "key",
    "apikey",
    "sig",
    "signature",
    "credential",
    "credentials",
    "jwt",
    "hmac",
    "sas",
    "private",
    "session",
    "bearer",
];

/// Parts of a name that make it a credential wherever they appear in it (`apitoken`,
/// `clientsecret`, `sessionid`): none of them is part of an innocent word.
const CREDENTIAL_PARTS: [&str; 7] = [
    "token",
    "secret",
    "passw",
    "apikey",
    "credential",
    "signature",
    "session",
];

/// Whether the query parameter `name` names a credential: it holds one of
/// [`CREDENTIAL_PARTS`], or one of its words is in [`CREDENTIAL_WORDS`] (words split at every
/// character that is not a letter, where a lower-case letter meets an upper-case one, and
/// between letters and digits: `key1`). `%5F` and the like are decoded first.
fn names_a_credential(name: &str) -> bool {
    let name = percent_decoded(name);
    let lower = name.to_lowercase();
    if CREDENTIAL_PARTS.iter().any(|part| lower.contains(part)) {
        return true;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous: Option<char> = None;
    for c in name.chars() {
        let boundary = match previous {
            Some(p) => {
                !c.is_alphanumeric()
                    || (p.is_lowercase() && c.is_uppercase())
                    || (p.is_alphabetic() != c.is_alphabetic())
            }
            None => false,
        };
        if boundary {
            words.push(std::mem::take(&mut word));
        }
        if c.is_alphabetic() {
            word.extend(c.to_lowercase());
        }
        previous = Some(c);
    }
    words.push(word);
    words
        .iter()
        .any(|word| CREDENTIAL_WORDS.contains(&word.as_str()))
}

/// `%XX` sequences decoded (as bytes, then read as UTF-8, lossily); the rest as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        // Two hex digits, no more: `from_str_radix` alone would take `%+f`.
        let hex = bytes
            .get(at + 1..at + 3)
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` (with its query and fragment) with credential parameters' values masked.
fn masked_query(path: &str) -> String {
    let Some((before, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if names_a_credential(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    let mut shown = format!("{before}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// Why a URL was rejected; `shown` is the URL with its password masked.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("`{shown}` is not a URL ({error})")]
    NotAUrl {
        shown: String,
        error: ureq::http::uri::InvalidUri,
    },
    #[error("`{shown}` must start with http:// or https://")]
    Scheme { shown: String },
    #[error("`{shown}` has no host")]
    NoHost { shown: String },
    #[error("`{shown}` has port {port}: a port is a number from 1 to 65535")]
    Port { shown: String, port: String },
}

/// An absolute http:// or https:// URL with a host.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let shown = shown_url(url);
    let uri: ureq::http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(error) => return Err(UrlError::NotAUrl { shown, error }),
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(UrlError::Scheme { shown }),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost { shown });
    }
    // `Uri::port` hides a port that does not parse; read it from the authority itself.
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let host_and_port = authority.rsplit('@').next().unwrap_or(authority);
    if let Some((_, port)) = host_and_port.rsplit_once(':')
        && !port.contains(']')
        && !port.is_empty()
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return Err(UrlError::Port {
            shown,
            port: port.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://example.com").is_ok());
        assert!(check_url("example.com/hook").is_err());
        assert!(check_url("http://127.0.0.1:99999/hook").is_err());
        assert!(check_url("http://127.0.0.1:0/hook").is_err());
        assert!(check_url("https://[::1]:65535/hook").is_ok());
        assert!(check_url("mailto:x@example.com").is_err());
        let error = check_url("https://bot:hunter2@example.com:0/x")
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("hunter2") && error.contains("bot:***@example.com"),
            "{error}"
        );
        assert_eq!(shown_url("http://a:b@h/p?q=1"), "http://a:***@h/p?q=1");
        assert_eq!(
            shown_url("https://h/hook?id=7&token=hunter2&Password=pw2&x#frag"),
            "https://h/hook?id=7&token=***&Password=***&x#frag"
        );
        assert_eq!(shown_url("https://h/p?keyhook=1"), "https://h/p?keyhook=1");
        for name in [
            "client_secret",
            "webhook_secret",
            "auth_token",
            "refresh_token",
            "X-Amz-Signature",
            "x-api-key",
            "api_key",
            "apiKey",
            "APIKEY",
            "authorization",
            "private_key",
            "credential",
            "jwt",
            "hmac",
            "sas",
            "access_token",
            "apitoken",
            "authtoken",
            "clientsecret",
            "token2",
            "key1",
            "api%5Fkey",
            "sessionid",
        ] {
            let url = format!("https://h/p?id=1&{name}=V1");
            assert_eq!(shown_url(&url), format!("https://h/p?id=1&{name}=***"));
        }
        assert_eq!(percent_decoded("a%5Fb%+fc%"), "a_b%+fc%");
        for name in ["keyhook", "monkey", "author", "design", "passenger", "id"] {
            let url = format!("https://h/p?{name}=1");
            assert_eq!(shown_url(&url), url, "{name} is not a credential");
        }
        assert_eq!(shown_url("http://h:8080/p@x"), "http://h:8080/p@x");
    }
}

//! A webhook receiver built on keyhook's own verification: both signature schemes, checked on
//! the raw body bytes before any JSON parsing, in constant time, with a timestamp tolerance.
//!
//! Run: `KEYHOOK_SECRET=... cargo run --example receiver -- [PORT]` (0 picks a free port).
//! Prints `listening on http://127.0.0.1:PORT`, then per request `valid <delivery-id>
//! <ActivationKey> <Name>` or `invalid <reason>`, the same lines as the Python and Node ones.

use std::io::Write;

use keyhook::delivery::standard::{self, DEFAULT_TOLERANCE_SECS, Key};
use keyhook::delivery::verify::{self, StandardHeaders};
use keyhook::receiver::{Reply, Request, Server};
use keyhook::secret::Secret;

fn main() {
    let Some(secret) = std::env::var("KEYHOOK_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!("KEYHOOK_SECRET is not set or empty; refusing to start");
        std::process::exit(2);
    };
    let port = std::env::args().nth(1).unwrap_or_else(|| "8080".into());
    let secret = Secret::new(secret);
    let server = Server::start_unrecorded(&format!("127.0.0.1:{port}"), move |request| {
        let (reply, line) = check(request, &secret);
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        reply
    })
    .unwrap_or_else(|error| {
        eprintln!("cannot listen on 127.0.0.1:{port}: {error}");
        std::process::exit(1);
    });
    println!("listening on {}", server.url(""));
    loop {
        std::thread::park();
    }
}

/// Verifies every scheme the request carries; all must pass.
fn check(request: &Request, secret: &Secret) -> (Reply, String) {
    let standard_sent = request.header(standard::SIGNATURE_HEADER).is_some();
    let qlm_sent = request.header("X-QLM-Signature").is_some();
    let mut verdicts = Vec::new();
    if qlm_sent || !standard_sent {
        verdicts.push(
            verify::qlm(request.header("X-QLM-Signature"), &request.body, secret)
                .map_err(|e| e.to_string()),
        );
    }
    if standard_sent {
        verdicts.push(standard_check(request, secret));
    }
    if let Some(Err(reason)) = verdicts.into_iter().find(Result::is_err) {
        return (
            Reply::status(401).with_body("invalid signature"),
            format!("invalid {reason}"),
        );
    }
    // Authentic: only now is the body parsed.
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return (
            Reply::status(400).with_body("bad json"),
            "invalid bad-json".into(),
        );
    };
    let delivery = request
        .header("X-Keyhook-Delivery")
        .or(request.header(standard::ID_HEADER))
        .unwrap_or("-");
    let key = json["LicenseInfo"]["ActivationKey"].as_str().unwrap_or("-");
    let name = json["Name"].as_str().unwrap_or("-");
    (Reply::ok(), format!("valid {delivery} {key} {name}"))
}

fn standard_check(request: &Request, secret: &Secret) -> Result<(), String> {
    let key = Key::from_secret(secret.expose()).map_err(|error| format!("bad-secret ({error})"))?;
    let headers = StandardHeaders {
        id: request.header(standard::ID_HEADER),
        timestamp: request.header(standard::TIMESTAMP_HEADER),
        signature: request.header(standard::SIGNATURE_HEADER),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    verify::standard(&headers, &request.body, &[key], now, DEFAULT_TOLERANCE_SECS)
        .map_err(|e| e.to_string())
}

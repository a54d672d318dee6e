//! `keyhook listen`: a local webhook receiver for trying keyhook out. It prints every request,
//! checks `X-QLM-Signature` when it has the secret, and answers 200.

use std::io::Write;

use anyhow::anyhow;

use super::{printable, success};
use crate::cli::ListenArgs;
use crate::definitions::secret::SecretSource;
use crate::delivery::http::DELIVERY_HEADER;
use crate::delivery::signature::QLM_HEADER;
use crate::delivery::standard;
use crate::delivery::verify::{self, StandardHeaders};
use crate::error::{Error, Result};
use crate::receiver::{Reply, Request, Server, ServerTls};
use crate::schedule::clock;
use crate::secret::Secret;

pub fn run(args: &ListenArgs, out: &mut impl Write) -> Result {
    let secret = listen_secret(args)?;
    let tls = listen_tls(args)?;
    let compact = args.compact;
    // Connection threads hand their reports to this thread, the one that owns stdout.
    let (reports, received) = std::sync::mpsc::channel::<String>();
    let reports = std::sync::Mutex::new(reports);
    let address = format!("127.0.0.1:{}", args.port);
    let server = Server::start_unrecorded_with(&address, tls, move |request| {
        let report = describe(request, secret.as_ref(), compact);
        if let Ok(reports) = reports.lock() {
            let _ = reports.send(report);
        }
        Reply::ok()
    })
    .map_err(|error| {
        Error::runtime(anyhow!(
            "could not listen on 127.0.0.1:{}: {error}",
            args.port
        ))
    })?;
    writeln!(out, "listening on {} (Ctrl-C to stop)", server.url("/"))?;
    out.flush()?;
    for report in received {
        out.write_all(report.as_bytes())?;
        out.flush()?;
    }
    drop(server);
    success()
}

/// The certificate and key of `--tls-cert` and `--tls-key`, if given.
fn listen_tls(args: &ListenArgs) -> Result<Option<ServerTls>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, flag: &str| {
        crate::file_access::read_regular(path, crate::file_access::MAX_PEM_BYTES).map_err(|error| {
            Error::config(anyhow!("could not read {flag} {}: {error}", path.display()))
        })
    };
    ServerTls::from_pem(&read(cert, "--tls-cert")?, &read(key, "--tls-key")?)
        .map(Some)
        .map_err(|error| {
            Error::config(anyhow!(
                "--tls-cert {} / --tls-key {}: {error}",
                cert.display(),
                key.display()
            ))
        })
}

fn listen_secret(args: &ListenArgs) -> Result<Option<Secret>> {
    if let Some(value) = &args.secret {
        return Ok(Some(Secret::new(value.clone())));
    }
    let Some(name) = &args.secret_env else {
        return Ok(None);
    };
    SecretSource::Env(name.clone())
        .resolve()
        .map(Some)
        .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))
}

/// One request, as `listen` prints it.
pub fn describe(request: &Request, secret: Option<&Secret>, compact: bool) -> String {
    let delivery = printable::line(request.header(DELIVERY_HEADER).unwrap_or("-"), 100);
    let verdict = verdict(request, secret);
    let mut text = format!(
        "{} {}  {} bytes  delivery {delivery}  {verdict}\n",
        printable::line(&request.method, 20),
        printable::line(&request.target, 200),
        request.body.len()
    );
    if !compact {
        let pretty = serde_json::from_slice::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|json| serde_json::to_string_pretty(&json).ok())
            .unwrap_or_else(|| request.body_text().into_owned());
        text.push_str(&printable::block(&pretty, printable::BODY_CHARS));
        text.push_str("\n\n");
    }
    text
}

/// `✓ signature valid (qlm)`, `✗ signature INVALID (standard): why`, or why it was not checked;
/// one verdict per scheme the request carries.
pub fn verdict(request: &Request, secret: Option<&Secret>) -> String {
    let qlm_sent = request.header(QLM_HEADER).is_some();
    let standard_sent = request.header(standard::SIGNATURE_HEADER).is_some();
    if !qlm_sent && !standard_sent {
        return format!("✗ no {QLM_HEADER} or {} header", standard::SIGNATURE_HEADER);
    }
    let Some(secret) = secret else {
        return "signature not checked (no --secret-env given)".into();
    };
    let mut verdicts = Vec::new();
    if qlm_sent {
        verdicts.push(say(
            "qlm",
            verify::qlm(request.header(QLM_HEADER), &request.body, secret),
        ));
    }
    if standard_sent {
        let checked = match standard::Key::from_secret(secret.expose()) {
            Ok(key) => {
                let headers = StandardHeaders {
                    id: request.header(standard::ID_HEADER),
                    timestamp: request.header(standard::TIMESTAMP_HEADER),
                    signature: request.header(standard::SIGNATURE_HEADER),
                };
                // Signed with the real time (never --now), so checked against it.
                let now = clock::real_now().timestamp();
                verify::standard(
                    &headers,
                    &request.body,
                    &[key],
                    now,
                    standard::DEFAULT_TOLERANCE_SECS,
                )
                .map_err(|error| error.to_string())
            }
            Err(error) => Err(format!(
                "the secret is not a Standard Webhooks key: {error}"
            )),
        };
        verdicts.push(say("standard", checked.map_err(|e| e.to_string())));
    }
    verdicts.join("  ")
}

fn say<E: std::fmt::Display>(scheme: &str, verdict: std::result::Result<(), E>) -> String {
    match verdict {
        Ok(()) => format!("✓ signature valid ({scheme})"),
        Err(reason) => format!(
            "✗ signature INVALID ({scheme}): {}",
            printable::line(&reason.to_string(), 300)
        ),
    }
}

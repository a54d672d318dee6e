//! `keyhook verify`: check a received request's signature, for people writing receivers.

use std::io::{Read, Write};

use anyhow::{Context as _, anyhow};

use super::Context;
use crate::cli::{SchemeArg, VerifyArgs};
use crate::definitions::secret::SecretSource;
use crate::delivery::signature::QLM_HEADER;
use crate::delivery::standard::{self, Key};
use crate::delivery::verify::{self, Invalid, StandardHeaders};
use crate::error::{Error, Exit, Result};
use crate::secret::Secret;

pub fn run(context: &Context, args: &VerifyArgs, out: &mut impl Write) -> Result {
    let secrets = SecretSource::Env(args.secret_env.clone())
        .resolve_all()
        .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))?;
    let (headers, body) = read_request(args)?;
    let scheme = args
        .scheme
        .unwrap_or(if header(&headers, standard::SIGNATURE_HEADER).is_some() {
            SchemeArg::Standard
        } else {
            SchemeArg::Qlm
        });
    let verdict = match scheme {
        SchemeArg::Qlm => {
            let signature = header(&headers, QLM_HEADER);
            secrets
                .iter()
                .map(|secret| verify::qlm(signature, &body, secret))
                .find(|verdict| verdict.is_ok())
                .unwrap_or_else(|| verify::qlm(signature, &body, &secrets[0]))
        }
        SchemeArg::Standard => verify_standard(context, args, &headers, &body, &secrets)?,
    };
    let name = match scheme {
        SchemeArg::Qlm => "qlm",
        SchemeArg::Standard => "standard",
    };
    match verdict {
        Ok(()) => {
            writeln!(out, "valid ({name} signature)")?;
            Ok(Exit::Success)
        }
        Err(reason) => {
            writeln!(out, "invalid ({name} signature): {reason}")?;
            Ok(Exit::DeliveryFailed)
        }
    }
}

/// The request's headers and body: from --headers and --body, else a raw request on
/// standard input.
fn read_request(args: &VerifyArgs) -> Result<(Headers, Vec<u8>)> {
    match (&args.headers, &args.body) {
        (Some(headers), Some(body)) => Ok((
            parse_headers(
                &std::fs::read_to_string(headers)
                    .with_context(|| format!("could not read {}", headers.display()))
                    .map_err(Error::config)?,
            ),
            super::sign::read_body(body)?,
        )),
        _ => raw_request(),
    }
}

/// The value of the first header called `name`, in any case.
fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The Standard Webhooks verdict: valid for any of the secrets, within --tolerance of now.
fn verify_standard(
    context: &Context,
    args: &VerifyArgs,
    headers: &Headers,
    body: &[u8],
    secrets: &[Secret],
) -> Result<std::result::Result<(), Invalid>> {
    let keys: Vec<Key> = secrets
        .iter()
        .map(|secret| Key::from_secret(secret.expose()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))?;
    let headers = StandardHeaders {
        id: header(headers, standard::ID_HEADER),
        timestamp: header(headers, standard::TIMESTAMP_HEADER),
        signature: header(headers, standard::SIGNATURE_HEADER),
    };
    Ok(verify::standard(
        &headers,
        body,
        &keys,
        context.clock.now().timestamp(),
        i64::try_from(args.tolerance.as_secs()).unwrap_or(i64::MAX),
    ))
}

/// Header names and values, in the order given.
type Headers = Vec<(String, String)>;

/// `Name: value` lines; a request line or anything without a colon is skipped.
fn parse_headers(text: &str) -> Headers {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| !name.contains(' '))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// A raw HTTP request from standard input: head, blank line, body (by Content-Length if given).
fn raw_request() -> Result<(Headers, Vec<u8>)> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| (at, at + 4))
        .or_else(|| bytes.windows(2).position(|window| window == b"\n\n").map(|at| (at, at + 2)))
        .ok_or_else(|| Error::config(anyhow!("standard input is not an HTTP request (no blank line after the headers); or pass --headers and --body")))?;
    let headers = parse_headers(&String::from_utf8_lossy(&bytes[..split.0]));
    let mut body = bytes[split.1..].to_vec();
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());
    if let Some(length) = length {
        body.truncate(length);
    }
    Ok((headers, body))
}

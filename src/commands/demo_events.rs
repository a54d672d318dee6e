//! The event half of `keyhook demo`: triggers installed on the demo database, a webhook to
//! the demo's receiver (in its temporary configuration), three changes made by another
//! connection (create, activate, release), one dispatch pass, and each event shown as it
//! arrived, its signature checked.

use std::io::Write;
use std::path::Path;

use anyhow::anyhow;
use comfy_table::{Table, presets};

use super::Context;
use super::dispatch::Dispatcher;
use super::sending::Stop;
use crate::definitions::Definitions;
use crate::delivery::signature::{self, QLM_HEADER};
use crate::error::{Error, Exit, Result};
use crate::events::catalog::Catalog;
use crate::events::outbox;
use crate::receiver::{Request, Server};
use crate::secret::Secret;

/// The demo's event target on the receiver.
const PATH: &str = "/hooks/events";

/// What the demo's changes fire, in the order they are made.
const EVENTS: [&str; 3] = [
    "license.created",
    "license.activated",
    "license.deactivated",
];

pub fn show(
    demo: &Context,
    server: &Server,
    secret: &Secret,
    stop: &Stop,
    out: &mut impl Write,
) -> Result {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        Error::runtime(anyhow!("demo events: {what}: {error}"))
    };
    let mut conn = rusqlite::Connection::open(&demo.db_path).map_err(|e| failed("open", &e))?;
    outbox::install(&mut conn, &Catalog::builtin()).map_err(|e| failed("install", &e))?;
    write_webhook(&demo.definitions.dir, server, secret)?;
    let context = Context {
        definitions: Definitions::load(&demo.definitions.dir),
        clock: demo.clock,
        db_path: demo.db_path.clone(),
        db: demo.db.clone(),
        state_path: demo.state_path.clone(),
        state_location: demo.state_location.clone(),
        identity: demo.identity.clone(),
        environment: None,
        url_problems: Default::default(),
    };
    change(&conn).map_err(|e| failed("a change", &e))?;
    writeln!(
        out,
        "5. Installed the event triggers, defined a webhook to {}, made three changes from \
         another connection (create, activate, release), and ran one dispatch pass:\n",
        server.url(PATH)
    )?;
    let mut quiet = Vec::new();
    let Some(mut dispatcher) = Dispatcher::new(&context, &mut quiet)? else {
        return Err(failed("dispatch", &"the demo webhook was not loaded"));
    };
    dispatcher.pass(&context, stop, &mut quiet)?;
    if stop.exit().is_some() {
        return Ok(Exit::Success);
    }
    print(server, secret, out)
}

/// `webhooks/demo-events.toml` in the demo's temporary configuration.
fn write_webhook(dir: &Path, server: &Server, secret: &Secret) -> Result<()> {
    let events: Vec<String> = EVENTS.iter().map(|e| format!("\"{e}\"")).collect();
    let text = format!(
        "name = \"demo events\"\nurl = \"{}\"\nevents = [{}]\nsecret = \"{}\"\n",
        server.url(PATH),
        events.join(", "),
        secret.expose()
    );
    std::fs::create_dir_all(dir.join("webhooks"))?;
    std::fs::write(dir.join("webhooks/demo-events.toml"), text)?;
    Ok(())
}

/// Create, activate and release one license, each its own commit, as a license server would.
fn change(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, Email, FullName)
         VALUES ((SELECT coalesce(max(ID), 0) + 1 FROM LicenseKeys), 'DEMO-EVENT-0001',
                 'events@example.com', 'Event Demo');
         UPDATE LicenseKeys SET ComputerID = 'PC-DEMO', ActivationCount = 1
         WHERE ActivationKey = 'DEMO-EVENT-0001';
         UPDATE LicenseKeys SET ComputerID = NULL, ActivationCount = 0
         WHERE ActivationKey = 'DEMO-EVENT-0001';",
    )
}

fn print(server: &Server, secret: &Secret, out: &mut impl Write) -> Result {
    let requests: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.target == PATH)
        .collect();
    let signed = |r: &Request| {
        r.header(QLM_HEADER)
            .is_some_and(|h| signature::verify_qlm(&r.body, secret, h))
    };
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(["Event", "ActivationKey", "Delivery id", "Signature"]);
    for request in &requests {
        let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        table.add_row([
            request.header("X-Keyhook-Event").unwrap_or("").to_string(),
            json["LicenseInfo"]["ActivationKey"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            request
                .header("X-Keyhook-Delivery")
                .unwrap_or("")
                .to_string(),
            if signed(request) { "✓" } else { "✗" }.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    let verified = requests.iter().filter(|r| signed(r)).count();
    let all = requests.len() == EVENTS.len() && verified == requests.len();
    writeln!(
        out,
        "{} {verified} of {} event signatures verified; {} events expected.",
        if all { "✓" } else { "✗" },
        requests.len(),
        EVENTS.len()
    )?;
    Ok(if all {
        Exit::Success
    } else {
        Exit::DeliveryFailed
    })
}

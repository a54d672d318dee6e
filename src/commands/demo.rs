//! `keyhook demo`: the whole job end to end with nothing to install. A demo database in a
//! temporary folder, a receiver on a free loopback port, the example task run against it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use comfy_table::{Table, presets};

use super::sending::Stop;
use super::{Context, run_task, success};
use crate::cli::DemoArgs;
use crate::definitions::Definitions;
use crate::definitions::secret::SecretSource;
use crate::delivery::signature::{self, QLM_HEADER};
use crate::demo::DemoOptions;
use crate::error::{Error, Exit, Result};
use crate::receiver::{Reply, Server};
use crate::secret::Secret;

/// The example search and task, built in so the demo runs from any folder.
const SEARCH: (&str, &str) = (
    "searches/upcoming-renewals.toml",
    include_str!("../../searches/upcoming-renewals.toml"),
);
const TASK: (&str, &str) = (
    "tasks/upcoming-renewals.toml",
    include_str!("../../tasks/upcoming-renewals.toml"),
);

pub fn run(context: &Context, args: &DemoArgs, out: &mut impl Write) -> Result {
    // Installed first: a Ctrl-C at any point ends here, and the folder is removed.
    let stop = Stop::install();
    let folder = TempFolder::new().map_err(Error::runtime)?;
    let outcome = demonstrate(context, args, &folder.0, &stop, out);
    let Some(exit) = stop.exit() else {
        return outcome;
    };
    let path = folder.0.clone();
    drop(folder);
    eprintln!(
        "interrupted: the demo stopped, and its temporary folder {} was removed",
        path.display()
    );
    Ok(exit)
}

fn demonstrate(
    context: &Context,
    args: &DemoArgs,
    folder: &Path,
    stop: &Stop,
    out: &mut impl Write,
) -> Result {
    let Some(db_path) = write_folder(context, args, folder, stop, out)? else {
        return success();
    };
    let secret = Secret::new(random_hex());
    let server = receiver(&secret)?;
    writeln!(out, "2. Started a receiver on {}", server.url("/hooks/qlm"))?;
    let demo = Context {
        definitions: Definitions::load(folder),
        clock: context.clock,
        state_path: folder.join(crate::state::DEFAULT_FILE),
        state_location: crate::state::Location::File(folder.join(crate::state::DEFAULT_FILE)),
        identity: context.identity.clone(),
        db: crate::licenses::database::Location::Sqlite(db_path.clone()),
        db_path,
        environment: context.environment,
        url_problems: Default::default(),
    };
    let mut task = demo.task("upcoming-renewals")?.clone();
    task.webhook.url = server.url("/hooks/qlm");
    task.webhook.secret = SecretSource::Literal(secret.clone());
    writeln!(
        out,
        "3. Ran the task `{}` (search: {}):\n",
        task.name, task.search
    )?;
    let options = run_task::Options {
        slot: None,
        concurrency: None,
        live: true,
    };
    let report = run_task::execute(&demo, &task, &options, stop, out)?;
    writeln!(out, "   {}\n", run_task::summary(&report))?;
    if stop.exit().is_some() {
        return success();
    }
    let exit = show_received(&server, &secret, report.matched, out)?;
    if stop.exit().is_some() {
        return Ok(exit);
    }
    writeln!(out)?;
    let events = super::demo_events::show(&demo, &server, &secret, stop, out)?;
    writeln!(
        out,
        "Next: `keyhook dry-run upcoming-renewals` on your own database, or see README.md."
    )?;
    Ok(exit.worst(events))
}

/// Writes the example search and task, and a demo license database, into `folder`; the
/// database's path, or `None` when a stop came while writing it.
fn write_folder(
    context: &Context,
    args: &DemoArgs,
    folder: &Path,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Option<PathBuf>> {
    for (name, text) in [SEARCH, TASK] {
        let path = folder.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(folder))?;
        std::fs::write(&path, text)?;
    }
    let db_path = folder.join("licenses.db");
    let options = DemoOptions {
        licenses: args.licenses,
        today: context.clock.local_now().date_naive(),
        seed: 42,
    };
    let written = super::db::write_demo(&db_path, &options, stop).map_err(Error::runtime)?;
    let Some(written) = written else {
        return Ok(None);
    };
    writeln!(
        out,
        "1. Wrote a demo license database: {written} licenses, {}",
        db_path.display()
    )?;
    Ok(Some(db_path))
}

/// A receiver on a free loopback port that accepts requests signed with `secret`.
fn receiver(secret: &Secret) -> Result<Server> {
    let checker = secret.clone();
    Server::start("127.0.0.1:0", move |request| {
        match request.header(QLM_HEADER) {
            Some(header) if signature::verify_qlm(&request.body, &checker, header) => Reply::ok(),
            _ => Reply::status(401).with_body("invalid signature"),
        }
    })
    .map_err(|error| Error::runtime(anyhow!("could not start the demo receiver: {error}")))
}

fn show_received(server: &Server, secret: &Secret, matched: u64, out: &mut impl Write) -> Result {
    let requests = server.requests();
    let verified = requests
        .iter()
        .filter(|request| {
            request
                .header(QLM_HEADER)
                .is_some_and(|header| signature::verify_qlm(&request.body, secret, header))
        })
        .count();
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(["#", "ActivationKey", "FullName", "Email", "Signature"]);
    for (index, request) in requests.iter().enumerate().take(10) {
        let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let info = &json["LicenseInfo"];
        let ok = request
            .header(QLM_HEADER)
            .is_some_and(|header| signature::verify_qlm(&request.body, secret, header));
        table.add_row([
            (index + 1).to_string(),
            info["ActivationKey"].as_str().unwrap_or("").to_string(),
            info["FullName"].as_str().unwrap_or("").to_string(),
            info["Email"].as_str().unwrap_or("").to_string(),
            if ok { "✓" } else { "✗" }.to_string(),
        ]);
    }
    writeln!(
        out,
        "4. The receiver got {} requests over {} connection(s); the first ones:",
        requests.len(),
        server.connection_count()
    )?;
    writeln!(out, "{table}")?;
    if let Some(first) = requests.first() {
        writeln!(
            out,
            "\nThe first request's signature header and body, byte for byte:"
        )?;
        writeln!(
            out,
            "{QLM_HEADER}: {}",
            first.header(QLM_HEADER).unwrap_or("")
        )?;
        writeln!(out, "{}\n", first.body_text())?;
    }
    let all = requests.len() as u64 == matched && verified == requests.len();
    let mark = if all { "✓" } else { "✗" };
    writeln!(
        out,
        "{mark} {verified} of {} signatures verified; {matched} licenses matched.",
        requests.len()
    )?;
    Ok(if all {
        Exit::Success
    } else {
        Exit::DeliveryFailed
    })
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// A temporary folder removed when the demo ends.
struct TempFolder(PathBuf);

impl TempFolder {
    /// A new folder with an unguessable name: never one that someone else made first.
    fn new() -> anyhow::Result<TempFolder> {
        let name = format!("keyhook-demo-{}-{}", std::process::id(), &random_hex()[..8]);
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(TempFolder(path))
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}

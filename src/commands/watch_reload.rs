//! `watch` follows its definitions: before each pass it compares the modification times and
//! sizes of the files its webhooks came from (`keyhook.toml`, `events.toml`, `webhooks/` and
//! each file in it, secret and TLS files) with those it read, and reloads when one changed or
//! on SIGHUP. A reload that fails keeps the webhooks that were running and says why.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Context;
use super::dispatch::Dispatcher;
use super::webhook_sources::{self, Source};
use crate::definitions::secret::SecretSource;
use crate::definitions::tls::TlsFiles;
use crate::definitions::{Definitions, EventWebhook, Problem, settings};
use crate::events::catalog::{self, Catalog};

/// What a file looked like when it was read: `None` when it was not there.
type Stamp = Option<(i64, i64, i64, i64, u64, u64)>;

/// The files a set of definitions was read from, each with its stamp.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fingerprint(BTreeMap<PathBuf, Stamp>);

impl Fingerprint {
    fn of(paths: impl IntoIterator<Item = PathBuf>) -> Fingerprint {
        let stamped = paths.into_iter().map(|path| {
            let seen = stamp(&path);
            (path, seen)
        });
        Fingerprint(stamped.collect())
    }

    /// Whether any file now differs from when it was read.
    fn changed(&self) -> bool {
        self.0.iter().any(|(path, seen)| stamp(path) != *seen)
    }

    fn stamps(&self, paths: &[PathBuf]) -> Vec<Stamp> {
        paths
            .iter()
            .map(|p| self.0.get(p).copied().flatten())
            .collect()
    }
}

/// Modification and change times, size and inode: a rewrite, a rename over it or a new
/// symlink target (systemd credentials, mounted secrets) each change one of them.
fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
        m.ino(),
    ))
}

/// Why new definitions were not taken; the running webhooks stay.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{}", lines(.0))]
    Definitions(Vec<Problem>),
    #[error(transparent)]
    Sources(#[from] webhook_sources::SourceError),
}

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n  ")
}

/// The definitions `watch` runs with, how their files looked, and the SIGHUP flag.
pub struct Registry {
    dir: PathBuf,
    seen: Fingerprint,
    /// Each running webhook's name and what it was made from, to say what a reload changed.
    running: BTreeMap<String, String>,
    hangup: Arc<AtomicBool>,
}

impl Registry {
    /// Starts from the definitions `context` loaded; SIGHUP asks for a reload from now on.
    pub fn new(context: &Context) -> Registry {
        let definitions = &context.definitions;
        let hangup = Arc::new(AtomicBool::new(false));
        // Without this handler SIGHUP would end the process.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup));
        let mut seen = Fingerprint::of(base_files(&definitions.dir));
        seen.0.extend(Fingerprint::of(secret_files(definitions)).0);
        let running = versions(definitions, &active(definitions, context), &seen);
        Registry {
            dir: definitions.dir.clone(),
            seen,
            running,
            hangup,
        }
    }

    /// Whether a reload is waiting: SIGHUP came or a file changed (a stat per file). Lets a
    /// loop that passes rarely (`watch` on a server) run a pass for it.
    pub fn due(&self) -> bool {
        self.hangup.load(Ordering::SeqCst) || self.seen.changed()
    }

    /// Reloads when a file changed or SIGHUP came, and says so on stderr in one line (a
    /// failure in one line per problem). Cheap when nothing changed: a stat per file.
    pub fn before_pass(&mut self, context: &Context, dispatcher: &mut Dispatcher) {
        let hangup = self.hangup.swap(false, Ordering::SeqCst);
        if !hangup && !self.seen.changed() {
            return;
        }
        let why = match hangup {
            true => "SIGHUP",
            false => "definitions changed",
        };
        match self.reload(context) {
            Ok((definitions, sources)) => {
                let summary = self.summary(&definitions, &sources);
                dispatcher.replace_sources(sources, definitions.catalog);
                eprintln!("watch: {why}; reloaded: {summary}");
            }
            Err(error) => {
                eprintln!(
                    "watch: {why}, but not reloaded (the deliveries of the {} webhook(s) loaded \
                     before still go out; no new event is taken until it is fixed, so that \
                     none passes the broken one by; fix it and save again, or send \
                     SIGHUP):\n  error: {error}",
                    self.running.len()
                );
                dispatcher.hold(Some(format!(
                    "not taking new events while the definitions cannot be loaded: {error}"
                )));
            }
        }
    }

    /// Loads the definitions afresh. The files' stamps are taken before they are read, so an
    /// edit made during the load is seen by the next look; the failed files' too, so the
    /// next try waits for the next edit.
    fn reload(&mut self, context: &Context) -> Result<(Definitions, Vec<Source>), ReloadError> {
        let mut seen = Fingerprint::of(base_files(&self.dir));
        let definitions = Definitions::load(shown(&self.dir));
        seen.0.extend(Fingerprint::of(secret_files(&definitions)).0);
        self.seen = seen;
        let problems = registry_problems(&definitions);
        if !problems.is_empty() {
            return Err(ReloadError::Definitions(problems));
        }
        let now = context.clock.now();
        let sources = webhook_sources::load(&definitions, context.environment(), now)
            .map_err(ReloadError::Sources)?;
        Ok((definitions, sources))
    }

    /// `N webhooks (added `a`, removed `b`, changed `c`)`, and remembers the new set.
    fn summary(&mut self, definitions: &Definitions, sources: &[Source]) -> String {
        let now = versions(definitions, &names(sources), &self.seen);
        let list = |names: Vec<&String>| {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            quoted.join(", ")
        };
        let added: Vec<_> = now
            .keys()
            .filter(|n| !self.running.contains_key(*n))
            .collect();
        let removed: Vec<_> = self
            .running
            .keys()
            .filter(|n| !now.contains_key(*n))
            .collect();
        let changed: Vec<_> = now
            .iter()
            .filter(|(n, v)| self.running.get(*n).is_some_and(|old| old != *v))
            .map(|(n, _)| n)
            .collect();
        let mut parts = Vec::new();
        for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", list(names)));
            }
        }
        let count = now.len();
        let summary = match parts.is_empty() {
            true => format!("{count} webhook(s) (none added, removed or changed)"),
            false => format!("{count} webhook(s) ({})", parts.join(", ")),
        };
        self.running = now;
        match count {
            0 => format!(
                "{summary}; no active webhook: new events wait until one is active (as \
                 `dispatch` leaves them)"
            ),
            _ => summary,
        }
    }
}

/// Problems that concern the webhooks: `keyhook.toml`, `events.toml`, `webhooks/`. Those of
/// tasks and searches are `run-due`'s.
fn registry_problems(definitions: &Definitions) -> Vec<Problem> {
    let dir = &definitions.dir;
    let settings_file = dir.join(settings::FILE);
    let mut problems: Vec<Problem> = definitions
        .problems
        .iter()
        .filter(|p| p.file == settings_file || p.file.starts_with(dir.join("webhooks")))
        .cloned()
        .collect();
    // `Definitions::load` falls back to the built-in catalog; a reload must not.
    if let Err(catalog) = Catalog::load(shown(dir)) {
        problems.extend(catalog);
    }
    problems
}

/// The configuration files and the webhook folder, and each `*.toml` in it.
fn base_files(dir: &Path) -> Vec<PathBuf> {
    let folder = dir.join("webhooks");
    let mut files = vec![
        dir.join(settings::FILE),
        dir.join(catalog::FILE),
        folder.clone(),
    ];
    if let Ok(entries) = std::fs::read_dir(shown(&folder)) {
        let tomls = entries.filter_map(|entry| entry.ok().map(|entry| entry.path()));
        files.extend(tomls.filter(|path| {
            path.extension().is_some_and(|ext| ext == "toml")
                && !crate::definitions::is_hidden(path)
        }));
    }
    files
}

/// The secret and TLS files every webhook reads (and the global `ca_file`).
fn secret_files(definitions: &Definitions) -> Vec<PathBuf> {
    let mut files = tls_files(&definitions.settings.tls);
    for webhook in &definitions.webhooks {
        files.extend(files_of(webhook));
    }
    files
}

/// The files one webhook's endpoint reads.
fn files_of(webhook: &EventWebhook) -> Vec<PathBuf> {
    let mut files = tls_files(&webhook.endpoint.tls);
    match &webhook.endpoint.secret {
        SecretSource::File(path) => {
            files.push(path.clone());
            files.push(crate::definitions::rotation::sidecar(path));
        }
        SecretSource::Credential(name) => {
            if let Some(folder) = std::env::var_os("CREDENTIALS_DIRECTORY") {
                files.push(Path::new(&folder).join(name));
            }
        }
        SecretSource::Literal(_) | SecretSource::Env(_) => {}
    }
    files
}

fn tls_files(tls: &TlsFiles) -> Vec<PathBuf> {
    let client = tls
        .client
        .iter()
        .flat_map(|c| [c.cert.clone(), c.key.clone()]);
    tls.ca_file.iter().cloned().chain(client).collect()
}

/// Each running webhook's definition and its files' stamps: a change in either is a change.
fn versions(
    definitions: &Definitions,
    running: &[String],
    seen: &Fingerprint,
) -> BTreeMap<String, String> {
    let by_name = |name: &String| definitions.webhooks.iter().find(|w| w.name == *name);
    running
        .iter()
        .filter_map(|name| by_name(name).map(|webhook| (name, webhook)))
        .map(|(name, webhook)| {
            let mut files = files_of(webhook);
            files.push(webhook.path.clone());
            let version = format!("{webhook:?} {:?}", seen.stamps(&files));
            (name.clone(), version)
        })
        .collect()
}

/// The names of the webhooks the running sources came from.
fn names(sources: &[Source]) -> Vec<String> {
    let mut names: Vec<String> = sources.iter().map(|s| s.route.webhook.clone()).collect();
    names.dedup();
    names
}

/// The webhooks active at start, as `Dispatcher::new` chose them.
fn active(definitions: &Definitions, context: &Context) -> Vec<String> {
    let environment = context.environment();
    let enabled = definitions.settings.webhooks_enabled;
    definitions
        .webhooks
        .iter()
        .filter(|w| enabled && w.enabled && w.environment == environment)
        .map(|w| w.name.clone())
        .collect()
}

/// The folder as the file system takes it: `Definitions` keeps `.` as an empty path.
fn shown(dir: &Path) -> &Path {
    match dir.as_os_str().is_empty() {
        true => Path::new("."),
        false => dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_sees_a_file_appear_change_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let seen = Fingerprint::of([file.clone()]);
        assert!(!seen.changed(), "nothing there, nothing changed");
        std::fs::write(&file, "one").unwrap();
        assert!(seen.changed(), "a file that appeared");
        let seen = Fingerprint::of([file.clone()]);
        assert!(!seen.changed());
        std::fs::write(&file, "three").unwrap();
        assert!(seen.changed(), "a rewrite");
        let seen = Fingerprint::of([file.clone()]);
        std::fs::remove_file(&file).unwrap();
        assert!(seen.changed(), "a file that went");
    }

    #[test]
    fn only_the_registrys_files_block_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("tasks/broken.toml", "name = ");
        write(
            "webhooks/ok.toml",
            "name = \"ok\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.*\"]\nsecret = \"s\"\n",
        );
        assert!(registry_problems(&Definitions::load(dir.path())).is_empty());
        write("events.toml", "[[source]]\nnope = 1\n");
        let problems = registry_problems(&Definitions::load(dir.path()));
        // Its unknown key and its missing one, both said; nothing of the broken task.
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().all(|p| p.file.ends_with("events.toml")),
            "{problems:?}"
        );
    }
}

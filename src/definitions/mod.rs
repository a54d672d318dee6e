//! The user's definitions: `keyhook.toml` settings, saved searches in `searches/`, scheduled
//! tasks in `tasks/` and event webhooks in `webhooks/`, loaded and validated before anything
//! runs.

pub mod endpoint;
pub mod qlm_events;
pub mod registry;
pub mod retry;
pub mod rotation;
pub mod search;
pub mod secret;
pub mod settings;
pub mod task;
pub mod tls;
pub mod toml_error;
pub mod url;

use std::path::{Path, PathBuf};

use crate::events::catalog::Catalog;

pub use registry::{Environment, EventWebhook};
pub use search::Search;
pub use settings::Settings;
pub use task::Task;

/// A problem with one definition file; loading goes on past it so every problem is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// Every problem of one definition file, as an error says them: a line each, every line after
/// the first with its own `error: ` (the first gets it where the error is printed), as `check`
/// says them, so fixing the first does not only reveal the next.
#[derive(Debug)]
pub struct FileProblems<'a>(Vec<&'a Problem>);

impl std::fmt::Display for FileProblems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                write!(f, "\nerror: ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Everything found under a configuration folder.
#[derive(Debug, Default)]
pub struct Definitions {
    pub dir: PathBuf,
    pub settings: Settings,
    pub searches: Vec<Search>,
    pub tasks: Vec<Task>,
    /// `webhooks/*.toml`, then those of QLM's `[events]` table in `keyhook.toml`.
    pub webhooks: Vec<EventWebhook>,
    /// The event types webhooks subscribe to: the built-ins and `events.toml`.
    pub catalog: Catalog,
    /// Files that could not be loaded, and references that do not resolve.
    pub problems: Vec<Problem>,
    /// Why `events.toml` could not be loaded (not in `problems`: `check` says it with the
    /// events' other problems).
    pub catalog_problems: Vec<Problem>,
    /// Why `keyhook.toml` could not be loaded (also in `problems`): its settings hold for
    /// every task and webhook (the zone, the kill switch, the deadlines), so no command but
    /// `check` goes on with defaults in their place.
    pub settings_problems: Vec<Problem>,
}

impl Definitions {
    /// Loads `dir/keyhook.toml`, `dir/searches/*.toml`, `dir/tasks/*.toml` and
    /// `dir/webhooks/*.toml`.
    pub fn load(dir: &Path) -> Definitions {
        // `searches/x.toml` reads better in messages than `./searches/x.toml`.
        let dir = if dir == Path::new(".") {
            Path::new("")
        } else {
            dir
        };
        let mut problems = Vec::new();
        let mut settings_problems = Vec::new();
        let settings = Settings::load(dir).unwrap_or_else(|found| {
            problems.extend(found.iter().cloned());
            settings_problems = found;
            Settings::default()
        });
        let searches = load_all(&dir.join("searches"), &mut problems, |path| {
            Search::load(path)
        });
        let tasks = load_all(&dir.join("tasks"), &mut problems, Task::load);
        // A broken events.toml is reported by `check` (and refused by `events install`);
        // here its events are unknown, and no new event is taken (`webhook_problems`): one
        // taken now would pass by a webhook subscribed to it by a wildcard, for good.
        let (catalog, catalog_problems) = match Catalog::load(dir) {
            Ok(catalog) => (catalog, Vec::new()),
            Err(problems) => (Catalog::builtin(), problems),
        };
        let mut webhooks = load_all(&dir.join("webhooks"), &mut problems, |path| {
            EventWebhook::load(path, &catalog)
        });
        if let Some(events) = &settings.events {
            let (qlm, found) = qlm_events::load(events, &dir.join(settings::FILE), &catalog);
            webhooks.extend(qlm);
            problems.extend(found);
        }
        let mut definitions = Definitions {
            dir: dir.to_path_buf(),
            settings,
            searches,
            tasks,
            webhooks,
            catalog,
            catalog_problems,
            problems,
            settings_problems,
        };
        definitions.check_references();
        definitions
    }

    /// Fails unless the configuration folder exists and holds `tasks/`, `searches/` or
    /// `webhooks/`.
    pub fn ensure_folder(&self) -> anyhow::Result<()> {
        let shown = self.ensure_folder_exists()?;
        // QLM's shape: the webhooks in keyhook.toml's `[events]`, the user's events beside.
        let events =
            self.settings.events.is_some() || shown.join(crate::events::catalog::FILE).is_file();
        if !events
            && !["tasks", "searches", "webhooks"]
                .iter()
                .any(|folder| shown.join(folder).is_dir())
        {
            anyhow::bail!(
                "configuration folder {} has no tasks/, searches/ or webhooks/; point --config \
                 (or KEYHOOK_CONFIG) at the folder that holds them (`keyhook demo` shows the \
                 layout)",
                shown.display()
            );
        }
        Ok(())
    }

    /// Fails unless the configuration folder exists (and is a folder); the folder, as shown.
    pub fn ensure_folder_exists(&self) -> anyhow::Result<&Path> {
        let shown = if self.dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.dir
        };
        match std::fs::metadata(shown) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => anyhow::bail!(
                "configuration folder {} is not a folder; point --config (or KEYHOOK_CONFIG) \
                 at the folder that holds tasks/ and searches/",
                shown.display()
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "configuration folder {} does not exist; point --config (or KEYHOOK_CONFIG) at \
                 the folder that holds tasks/ and searches/",
                shown.display()
            ),
            Err(error) => anyhow::bail!(
                "configuration folder {} cannot be used: {error}; point --config (or \
                 KEYHOOK_CONFIG) at the folder that holds tasks/ and searches/",
                shown.display()
            ),
        }
        Ok(shown)
    }

    /// The search named by file stem or by `name` (case-insensitively).
    pub fn search(&self, key: &str) -> Option<&Search> {
        find(&self.searches, key, |search| (&search.stem, &search.name))
    }

    /// The task named by file stem or by `name` (case-insensitively).
    pub fn task(&self, key: &str) -> Option<&Task> {
        find(&self.tasks, key, |task| (&task.stem, &task.name))
    }

    /// The task whose file stem is `stem`, exactly: how the state names the task a run or a
    /// delivery belongs to. Never by `name`: another task called like a removed task's stem
    /// must not get its deliveries.
    pub fn task_by_stem(&self, stem: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.stem == stem)
    }

    /// The webhook named by file stem or by `name` (case-insensitively).
    pub fn webhook(&self, key: &str) -> Option<&EventWebhook> {
        find(&self.webhooks, key, |webhook| {
            (&webhook.stem, &webhook.name)
        })
    }

    /// The active webhooks subscribed to `event` (any of its names) in `environment`, in
    /// list order. The global `webhooks_enabled` is not applied here: dispatch applies it,
    /// as runs of tasks do.
    pub fn webhooks_for(&self, event: &str, environment: Environment) -> Vec<&EventWebhook> {
        let event = crate::events::names::canonical(event, &self.catalog)
            .unwrap_or_else(|| event.to_string());
        self.webhooks
            .iter()
            .filter(|webhook| webhook.fires_for(&event, environment))
            .collect()
    }

    /// The search a task runs.
    pub fn search_of(&self, task: &Task) -> Option<&Search> {
        self.search(&task.search)
    }

    /// The problem that keeps the search file `searches/<stem>.toml` from loading, if any.
    pub fn broken_search(&self, stem: &str) -> Option<FileProblems<'_>> {
        self.broken("searches", stem)
    }

    /// The problems that keep `<folder>/<stem>.toml` from loading, if any.
    pub fn broken(&self, folder: &str, stem: &str) -> Option<FileProblems<'_>> {
        let file = self.dir.join(folder).join(format!("{stem}.toml"));
        self.file_problems(&file)
    }

    /// Every problem of `file`, if it has any.
    pub fn file_problems(&self, file: &Path) -> Option<FileProblems<'_>> {
        let problems = self.problems_in(file);
        (!problems.is_empty()).then_some(FileProblems(problems))
    }

    /// Problems with event webhooks: files under `webhooks/` that could not be loaded, QLM's
    /// `[events]` in `keyhook.toml`, and a broken `events.toml`.
    pub fn webhook_problems(&self) -> Vec<&Problem> {
        let folder = self.dir.join("webhooks");
        let settings = self.dir.join(settings::FILE);
        self.problems
            .iter()
            .filter(|problem| {
                problem.file.starts_with(&folder)
                    || (problem.file == settings && !self.settings_problems.contains(problem))
            })
            .chain(&self.catalog_problems)
            .collect()
    }

    /// The configuration folder, for messages.
    pub fn dir_name(&self) -> String {
        if self.dir.as_os_str().is_empty() {
            "the current folder".into()
        } else {
            self.dir.display().to_string()
        }
    }

    /// How many files have problems (a file may have several).
    pub fn files_with_problems(&self) -> usize {
        let files: std::collections::BTreeSet<&PathBuf> =
            self.problems.iter().map(|problem| &problem.file).collect();
        files.len()
    }

    /// The problems that concern `file`.
    pub fn problems_in(&self, file: &Path) -> Vec<&Problem> {
        self.problems.iter().filter(|p| p.file == file).collect()
    }

    fn check_references(&mut self) {
        let mut found = Vec::new();
        for task in &self.tasks {
            if self.search(&task.search).is_none() && self.broken_search(&task.search).is_none() {
                found.push(Problem {
                    file: task.path.clone(),
                    message: format!(
                        "field `search`: no search is called `{}` (searches: {})",
                        task.search,
                        stems_and_names(&self.searches, |s| (&s.stem, &s.name))
                    ),
                });
            }
        }
        found.extend(duplicates(&self.searches, |s| (&s.name, &s.path)));
        found.extend(duplicates(&self.tasks, |t| (&t.name, &t.path)));
        found.extend(shadowed(&self.searches, |s| (&s.stem, &s.name, &s.path)));
        found.extend(shadowed(&self.tasks, |t| (&t.stem, &t.name, &t.path)));
        found.extend(duplicates(&self.webhooks, |w| (&w.name, &w.path)));
        // A webhook's deliveries are kept under its name, a task's under its file name.
        for webhook in &self.webhooks {
            if let Some(task) = self.tasks.iter().find(|task| task.stem == webhook.name) {
                found.push(Problem {
                    file: webhook.path.clone(),
                    message: format!(
                        "field `name`: `{}` is also the file name of task {}: keyhook keeps a \
                         task's deliveries under its file name and a webhook's under its name, \
                         so they must differ; rename the webhook",
                        webhook.name,
                        task.path.display()
                    ),
                });
            }
        }
        self.problems.extend(found);
    }
}

fn find<'a, T>(
    items: &'a [T],
    key: &str,
    names: impl Fn(&T) -> (&String, &String),
) -> Option<&'a T> {
    let key = key.trim();
    let key = key.strip_suffix(".toml").unwrap_or(key);
    items
        .iter()
        .find(|item| names(item).0 == key)
        .or_else(|| items.iter().find(|item| same_name(names(item).1, key)))
}

/// Whether two names are one, case aside: `Überfällig` and `ÜBERFÄLLIG` too, not only ASCII.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

/// Comma-separated names for an error message, or "none".
pub fn names<T>(items: &[T], name: impl Fn(&T) -> &String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|item| name(item).as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Comma-separated file stems, each with its `name` when that is not the stem (`overdue
/// (Überfällig)`): a task or a search may be called by either, so a message that lists what
/// there is shows both. "none" when there is nothing.
pub fn stems_and_names<T>(items: &[T], key: impl Fn(&T) -> (&String, &String)) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|item| match key(item) {
            (stem, name) if same_name(stem, name) => stem.clone(),
            (stem, name) => format!("{stem} ({name})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names that two files share: each of them is refused, naming the other, so a reference to
/// the name runs neither rather than whichever file sorts first.
fn duplicates<T>(items: &[T], key: impl Fn(&T) -> (&String, &PathBuf)) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let (name, path) = key(item);
        let other = items
            .iter()
            .enumerate()
            .find(|(other_index, other)| *other_index != index && same_name(key(other).0, name));
        if let Some((_, other)) = other {
            problems.push(Problem {
                file: path.clone(),
                message: format!(
                    "field `name`: `{name}` is also the name in {}; names must be unique \
                     (neither file is used until one is renamed)",
                    key(other).1.display()
                ),
            });
        }
    }
    problems
}

/// Names that another file's stem takes first: a reference (`search = "x"`, `run-task x`)
/// looks for a file stem before a name, so such a name could never be reached by itself.
fn shadowed<T>(items: &[T], key: impl Fn(&T) -> (&String, &String, &PathBuf)) -> Vec<Problem> {
    let mut problems = Vec::new();
    for item in items {
        let (_, name, path) = key(item);
        let other = items.iter().find(|other| {
            let (stem, _, other_path) = key(other);
            stem == name && other_path != path
        });
        if let Some(other) = other {
            problems.push(Problem {
                file: path.clone(),
                message: format!(
                    "field `name`: `{name}` is the file name of {}, which a reference to \
                     `{name}` means; rename one of them",
                    key(other).2.display()
                ),
            });
        }
    }
    problems
}

/// Loads every `*.toml` in `dir`, sorted by file name; a missing folder holds nothing.
fn load_all<T>(
    dir: &Path,
    problems: &mut Vec<Problem>,
    load: impl Fn(&Path) -> Result<T, Vec<Problem>>,
) -> Vec<T> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| is_definition_file(path))
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(why) = crate::file_access::dangling_link(dir) {
                problems.push(Problem {
                    file: dir.to_path_buf(),
                    message: why,
                });
            }
            Vec::new()
        }
        Err(error) => {
            problems.push(Problem {
                file: dir.to_path_buf(),
                message: format!("could not read the folder: {error}"),
            });
            Vec::new()
        }
    };
    files.sort();
    files
        .iter()
        .filter_map(|file| load(file).map_err(|found| problems.extend(found)).ok())
        .collect()
}

/// A file a definitions folder reads: `*.toml`, not hidden, not a folder.
pub fn is_definition_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "toml") && !is_hidden(path) && !path.is_dir()
}

/// What in a definitions folder looks like a definition but is not read, and why: for `check`
/// to say, since a file skipped without a word is a task that never runs. A name like one
/// (`x.TOML`, `x.tml`, `x.toml.bak`, `x.toml~`), or a subfolder holding `*.toml` files; not
/// the secret and certificate files that sit beside the definitions (`renewals.secret`,
/// `certs/`), nor hidden files.
pub fn not_read(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut skipped: Vec<(PathBuf, &'static str)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| !is_hidden(path) && !is_definition_file(path))
        .filter_map(|path| {
            if path.is_dir() {
                let holds_toml = std::fs::read_dir(&path).is_ok_and(|mut inner| {
                    inner.any(|e| e.is_ok_and(|e| is_definition_file(&e.path())))
                });
                return holds_toml
                    .then_some((path, "a folder: definitions in subfolders are not read"));
            }
            let name = path.file_name()?.to_string_lossy().to_lowercase();
            let like = name.contains(".toml") || name.ends_with(".tml");
            like.then_some((
                path,
                "not read: only `*.toml` files are (lower-case `.toml`)",
            ))
        })
        .collect();
    skipped.sort();
    skipped
}

/// A file whose name starts with a dot: an editor's lock or backup (`.#renewals.toml`), not
/// a definition.
pub fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

/// The field errors of one file, gathered so that `check` says them all at once rather than one
/// per fix: each field is read by [`Fields::take`], which keeps its value or its problem.
pub struct Fields<'p> {
    path: &'p Path,
    pub problems: Vec<Problem>,
}

impl<'p> Fields<'p> {
    pub fn new(path: &'p Path) -> Fields<'p> {
        Fields {
            path,
            problems: Vec::new(),
        }
    }

    /// Keeps a problem found without a value to read.
    pub fn say(&mut self, message: String) {
        self.problems.push(Problem {
            file: self.path.to_path_buf(),
            message,
        });
    }

    /// The value, or `None` with its problem (`message`) kept.
    pub fn take<T, E>(
        &mut self,
        result: Result<T, E>,
        message: impl FnOnce(E) -> String,
    ) -> Option<T> {
        result.map_err(|error| self.say(message(error))).ok()
    }

    /// The value, or `None` with each of its problems kept.
    pub fn take_each<T, E>(
        &mut self,
        result: Result<T, Vec<E>>,
        message: impl Fn(E) -> String,
    ) -> Option<T> {
        result
            .map_err(|errors| errors.into_iter().for_each(|e| self.say(message(e))))
            .ok()
    }
}

/// Reads and parses one TOML file; errors name the file and, from toml, the line and field:
/// every key that does not fit, not only the first ([`toml_error::parse_partly`]).
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Vec<Problem>> {
    read_toml_text(path).map(|(value, _)| value)
}

/// [`read_toml`], and the file's text.
pub fn read_toml_text<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(T, String), Vec<Problem>> {
    match read_toml_parts(path)? {
        (Some(value), said, text) if said.is_empty() => Ok((value, text)),
        (_, said, _) => Err(said),
    }
}

/// [`read_toml`] for a file whose fields are checked one by one: the value made without the
/// entries that do not fit (when it can be made), and their problems, so the other fields'
/// problems are said with them.
pub fn read_toml_partly<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(T, Vec<Problem>), Vec<Problem>> {
    match read_toml_parts(path)? {
        (Some(value), said, _) => Ok((value, said)),
        (None, said, _) => Err(said),
    }
}

/// The file read and parsed as far as it goes ([`toml_error::parse_partly`]): the value, the
/// problems, the text; an error when it cannot be read at all.
type Parts<T> = (Option<T>, Vec<Problem>, String);

fn read_toml_parts<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Parts<T>, Vec<Problem>> {
    let problem = |message: String| Problem {
        file: path.to_path_buf(),
        message,
    };
    let text = read_definition(path).map_err(|message| vec![problem(message)])?;
    let (value, said) = toml_error::parse_partly(&text);
    Ok((value, said.into_iter().map(problem).collect(), text))
}

/// A definition file is at most this long: a link to `/dev/zero` must not take the memory.
const MAX_DEFINITION_BYTES: u64 = 4 << 20;

/// A definition file's text. Only a regular file (or a link to one) is read: a FIFO or a
/// device named `*.toml` would hang `run-due` (every minute, from cron) or fill the memory.
fn read_definition(path: &Path) -> Result<String, String> {
    use crate::file_access::{Refused, read_regular, refusal};
    let bytes =
        read_regular(path, MAX_DEFINITION_BYTES).map_err(|error| match refusal(&error) {
            Some(Refused::NotRegular) => "is not a regular file (a FIFO, a device or a folder); \
             keyhook reads definitions from regular files only: remove it or rename it"
                .into(),
            Some(Refused::TooLong(_)) => format!(
                "is longer than {} MiB, far beyond any definition; is it the right file?",
                MAX_DEFINITION_BYTES >> 20
            ),
            None => format!("could not read the file: {error}"),
        })?;
    String::from_utf8(bytes).map_err(|error| {
        format!(
            "could not read the file: it is not UTF-8 text (byte {} is not)",
            error.utf8_error().valid_up_to()
        )
    })
}

/// The file's stem, the name a definition is referred to by on the command line.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

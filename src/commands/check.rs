//! `keyhook check`: every definition file, placeholder, SQL statement and secret, validated;
//! every problem printed, not just the first.

use std::io::Write;

use super::Context;
use super::dry_run::placeholder_values;
use crate::definitions::Problem;
use crate::definitions::secret::SecretSource;
use crate::error::{Exit, Result};

pub fn run(context: &Context, out: &mut impl Write) -> Result {
    let definitions = &context.definitions;
    let mut problems: Vec<Problem> = definitions.problems.clone();
    match context.license_db() {
        Ok(db) => {
            for search in &definitions.searches {
                if let Err(error) = db.check(&search.template) {
                    problems.push(Problem {
                        file: search.path.clone(),
                        message: format!("field `sql`: {error}"),
                    });
                }
            }
        }
        Err(error) => problems.push(Problem {
            file: context.db_path.clone(),
            message: format!("searches cannot be checked: {error}"),
        }),
    }
    for task in &definitions.tasks {
        if let Err(error) = task.webhook.secret.resolve() {
            problems.push(Problem {
                file: task.path.clone(),
                message: format!("[webhook]: {error}"),
            });
        }
    }
    problems.extend(bad_rows(context));
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    for problem in &problems {
        writeln!(out, "error: {problem}")?;
    }
    for task in &definitions.tasks {
        if matches!(task.webhook.secret, SecretSource::Literal(_)) && readable_by_others(&task.path)
        {
            writeln!(
                out,
                "warning: {}: holds a literal `secret` and other users can read the file; \
                 chmod 600 it, or use secret_env, secret_file or secret_credential",
                task.path.display()
            )?;
        }
    }
    let (searches, tasks) = (definitions.searches.len(), definitions.tasks.len());
    if problems.is_empty() {
        writeln!(out, "ok: {searches} searches and {tasks} tasks are valid")?;
        return Ok(Exit::Success);
    }
    writeln!(out, "{} problem(s) found", problems.len())?;
    Ok(Exit::Config)
}

/// Every license row that a task's search reaches now and that a run could not read (and so
/// would record as bad and not send), one problem each, against the task's file.
fn bad_rows(context: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Ok(mut db) = context.license_db() else {
        return problems;
    };
    for task in &context.definitions.tasks {
        let Ok(search) = context.search_of(task) else {
            continue;
        };
        let last_run = super::last_run_for_preview(context, task).ok().flatten();
        let Ok(values) = placeholder_values(context, Some(task), search, last_run) else {
            continue;
        };
        let _ = db.for_each(&search.template, &values, |row| {
            if let Err(error) = row {
                problems.push(Problem {
                    file: task.path.clone(),
                    message: format!(
                        "search `{}` reaches a license row a run cannot send: {error}",
                        search.name
                    ),
                });
            }
            true
        });
    }
    problems
}

/// Whether users other than the owner may read `path` (group or world read bit).
fn readable_by_others(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|metadata| metadata.permissions().mode() & 0o044 != 0)
}

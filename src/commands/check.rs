//! `keyhook check`: every definition file, placeholder, SQL statement and secret, validated;
//! every problem printed, not just the first.

use std::io::Write;

use super::Context;
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

/// Whether users other than the owner may read `path` (group or world read bit).
fn readable_by_others(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|metadata| metadata.permissions().mode() & 0o044 != 0)
}

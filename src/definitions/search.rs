//! A saved search: `searches/<stem>.toml` with a name, an SQL condition and a description.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Problem, read_toml, stem};
use crate::licenses::macros::{self, Template};

/// The TOML form of a search.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchFile {
    /// What users and task files call the search.
    name: String,
    /// An SQL condition over the `LicenseKeys` table, with date placeholders.
    sql: String,
    /// What the search is for.
    #[serde(default)]
    description: Option<String>,
}

/// A loaded search, its placeholders already parsed.
#[derive(Debug, Clone)]
pub struct Search {
    pub stem: String,
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// The condition as written.
    pub sql: String,
    pub template: Template,
}

impl Search {
    /// Loads and validates one search file.
    pub fn load(path: &Path) -> Result<Search, Problem> {
        let file: SearchFile = read_toml(path)?;
        let problem = |message: String| Problem {
            file: path.to_path_buf(),
            message,
        };
        if file.name.trim().is_empty() {
            return Err(problem("field `name` is empty".into()));
        }
        if file.sql.trim().is_empty() {
            return Err(problem("field `sql` is empty".into()));
        }
        let template =
            macros::parse(&file.sql).map_err(|error| problem(format!("field `sql`: {error}")))?;
        Ok(Search {
            stem: stem(path),
            path: path.to_path_buf(),
            name: file.name,
            description: file.description,
            sql: file.sql,
            template,
        })
    }
}

//! The boundary between a search and the database it runs on: what a search needs (check a
//! template, count, stream rows as licenses), with SQLite (`query.rs`) and PostgreSQL
//! (`postgres.rs`) behind it. `--db` picks one: a `postgres://` URL, else a SQLite file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDateTime;

use super::license_info::{InfoBuffer, License, LicenseRow, RowError};
use super::macros::Template;
use super::query::{LicenseDb, QueryError};

/// Where the license database is, as `--db` (`KEYHOOK_DB`) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server, as a libpq-style URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL is a server; anything else is a file path.
    pub fn parse(db: &Path) -> Location {
        let text = db.to_string_lossy();
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(text.into_owned())
        } else {
            Location::Sqlite(db.to_path_buf())
        }
    }

    /// How messages name it: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => super::postgres::connect::redact(url),
        }
    }
}

/// One license database: a search's template checked, counted or streamed as licenses.
pub trait LicenseDatabase: Send {
    /// How messages name the database (a path, or a URL without its password).
    fn describe(&self) -> String;

    /// Prepares the search without running it: syntax, columns and what it may touch.
    fn check(&mut self, template: &Template) -> Result<(), QueryError>;

    /// Counts the matches.
    fn count(&mut self, template: &Template, values: &[NaiveDateTime]) -> Result<u64, QueryError>;

    /// Calls `each` for every match until it returns `false`; returns how many matches were
    /// passed to it. A bad row is passed as an error and the search goes on.
    fn each_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        each: &mut dyn FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError>;

    /// [`LicenseDatabase::each_row`], each match as its row holds it: what a run's bodies are
    /// written from. The same matches, the same bad rows. With `packed`, each `LicenseInfo`
    /// comes packed ([`InfoBuffer::packing`]).
    fn each_license_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        packed: bool,
        each: &mut dyn FnMut(Result<LicenseRow, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        let mut info = InfoBuffer::for_rows(packed);
        self.each_row(template, values, &mut |license| match license {
            Ok(license) => each(Ok(license.as_row(&mut info))),
            Err(bad) => each(Err(bad)),
        })
    }

    /// Why the connection could change the license table, if it could: a read-only role is
    /// the real guarantee that a search cannot write. `None` when it cannot (or for a file).
    fn write_warning(&mut self) -> Result<Option<String>, QueryError> {
        Ok(None)
    }

    /// Why some stored dates may compare wrongly with the placeholders of `searches` (their
    /// SQL), if they may: dates kept as text in more than one shape (a SQLite database; `None` on a server, whose
    /// dates are typed).
    fn date_warning(&mut self, _searches: &[&str]) -> Result<Option<String>, QueryError> {
        Ok(None)
    }
}

impl dyn LicenseDatabase + '_ {
    /// [`LicenseDatabase::each_row`] with a closure.
    pub fn for_each(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        mut each: impl FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        self.each_row(template, values, &mut each)
    }
}

/// Opens the license database at `location` read-only; `deadline` bounds every search.
/// Only a `postgres://` location connects to a server.
pub fn open(
    location: &Location,
    deadline: Duration,
) -> Result<Box<dyn LicenseDatabase>, QueryError> {
    Ok(match location {
        Location::Sqlite(path) => Box::new(LicenseDb::open(path, deadline)?),
        Location::Postgres(url) => Box::new(super::postgres::PgLicenseDb::open(url, deadline)?),
    })
}

impl LicenseDatabase for LicenseDb {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn check(&mut self, template: &Template) -> Result<(), QueryError> {
        LicenseDb::check(self, template)
    }

    fn count(&mut self, template: &Template, values: &[NaiveDateTime]) -> Result<u64, QueryError> {
        LicenseDb::count(self, template, values)
    }

    fn each_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        each: &mut dyn FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        LicenseDb::for_each(self, template, values, each)
    }

    fn each_license_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        packed: bool,
        each: &mut dyn FnMut(Result<LicenseRow, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        LicenseDb::for_each_row(self, template, values, packed, each)
    }

    fn date_warning(&mut self, searches: &[&str]) -> Result<Option<String>, QueryError> {
        LicenseDb::date_warning(self, searches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_servers() {
        let cases = [
            ("licenses.db", false),
            ("postgres://u@h/db", true),
            ("POSTGRESQL://h/db?sslmode=require", true),
            ("./postgres://odd", false),
            ("postgres:/one-slash", false),
        ];
        for (db, server) in cases {
            let location = Location::parse(Path::new(db));
            assert_eq!(matches!(location, Location::Postgres(_)), server, "{db}");
        }
    }
}

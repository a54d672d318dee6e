//! Date placeholders (QLM's "macros") in a search's SQL: the grammar, and the values they take.
//!
//! A placeholder becomes a numbered SQL parameter (`?1`, `?2`, ...) bound to wall-clock text
//! `YYYY-MM-DDTHH:MM:SS`, the format dates are stored in; it is never pasted into the SQL.

use chrono::{Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use chrono_tz::Tz;

use super::schema;
use crate::schedule::clock;

/// The text format of every date keyhook binds or sends.
pub const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// What a placeholder counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Now,
    TodayStart,
    TodayEnd,
    YesterdayStart,
    YesterdayEnd,
    ThisMonthStart,
    ThisMonthEnd,
    LastMonthStart,
    LastMonthEnd,
    /// QLM's `[date]`: when the task last ran.
    LastRun,
}

/// Every placeholder name, as written between brackets.
pub const NAMES: [(&str, Base); 10] = [
    ("now", Base::Now),
    ("today_start", Base::TodayStart),
    ("today_end", Base::TodayEnd),
    ("yesterday_start", Base::YesterdayStart),
    ("yesterday_end", Base::YesterdayEnd),
    ("this_month_start", Base::ThisMonthStart),
    ("this_month_end", Base::ThisMonthEnd),
    ("last_month_start", Base::LastMonthStart),
    ("last_month_end", Base::LastMonthEnd),
    ("date", Base::LastRun),
];

/// The unit of a placeholder's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Days,
    Hours,
    Minutes,
    Seconds,
    Months,
}

/// One placeholder found in a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// As written, brackets included: `[today_start + 30]`.
    pub text: String,
    pub base: Base,
    pub offset: i64,
    pub unit: Unit,
    pub line: usize,
    pub column: usize,
}

/// A search's SQL with its placeholders replaced by numbered parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub sql: String,
    pub placeholders: Vec<Placeholder>,
}

/// What the placeholders are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The wall-clock "now" in the configured zone.
    pub now: NaiveDateTime,
    pub zone: Tz,
    /// When the task last ran (wall clock in `zone`), for `[date]`.
    pub last_run: Option<NaiveDateTime>,
}

/// Why a search's placeholders could not be read or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacroError {
    #[error(
        "unknown placeholder `{text}` at line {line}, column {column} \
         (known: [now], [today_start], [today_end], [yesterday_start], [yesterday_end], \
         [this_month_start], [this_month_end], [last_month_start], [last_month_end], [date])"
    )]
    Unknown {
        text: String,
        line: usize,
        column: usize,
    },
    #[error(
        "malformed placeholder `{text}` at line {line}, column {column}: \
         expected a name, then optionally + or - a number and a unit d, h, m, s or M \
         (e.g. [today_start+30], [now-2h])"
    )]
    Malformed {
        text: String,
        line: usize,
        column: usize,
    },
    #[error("`[` at line {line}, column {column} is never closed by `]`")]
    Unclosed { line: usize, column: usize },
    /// What would make the search more (or other) than one condition: a `)` closing what
    /// it never opened, a `(` or `/*` never closed, a `;`, an SQL parameter of its own.
    #[error("{what} at line {line}, column {column}{why}")]
    Structure {
        what: String,
        why: &'static str,
        line: usize,
        column: usize,
    },
    #[error(
        "placeholder `{text}` at line {line}, column {column} goes outside the calendar \
         (dates are written YYYY-MM-DDTHH:MM:SS: years 0000 to 9999)"
    )]
    OutOfRange {
        text: String,
        line: usize,
        column: usize,
    },
    #[error(
        "placeholder `{text}` at line {line}, column {column} is the task's last run, \
         which only a task has"
    )]
    NoLastRun {
        text: String,
        line: usize,
        column: usize,
    },
}

/// A position within a search's SQL moved to the file's: the SQL's first character is at
/// line `origin.0`, column `origin.1` of the file (its line 2 starts a file line).
fn moved(line: &mut usize, column: &mut usize, origin: (usize, usize)) {
    if *line == 1 {
        *column += origin.1 - 1;
    }
    *line += origin.0 - 1;
}

impl MacroError {
    /// The error, its line and column counted in the file rather than in the SQL (see
    /// [`Template::moved_to`]).
    pub fn moved_to(mut self, origin: (usize, usize)) -> MacroError {
        match &mut self {
            MacroError::Unknown { line, column, .. }
            | MacroError::Malformed { line, column, .. }
            | MacroError::Unclosed { line, column }
            | MacroError::Structure { line, column, .. }
            | MacroError::OutOfRange { line, column, .. }
            | MacroError::NoLastRun { line, column, .. } => moved(line, column, origin),
        }
        self
    }
}

impl Template {
    /// The template, its placeholders' lines and columns counted in the file whose SQL
    /// starts at line `origin.0`, column `origin.1`: errors about them then point into the
    /// file, as TOML's own do.
    pub fn moved_to(mut self, origin: (usize, usize)) -> Template {
        for placeholder in &mut self.placeholders {
            moved(&mut placeholder.line, &mut placeholder.column, origin);
        }
        self
    }
}

/// Finds the placeholders in `sql`, skipping string literals, quoted identifiers and comments.
/// `[Column]` naming a license column stays as SQL's bracket-quoted identifier. The rest must
/// be one condition ([`Shape`]).
pub fn parse(sql: &str) -> Result<Template, MacroError> {
    let mut scanner = Scanner::new(sql);
    let mut out = String::with_capacity(sql.len());
    let mut placeholders = Vec::new();
    let mut shape = Shape::default();
    while let Some(c) = scanner.next() {
        match c {
            '\'' | '"' | '`' => scanner.copy_quoted(c, &mut out),
            '-' if scanner.peek() == Some('-') => {
                scanner.copy_until("\n", c, &mut out);
            }
            '/' if scanner.peek() == Some('*') => {
                let at = scanner.position_of_last();
                if !scanner.copy_until("*/", c, &mut out) {
                    return Err(structure(at, "`/*`".into(), NEVER_CLOSED_COMMENT));
                }
            }
            '[' => {
                let (line, column) = scanner.position_of_last();
                let inner = scanner
                    .take_until(']')
                    .ok_or(MacroError::Unclosed { line, column })?;
                if schema::is_column(inner.trim()) {
                    out.push('[');
                    out.push_str(inner);
                    out.push(']');
                    continue;
                }
                let placeholder = read_placeholder(inner, line, column)?;
                placeholders.push(placeholder);
                out.push_str(&format!("?{}", placeholders.len()));
            }
            _ => {
                shape.check(c, &scanner)?;
                out.push(c);
            }
        }
        shape.before = c;
    }
    shape.finish()?;
    Ok(Template {
        sql: out,
        placeholders,
    })
}

/// What keeps a search one condition, outside strings, quoted names and comments: its
/// parentheses balance (a `)` too many would close the query's own), no `;`, and no SQL
/// parameter of its own.
#[derive(Default)]
struct Shape {
    /// Where each `(` not closed yet opened.
    open: Vec<(usize, usize)>,
    /// The character before this one.
    before: char,
}

impl Shape {
    fn check(&mut self, c: char, scanner: &Scanner) -> Result<(), MacroError> {
        let at = scanner.position_of_last();
        match c {
            '(' => self.open.push(at),
            ')' if self.open.pop().is_none() => {
                return Err(structure(at, "`)`".into(), CLOSES_NOTHING));
            }
            ';' => return Err(structure(at, "`;`".into(), ONE_CONDITION)),
            '?' | ':' | '@' | '$' if is_parameter(c, self.before, scanner.rest()) => {
                let name: String = scanner
                    .rest()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                return Err(structure(at, format!("`{c}{name}`"), HAND_PARAMETER));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), MacroError> {
        match self.open.first() {
            Some(&at) => Err(structure(at, "`(`".into(), " is never closed by `)`")),
            None => Ok(()),
        }
    }
}

/// The error about `what`, at line and column `at`.
fn structure(at: (usize, usize), what: String, why: &'static str) -> MacroError {
    MacroError::Structure {
        what,
        why,
        line: at.0,
        column: at.1,
    }
}

const NEVER_CLOSED_COMMENT: &str = " is never closed by `*/`";
const CLOSES_NOTHING: &str = " closes a parenthesis the search never opened: a search is one \
     condition, the part of a query after WHERE";
const ONE_CONDITION: &str = ": a search is one condition, the part of a query after WHERE, \
     not statements";
const HAND_PARAMETER: &str = " is an SQL parameter, which nothing binds (it would read as \
     NULL): write the value, or a placeholder such as [today_start]";

/// Whether `c`, after `before` and followed by `rest`, starts an SQL parameter (`?`, `?2`,
/// `:name`, `@name`, `$name`) rather than part of a name (`a$b`) or PostgreSQL's `::` cast.
fn is_parameter(c: char, before: char, rest: &str) -> bool {
    let next = rest.chars().next();
    // SQLite reads `:1` as a name too.
    let name_start = next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '_');
    match c {
        '?' => true,
        ':' => before != ':' && next != Some(':') && name_start,
        '$' => !(before.is_alphanumeric() || before == '_' || before == '$') && name_start,
        _ => name_start,
    }
}

fn read_placeholder(inner: &str, line: usize, column: usize) -> Result<Placeholder, MacroError> {
    let text = format!("[{inner}]");
    let trimmed = inner.trim();
    let name_end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    let name = &trimmed[..name_end];
    let Some(&(_, base)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
        return Err(MacroError::Unknown { text, line, column });
    };
    let malformed = || MacroError::Malformed {
        text: text.clone(),
        line,
        column,
    };
    let (offset, unit) = read_offset(trimmed[name_end..].trim()).ok_or_else(malformed)?;
    Ok(Placeholder {
        text: text.clone(),
        base,
        offset,
        unit,
        line,
        column,
    })
}

/// Reads `` (nothing), `+30`, `- 3M`, `+5 d`.
fn read_offset(rest: &str) -> Option<(i64, Unit)> {
    if rest.is_empty() {
        return Some((0, Unit::Days));
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let rest = rest.trim_start();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number: i64 = rest[..digits_end].parse().ok()?;
    let unit = match rest[digits_end..].trim() {
        "" | "d" | "D" => Unit::Days,
        "h" | "H" => Unit::Hours,
        "m" => Unit::Minutes,
        "s" | "S" => Unit::Seconds,
        "M" => Unit::Months,
        _ => return None,
    };
    Some((sign * number, unit))
}

impl Template {
    /// The value of every placeholder, in parameter order.
    pub fn values(&self, context: &Context) -> Result<Vec<NaiveDateTime>, MacroError> {
        self.placeholders
            .iter()
            .map(|placeholder| placeholder.value(context))
            .collect()
    }
}

impl Placeholder {
    /// The wall-clock time this placeholder stands for.
    pub fn value(&self, context: &Context) -> Result<NaiveDateTime, MacroError> {
        let base = self
            .base_value(context)
            .ok_or_else(|| MacroError::NoLastRun {
                text: self.text.clone(),
                line: self.line,
                column: self.column,
            })?;
        // The value is written as `YYYY-MM-DDTHH:MM:SS` and compared as text: a year outside
        // 0000-9999 would take a sign (`+10240-...`) and sort before every real date.
        let shifted = shift(base, self.offset, self.unit, context.zone)
            .filter(|at| (0..=9999).contains(&at.year()));
        shifted.ok_or_else(|| MacroError::OutOfRange {
            text: self.text.clone(),
            line: self.line,
            column: self.column,
        })
    }

    fn base_value(&self, context: &Context) -> Option<NaiveDateTime> {
        let today = context.now.date();
        let first = today.with_day(1)?;
        let last_month_first = first.checked_sub_months(Months::new(1))?;
        Some(match self.base {
            Base::Now => context.now.with_nanosecond(0)?,
            Base::TodayStart => start_of(today),
            Base::TodayEnd => end_of(today),
            Base::YesterdayStart => start_of(today.pred_opt()?),
            Base::YesterdayEnd => end_of(today.pred_opt()?),
            Base::ThisMonthStart => start_of(first),
            Base::ThisMonthEnd => end_of(first.checked_add_months(Months::new(1))?.pred_opt()?),
            Base::LastMonthStart => start_of(last_month_first),
            Base::LastMonthEnd => end_of(first.pred_opt()?),
            Base::LastRun => context.last_run?.with_nanosecond(0)?,
        })
    }
}

/// QLM's "start of day" is one second past midnight.
fn start_of(day: NaiveDate) -> NaiveDateTime {
    day.and_time(NaiveTime::from_hms_opt(0, 0, 1).unwrap_or_default())
}

fn end_of(day: NaiveDate) -> NaiveDateTime {
    day.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default())
}

/// Days and months move the calendar (the wall-clock time stays); hours, minutes and seconds
/// are elapsed time, so they cross a DST change as a clock on the wall would.
fn shift(base: NaiveDateTime, offset: i64, unit: Unit, zone: Tz) -> Option<NaiveDateTime> {
    let magnitude = offset.unsigned_abs();
    match unit {
        Unit::Days if offset >= 0 => base.checked_add_days(Days::new(magnitude)),
        Unit::Days => base.checked_sub_days(Days::new(magnitude)),
        Unit::Months => {
            let months = Months::new(u32::try_from(magnitude).ok()?);
            if offset >= 0 {
                base.checked_add_months(months)
            } else {
                base.checked_sub_months(months)
            }
        }
        Unit::Hours => elapsed(base, Duration::try_hours(offset)?, zone),
        Unit::Minutes => elapsed(base, Duration::try_minutes(offset)?, zone),
        Unit::Seconds => elapsed(base, Duration::try_seconds(offset)?, zone),
    }
}

fn elapsed(base: NaiveDateTime, by: Duration, zone: Tz) -> Option<NaiveDateTime> {
    // A base inside a spring-forward gap is read as if the clock had not been changed yet.
    let instant = clock::resolve_local(base, zone).or_else(|| {
        clock::resolve_local(base + Duration::hours(1), zone).map(|at| at - Duration::hours(1))
    })?;
    Some(instant.checked_add_signed(by)?.naive_local())
}

/// Walks SQL text character by character, tracking line and column for error messages.
struct Scanner<'a> {
    text: &'a str,
    position: usize,
    line: usize,
    column: usize,
    last: (usize, usize),
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            position: 0,
            line: 1,
            column: 1,
            last: (1, 1),
        }
    }

    fn next(&mut self) -> Option<char> {
        let c = self.text[self.position..].chars().next()?;
        self.last = (self.line, self.column);
        self.position += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn position_of_last(&self) -> (usize, usize) {
        self.last
    }

    /// Copies a quoted string or identifier; a doubled quote inside it is an escaped quote.
    fn copy_quoted(&mut self, quote: char, out: &mut String) {
        out.push(quote);
        while let Some(c) = self.next() {
            out.push(c);
            if c == quote {
                if self.peek() == Some(quote) {
                    out.push(quote);
                    self.next();
                } else {
                    return;
                }
            }
        }
    }

    /// Copies up to and including `end`, or to the end of the text: whether `end` came.
    fn copy_until(&mut self, end: &str, first: char, out: &mut String) -> bool {
        out.push(first);
        let rest = &self.text[self.position..];
        // After `/*`, the `*` is the opener's: `/*/` does not close it.
        let from = usize::from(end == "*/").min(rest.len());
        let found = rest[from..].find(end).map(|i| i + from);
        let stop = found.map_or(rest.len(), |i| i + end.len());
        for _ in rest[..stop].chars() {
            if let Some(c) = self.next() {
                out.push(c);
            }
        }
        found.is_some()
    }

    /// The text not read yet.
    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn take_until(&mut self, end: char) -> Option<&'a str> {
        let rest = &self.text[self.position..];
        let stop = rest.find(end)?;
        let inner = &rest[..stop];
        let target = self.position + stop + end.len_utf8();
        while self.position < target {
            self.next();
        }
        Some(inner)
    }
}

#[cfg(test)]
mod tests;

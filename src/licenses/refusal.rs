//! Why a search is refused before or while it runs: what it tried that is not reading the
//! license table (SQLite's authorizer, PostgreSQL's plan and read-only transaction), or SQL
//! that keyhook's PostgreSQL guard cannot vouch for. Worded to follow "the search".

/// What a search tried that it may not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("reads table {0}")]
    ReadsTable(String),
    #[error("calls load_extension")]
    LoadsExtension,
    #[error("runs PRAGMA {0}")]
    Pragma(String),
    #[error("attaches database {0}")]
    Attaches(String),
    #[error("detaches {0}")]
    Detaches(String),
    #[error("changes the schema")]
    ChangesSchema,
    #[error("inserts into {0}")]
    Inserts(String),
    #[error("updates {0}")]
    Updates(String),
    #[error("deletes from {0}")]
    Deletes(String),
    #[error("does something other than read")]
    NotARead,
    /// PostgreSQL refused a write in the read-only transaction, in its words.
    #[error("writes ({0})")]
    Writes(String),
    #[error(
        "uses `$` (dollar quoting or a numbered parameter); write dates as placeholders and \
         strings in single quotes"
    )]
    Dollar,
    /// A quote (`'` or `"`) that is never closed.
    #[error("has an unclosed {0}")]
    UnclosedQuote(char),
    #[error("has an unclosed /* comment")]
    UnclosedComment,
    #[error("has an unclosed [")]
    UnclosedBracket,
    #[error("uses `?`, which is not a placeholder; write dates as placeholders")]
    QuestionMark,
    #[error("uses `{0}`: a name with `$` is not allowed")]
    DollarName(String),
    #[error("uses OPERATOR(...), which could call any function")]
    Operator,
    #[error(
        "calls {schema}.{name}, outside pg_catalog; only built-in functions without side \
         effects may be called"
    )]
    CallsOutsideCatalog { schema: String, name: String },
    #[error(
        "calls {0}(), which is not on keyhook's list of built-in functions without side effects"
    )]
    CallsUnlisted(String),
    #[error("scans function {0}")]
    ScansFunction(String),
}

//! What a search may do on PostgreSQL, checked before it runs. Three layers, each conservative:
//! every name called like a function must be on a list of built-ins without side effects (and
//! resolves in `pg_catalog`, first on the search path); the plan (`EXPLAIN`) may read no
//! relation but the license table; and the search runs in a `READ ONLY` transaction, so a
//! write fails. A role with only SELECT on the license table is the real guarantee: a cast to
//! a user-defined type, for one, runs that type's input function unseen by these checks.

use serde_json::Value;

use super::dialect::Call;
use crate::licenses::refusal::Refusal;
use crate::licenses::schema::TABLE;

/// Keywords written before `(` that call nothing.
const KEYWORDS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "case",
    "cast",
    "coalesce",
    "distinct",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "filter",
    "from",
    "greatest",
    "group",
    "having",
    "in",
    "intersect",
    "is",
    "join",
    "least",
    "like",
    "ilike",
    "limit",
    "not",
    "nullif",
    "offset",
    "on",
    "or",
    "order",
    "over",
    "overlay",
    "partition",
    "position",
    "row",
    "select",
    "similar",
    "some",
    "substring",
    "then",
    "trim",
    "union",
    "using",
    "values",
    "when",
    "where",
    "within",
];

/// Type names written with a modifier (`varchar(10)`) or called as a cast (`date(x)`).
const TYPES: &[&str] = &[
    "bigint",
    "bool",
    "boolean",
    "char",
    "character",
    "date",
    "decimal",
    "float4",
    "float8",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "interval",
    "numeric",
    "real",
    "smallint",
    "text",
    "time",
    "timestamp",
    "varchar",
];

/// Built-in functions that only compute from their arguments (or read the clock).
const FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_length",
    "array_position",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "clock_timestamp",
    "concat",
    "concat_ws",
    "count",
    "current_timestamp",
    "date_part",
    "date_trunc",
    "every",
    "floor",
    "format",
    "initcap",
    "isfinite",
    "justify_days",
    "justify_hours",
    "left",
    "length",
    "localtimestamp",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "max",
    "md5",
    "min",
    "mod",
    "now",
    "num_nonnulls",
    "num_nulls",
    "octet_length",
    "power",
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "rpad",
    "rtrim",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "string_agg",
    "strpos",
    "substr",
    "sum",
    "timezone",
    "to_char",
    "to_date",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "translate",
    "trunc",
    "upper",
];

/// Refuses a call that is not a keyword, a type or a listed built-in, or that names a schema
/// other than `pg_catalog`.
pub fn check_calls(calls: &[Call]) -> Result<(), Refusal> {
    for call in calls {
        let name = call.name.as_str();
        if let Some(schema) = &call.schema
            && schema != "pg_catalog"
        {
            return Err(Refusal::CallsOutsideCatalog {
                schema: schema.clone(),
                name: name.to_string(),
            });
        }
        let known = [KEYWORDS, TYPES, FUNCTIONS]
            .iter()
            .any(|list| list.contains(&name));
        if !known {
            return Err(Refusal::CallsUnlisted(name.to_string()));
        }
    }
    Ok(())
}

/// Refuses a plan (`EXPLAIN (VERBOSE, FORMAT JSON)`) that reads a relation other than the
/// license table in `schema`, or scans a function that is not on the list.
pub fn check_plan(plan: &Value, schema: &str) -> Result<(), Refusal> {
    match plan {
        Value::Array(items) => items.iter().try_for_each(|item| check_plan(item, schema)),
        Value::Object(node) => {
            if let Some(Value::String(relation)) = node.get("Relation Name") {
                let in_schema = node.get("Schema").and_then(Value::as_str);
                let license_table =
                    relation.eq_ignore_ascii_case(TABLE) && in_schema == Some(schema);
                if !license_table {
                    let shown = in_schema.map_or(relation.clone(), |s| format!("{s}.{relation}"));
                    return Err(Refusal::ReadsTable(shown));
                }
            }
            if let Some(Value::String(function)) = node.get("Function Name") {
                let bare = function.rsplit('.').next().unwrap_or(function);
                if !FUNCTIONS.contains(&bare) {
                    return Err(Refusal::ScansFunction(function.clone()));
                }
            }
            node.values()
                .try_for_each(|value| check_plan(value, schema))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(schema: Option<&str>, name: &str) -> Call {
        Call {
            schema: schema.map(str::to_string),
            name: name.into(),
        }
    }

    #[test]
    fn calls_table() {
        let cases = [
            (call(None, "lower"), true),
            (call(None, "in"), true),
            (call(None, "varchar"), true),
            (call(Some("pg_catalog"), "date_trunc"), true),
            (call(None, "pg_sleep"), false),
            (call(None, "set_config"), false),
            (call(None, "query_to_xml"), false),
            (call(None, "nextval"), false),
            (call(None, "pg_advisory_lock"), false),
            (call(Some("public"), "lower"), false),
            (call(None, "Lower"), false),
        ];
        for (call, allowed) in cases {
            assert_eq!(
                check_calls(std::slice::from_ref(&call)).is_ok(),
                allowed,
                "{call:?}"
            );
        }
    }

    #[test]
    fn plans_may_read_only_the_license_table() {
        let own = json!([{"Plan": {"Node Type": "Seq Scan", "Relation Name": "licensekeys",
            "Schema": "s1", "Plans": []}}]);
        assert!(check_plan(&own, "s1").is_ok());
        assert!(check_plan(&own, "s2").is_err());
        let other = json!([{"Plan": {"Node Type": "Hash Join", "Plans": [
            {"Relation Name": "licensekeys", "Schema": "s1"},
            {"Plans": [{"Relation Name": "pg_authid", "Schema": "pg_catalog"}]}]}}]);
        let refused = check_plan(&other, "s1").unwrap_err().to_string();
        assert_eq!(refused, "reads table pg_catalog.pg_authid");
        let scan = json!({"Plan": {"Node Type": "Function Scan", "Function Name": "pg_ls_dir"}});
        assert!(check_plan(&scan, "s1").is_err());
    }
}

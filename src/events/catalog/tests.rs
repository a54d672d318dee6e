use super::*;

fn catalog_with(user: &str) -> Result<Catalog, Vec<Problem>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE), user).unwrap();
    Catalog::load(dir.path())
}

fn messages(problems: Vec<Problem>) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_builtins_are_valid_and_answer_to_both_naming_styles() {
    let catalog = Catalog::builtin();
    assert!(catalog.problems().is_empty(), "{:?}", catalog.problems());
    let cases = [
        ("license_activated", "license.activated"),
        ("license.activated", "license.activated"),
        ("activation.created", "license.activated"),
        ("license_released", "license.deactivated"),
        ("activation.deleted", "license.deactivated"),
        ("license_created", "license.created"),
        ("license_deleted", "license.deleted"),
        ("customer_created", "customer.created"),
        ("customer_modified", "customer.updated"),
        ("customer_deleted", "customer.deleted"),
        ("license.suspended", "license.suspended"),
        ("license.assigned", "license.assigned"),
        ("license.updated", "license.updated"),
        ("product.created", "product.created"),
    ];
    for (asked, canonical) in cases {
        let (_, event) = catalog.find(asked).unwrap_or_else(|| panic!("{asked}"));
        assert_eq!(event.name, canonical, "{asked}");
    }
    assert!(catalog.find("license.expired").is_none());
    assert_eq!(catalog.tables(), ["LicenseKeys", "Customers", "Products"]);
}

#[test]
fn the_builtins_fit_the_schema_keyhook_creates() {
    let conn = Connection::open_in_memory().unwrap();
    crate::licenses::schema::create(&conn).unwrap();
    let problems = Catalog::builtin().problems_in(&conn);
    assert!(problems.is_empty(), "{}", messages(problems));
}

#[test]
fn a_user_source_is_added_after_the_builtins() {
    let catalog = catalog_with(
        r#"
[[source]]
table = "Contracts"
key = "ContractID"
payload = "generic"

[[source.event]]
name = "contract.signed"
operation = "update"
condition = "OLD.SignedOn IS NULL AND NEW.SignedOn IS NOT NULL"
"#,
    )
    .unwrap();
    let (source, event) = catalog.find("contract_signed").unwrap();
    assert_eq!(
        (source.table.as_str(), event.name.as_str()),
        ("Contracts", "contract.signed")
    );
    assert!(source.origin.ends_with("events.toml"));
    assert_eq!(catalog.tables().last(), Some(&"Contracts"));
}

#[test]
fn file_problems_name_the_file_the_source_and_the_field() {
    let cases = [
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"generic\"\n[[source.event]]\nname = \"Bad Name\"\noperation = \"insert\"\n",
            "source 1 (table `T`): event `Bad Name`: field `name`: `Bad Name` is not a dotted",
        ),
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"generic\"\n[[source.event]]\nname = \"t.made\"\nqlm = \"license_created\"\noperation = \"insert\"\n",
            "field `name`: `license_created` is already the name of `license.created` (built-in)",
        ),
        (
            "[[source]]\ntable = \"LicenseKeys\"\nkey = \"ActivationKey\"\npayload = \"license\"\n[[source.event]]\nname = \"license.renewed\"\noperation = \"update\"\n",
            "field `key`: `ActivationKey`, but built-in gives table `LicenseKeys` the key `ID`",
        ),
        (
            "[[source]]\ntable = \"keyhook_outbox\"\nkey = \"seq\"\npayload = \"generic\"\n[[source.event]]\nname = \"x.y\"\noperation = \"insert\"\n",
            "field `table`: `keyhook_outbox` is keyhook's or SQLite's own",
        ),
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"generic\"\n",
            "field `event`: the source has no [[source.event]]",
        ),
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"webhook\"\n",
            "events.toml: invalid TOML at line 4",
        ),
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"generic\"\n[[source.event]]\nname = \"t.x\"\noperation = \"upsert\"\n",
            "unknown variant `upsert`",
        ),
        (
            "[[source]]\ntable = \"T\"\nkey = \"ID\"\npayload = \"generic\"\n[[source.event]]\nname = \"t.x\"\noperation = \"update\"\ncondition_postgres = \"NEW.A <> OLD.A\"\n",
            "field `condition_postgres`: is set without `condition`",
        ),
    ];
    for (text, expected) in cases {
        let problems = messages(catalog_with(text).unwrap_err());
        assert!(problems.contains("events.toml"), "{problems}");
        assert!(
            problems.contains(expected),
            "expected {expected}\ngot {problems}"
        );
    }
}

#[test]
fn database_problems_name_the_table_column_or_condition() {
    let conn = Connection::open_in_memory().unwrap();
    crate::licenses::schema::create(&conn).unwrap();
    conn.execute_batch("CREATE TABLE Contracts (ContractID INTEGER PRIMARY KEY, SignedOn TEXT)")
        .unwrap();
    let source = |table: &str, key: &str, operation: &str, condition: &str| {
        format!(
            "[[source]]\ntable = \"{table}\"\nkey = \"{key}\"\npayload = \"generic\"\n\
             [[source.event]]\nname = \"contract.x\"\noperation = \"{operation}\"\ncondition = \"{condition}\"\n"
        )
    };
    let cases = [
        (
            source("Nope", "ID", "insert", "1"),
            "field `table`: the license database has no table `Nope`",
        ),
        (
            source("Contracts", "ID", "insert", "1"),
            "field `key`: table `Contracts` has no column `ID`",
        ),
        (
            source("Contracts", "ContractID", "insert", "OLD.SignedOn IS NULL"),
            "event `contract.x`: field `condition`: no such column: OLD.SignedOn; write columns as NEW.<column> (an insert has no OLD row)",
        ),
        (
            source("Contracts", "ContractID", "update", "SignedOn IS NULL"),
            "ambiguous column name: SignedOn",
        ),
        (
            source("Contracts", "ContractID", "delete", "NEW.SignedOn IS NULL"),
            "no such column: NEW.SignedOn",
        ),
        (
            source("Contracts", "ContractID", "update", "1); DROP TABLE x; (1"),
            "field `condition`",
        ),
    ];
    for (text, expected) in cases {
        let catalog = catalog_with(&text).unwrap();
        let problems = messages(catalog.problems_in(&conn));
        assert!(
            problems.contains(expected),
            "expected {expected}\ngot {problems}"
        );
    }
    let good = catalog_with(&source(
        "Contracts",
        "ContractID",
        "update",
        "NEW.SignedOn IS NOT OLD.SignedOn",
    ))
    .unwrap();
    assert!(good.problems_in(&conn).is_empty());
}

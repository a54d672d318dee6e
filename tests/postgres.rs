//! The license database on PostgreSQL: `db init` and `db demo`, payloads byte-identical to
//! SQLite's from the same rows, searches refused when they could write or read elsewhere, the
//! deadline, TLS, and `check`'s warning about a role that can write. Each test has its own
//! schema on the server named by `KEYHOOK_TEST_POSTGRES`, dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};

use keyhook::receiver::{Reply, Server};
use rusqlite::types::Value;

use crate::support::{Test, pki::Ca, repo, stderr, stdout, text};

/// A schema of this test's own, dropped (with everything in it) when the guard goes.
pub(crate) struct Schema {
    pub(crate) base: String,
    pub(crate) name: String,
}

impl Schema {
    /// A new schema on the test server; `None` (the test is skipped) without
    /// `KEYHOOK_TEST_POSTGRES` (set but empty counts as not set: `KEYHOOK_TEST_POSTGRES=`
    /// switches the server tests off), except under CI, where that is a failure.
    pub(crate) fn new() -> Option<Schema> {
        let set = std::env::var("KEYHOOK_TEST_POSTGRES").ok();
        let Some(base) = set.filter(|url| !url.trim().is_empty()) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "KEYHOOK_TEST_POSTGRES is not set, and CI needs the PostgreSQL tests to run"
            );
            println!("skipped: KEYHOOK_TEST_POSTGRES is not set");
            return None;
        };
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("keyhook_t{}_{unique}_{nanos}", std::process::id());
        let schema = Schema { base, name };
        schema
            .client()
            .batch_execute(&format!("CREATE SCHEMA {}", schema.name))
            .expect("create the test schema");
        Some(schema)
    }

    /// The server's URL with this schema first on the search path, plus `extra` parameters.
    fn url_with(&self, extra: &str) -> String {
        let joiner = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{joiner}options=-csearch_path%3D{}{extra}",
            self.base, self.name
        )
    }

    pub(crate) fn url(&self) -> String {
        self.url_with("")
    }

    pub(crate) fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.base, postgres::NoTls).expect("connect to the test server")
    }

    /// Runs SQL in the schema.
    pub(crate) fn run(&self, sql: &str) {
        let mut client = self.client();
        client
            .batch_execute(&format!("SET search_path = {}; {sql}", self.name))
            .expect("SQL in the test schema");
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A test folder whose license database is `schema` (`KEYHOOK_DB`), with the tables made.
fn on_server(schema: &Schema) -> Test {
    let test = Test::new().env("KEYHOOK_DB", &schema.url());
    test.keyhook(["db", "init"]).assert().success();
    test
}

#[test]
fn db_init_creates_qlm_tables_with_postgresql_types() {
    let Some(schema) = Schema::new() else { return };
    let test = Test::new().env("KEYHOOK_DB", &schema.url());
    let output = test.keyhook(["db", "init"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("is ready (0 licenses)"));
    test.keyhook(["db", "init"]).assert().success();
    let mut client = schema.client();
    let columns = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'licensekeys'",
            &[&schema.name],
        )
        .unwrap();
    assert_eq!(columns.len(), 1 + 35 + 9);
    let type_of = |name: &str| -> String {
        let row = columns.iter().find(|row| row.get::<_, String>(0) == name);
        row.map(|row| row.get(1)).unwrap_or_default()
    };
    assert_eq!(type_of("expirydate"), "timestamp without time zone");
    assert_eq!(type_of("disabled"), "integer");
    assert_eq!(type_of("id"), "bigint");
    assert_eq!(type_of("licensemodel"), "text");
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'licensekeys'",
            &[&schema.name],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        indexes,
        1 + 10,
        "the primary key, 8 date columns, the key and the email"
    );
}

#[test]
fn db_init_names_the_columns_an_existing_table_lacks() {
    let Some(schema) = Schema::new() else { return };
    schema.run("CREATE TABLE LicenseKeys (ID bigint PRIMARY KEY, ActivationKey text)");
    let test = Test::new().env("KEYHOOK_DB", &schema.url());
    let output = test.keyhook(["db", "init"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("without QLM's column(s) LicenseUpdatedOnServer, FullName"));
    let mut client = schema.client();
    let customers: Option<postgres::Row> = client
        .query_opt(
            "SELECT to_regclass($1)::text",
            &[&format!("{}.customers", schema.name)],
        )
        .unwrap();
    assert_eq!(
        customers.and_then(|row| row.get::<_, Option<String>>(0)),
        None
    );
}

#[test]
fn db_demo_writes_the_same_guarantees_and_refuses_to_overwrite() {
    let Some(schema) = Schema::new() else { return };
    let mut test = on_server(&schema);
    let refused = test.keyhook(["db", "demo"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("pass --force"));
    test.keyhook(["db", "demo", "--force", "--licenses", "400"])
        .assert()
        .success();
    let mut client = schema.client();
    let mut count = |sql: &str| -> i64 {
        let sql = sql.replace("FROM ", &format!("FROM {}.", schema.name));
        client.query_one(&sql, &[]).unwrap().get(0)
    };
    assert_eq!(count("SELECT count(*) FROM LicenseKeys"), 400);
    assert_eq!(
        count("SELECT count(DISTINCT ActivationKey) FROM LicenseKeys"),
        400
    );
    assert_eq!(count("SELECT max(ID) FROM LicenseKeys"), 400);
    assert_eq!(count("SELECT count(*) FROM Products"), 4);
    assert!(count("SELECT count(*) FROM Customers") > 0);
    // The shipped searches all match, as the demo promises on any day.
    for search in [
        "upcoming-renewals",
        "expired-yesterday",
        "trials-ending-soon",
    ] {
        test = test.write(
            &format!("searches/{search}.toml"),
            &std::fs::read_to_string(repo().join(format!("searches/{search}.toml"))).unwrap(),
        );
        let output = test
            .keyhook(["dry-run", search, "--count"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{search}: {}", stderr(&output));
        let matched: u64 = stdout(&output).trim().parse().unwrap();
        assert!(matched > 0, "{search}");
    }
}

/// Rows with NULLs, odd text and dates stored in other shapes, added to both back ends.
fn odd_rows() -> Vec<Vec<(&'static str, Value)>> {
    vec![
        vec![
            ("ID", Value::Integer(10_001)),
            ("ActivationKey", text("ODD-NULLS")),
            ("SubscriptionExpiryDate", text("2026-12-01 08:00")),
        ],
        vec![
            ("ID", Value::Integer(10_002)),
            ("ActivationKey", text("ODD-TEXT")),
            ("FullName", text("Zoë \"Q\" O'Brien\\\t✓")),
            ("LicenseModel", text("Subscription_Cloud")),
            ("ExpiryDate", text("2026-11-30")),
            ("LicenseUpdatedOnServer", Value::Integer(1)),
            ("NumLicenses", Value::Integer(-7)),
            ("SubscriptionExpiryDate", text("2026-12-02T23:59:59")),
        ],
    ]
}

/// The same rows on the server, as SQL literals PostgreSQL casts to the columns' types.
fn insert_on_server(schema: &Schema, rows: &[Vec<(&str, Value)>]) {
    for row in rows {
        let names: Vec<&str> = row.iter().map(|(name, _)| *name).collect();
        let values: Vec<String> = row
            .iter()
            .map(|(_, value)| match value {
                Value::Integer(number) => number.to_string(),
                Value::Text(text) => format!("'{}'", text.replace('\'', "''")),
                _ => "NULL".into(),
            })
            .collect();
        schema.run(&format!(
            "INSERT INTO LicenseKeys ({}) VALUES ({})",
            names.join(", "),
            values.join(", ")
        ));
    }
}

/// A folder with the example searches, a task for each (and one scanning in table order),
/// and the same licenses in SQLite (`licenses.db`) and in `schema`: 600 demo rows and the odd
/// ones.
fn on_both(schema: &Schema, url: &str) -> Test {
    let mut test = Test::new();
    for search in SEARCHES {
        let toml = std::fs::read_to_string(repo().join(format!("searches/{search}.toml")));
        test = test
            .write(&format!("searches/{search}.toml"), &toml.unwrap())
            .task(&format!("{search}-task"), search, url, "");
    }
    let test = test
        .search("enabled", "Disabled = 0")
        .task("enabled-task", "enabled", url, "");
    let demo = ["db", "demo", "--force", "--licenses", "600"];
    test.keyhook(demo).assert().success();
    test.keyhook(demo)
        .env("KEYHOOK_DB", schema.url())
        .assert()
        .success();
    let odd = odd_rows();
    for row in &odd {
        test.license(row);
    }
    insert_on_server(schema, &odd);
    test
}

fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// The example searches, run on both back ends over the same rows, give the same payloads.
#[test]
fn the_same_rows_give_byte_identical_payloads_from_sqlite_and_postgresql() {
    let Some(schema) = Schema::new() else { return };
    let test = on_both(&schema, "http://127.0.0.1:9/hook");
    for search in SEARCHES.iter().chain(&["enabled"]) {
        let task = format!("{search}-task");
        let args = ["dry-run", task.as_str(), "--payloads"];
        let sqlite = test.keyhook(args).output().unwrap();
        let server = test
            .keyhook(args)
            .env("KEYHOOK_DB", schema.url())
            .output()
            .unwrap();
        assert!(server.status.success(), "{search}: {}", stderr(&server));
        let (lite, pg) = (stdout(&sqlite), stdout(&server));
        assert!(lite.contains("\nPOST "), "{search} matches nothing: {lite}");
        // SQLite walks a date index, PostgreSQL may not: the same payloads, maybe reordered.
        assert_eq!(sorted_lines(&lite), sorted_lines(&pg), "{search}");
    }
    // A scan in table order on both sides: the whole output, byte for byte.
    let args = ["dry-run", "enabled-task", "--payloads"];
    let lite = stdout(&test.keyhook(args).output().unwrap());
    let pg = stdout(
        &test
            .keyhook(args)
            .env("KEYHOOK_DB", schema.url())
            .output()
            .unwrap(),
    );
    assert_eq!(lite, pg);
    assert!(lite.contains(r#""ActivationKey":"ODD-NULLS","FullName":"","Country":"""#));
    assert!(lite.contains(r#""ExpiryDate":null"#));
    assert!(lite.contains(r#""LicenseModel":9"#));
    assert!(lite.contains(r#""ExpiryDate":"2026-11-30T00:00:00""#));
}

/// What a receiver gets from `run-task`: the same bodies from either back end.
#[test]
fn run_task_posts_the_same_bodies_from_either_back_end() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_both(&schema, &server.url("/hook"));
    let task = "upcoming-renewals-task";
    let output = test.keyhook(["run-task", task]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let from_sqlite = bodies(&server);
    assert!(from_sqlite.len() > 10, "{}", stdout(&output));
    let output = test
        .keyhook(["--state", "pg-state.db", "run-task", task])
        .env("KEYHOOK_DB", schema.url())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let all = bodies(&server);
    let from_postgres: Vec<String> = all[from_sqlite.len()..].to_vec();
    let sorted = |mut bodies: Vec<String>| {
        bodies.sort_unstable();
        bodies
    };
    assert_eq!(sorted(from_sqlite), sorted(from_postgres));
}

fn bodies(server: &Server) -> Vec<String> {
    let requests = server.requests();
    let bodies = requests
        .iter()
        .map(|request| String::from_utf8(request.body.clone()));
    bodies.collect::<Result<_, _>>().unwrap()
}

/// The README's example searches, shipped in `searches/`.
const SEARCHES: [&str; 5] = [
    "upcoming-renewals",
    "expired-yesterday",
    "trials-ending-soon",
    "maintenance-due-this-month",
    "new-orders-yesterday",
];

#[test]
fn searches_that_could_write_or_read_elsewhere_are_refused() {
    let Some(schema) = Schema::new() else { return };
    let mut test = on_server(&schema);
    let cases = [
        ("ID IN (SELECT CustomerID FROM Customers)", "reads table"),
        (
            "EXISTS (SELECT 1 FROM pg_catalog.pg_authid)",
            "reads table pg_catalog.pg_authid",
        ),
        ("pg_sleep(0) IS NOT NULL", "calls pg_sleep()"),
        (
            "set_config('statement_timeout', '0', true) = '0'",
            "calls set_config()",
        ),
        ("nextval('x') > 0", "calls nextval()"),
        (
            "query_to_xml('select 1', true, true, '') IS NOT NULL",
            "calls query_to_xml()",
        ),
        ("public.lower(Email) = ''", "outside pg_catalog"),
        ("Email = $$x$$", "dollar quoting"),
        // Refused before the server sees it, as on SQLite.
        (
            "1 = 1); DELETE FROM LicenseKeys WHERE (1 = 1",
            "closes a parenthesis the search never opened",
        ),
        ("ID IN (SELECT ID FROM LicenseKeys FOR UPDATE)", "writes"),
    ];
    for (sql, said) in cases {
        test = test.search("bad", sql);
        let output = test
            .keyhook(["dry-run", "bad", "--count"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{sql}: {}", stderr(&output));
        assert!(stderr(&output).contains(said), "{sql}: {}", stderr(&output));
    }
    let allowed = test.search(
        "fine",
        "lower(Email) LIKE '%example%' AND ID IN (SELECT ID FROM LicenseKeys) \
         AND date_trunc('day', coalesce(ExpiryDate, [now])) <= [today_end+400]",
    );
    let output = allowed
        .keyhook(["dry-run", "fine", "--count"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_deadline_becomes_statement_timeout() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema)
        .write("keyhook.toml", "query_timeout = \"200ms\"\n")
        .search(
            "slow",
            "(SELECT count(*) FROM LicenseKeys a, LicenseKeys b, LicenseKeys c, LicenseKeys d) > 0",
        );
    test.keyhook(["db", "demo", "--force", "--licenses", "300"])
        .assert()
        .success();
    let started = std::time::Instant::now();
    let output = test
        .keyhook(["dry-run", "slow", "--count"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("longer than its deadline of 200ms"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn tls_follows_sslmode() {
    let Some(schema) = Schema::new() else { return };
    let ssl: String = schema.client().query_one("SHOW ssl", &[]).unwrap().get(0);
    if ssl != "on" {
        println!("skipped: the test server does not offer TLS");
        return;
    }
    let test = on_server(&schema).search("all", "1 = 1");
    let required = test
        .keyhook(["dry-run", "all", "--count"])
        .env("KEYHOOK_DB", schema.url_with("&sslmode=require"))
        .output()
        .unwrap();
    assert!(required.status.success(), "{}", stderr(&required));
    let ca = Ca::new("keyhook test CA that signed nothing");
    let ca_file = test.path("other-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let root = ca_file.to_string_lossy().replace('/', "%2F");
    let url = schema.url_with(&format!("&sslmode=verify-full&sslrootcert={root}"));
    let refused = test
        .keyhook(["dry-run", "all", "--count"])
        .env("KEYHOOK_DB", url)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        stderr(&refused).contains("invalid peer certificate"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn check_warns_when_the_role_can_write_and_not_when_it_can_only_read() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema).search("all", "1 = 1");
    let output = test.keyhook(["check"]).output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("can change"),
        "{}",
        stdout(&output)
    );
    let role = format!("{}_reader", schema.name);
    schema.run(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {0} TO {role}; \
         GRANT SELECT ON {0}.LicenseKeys TO {role}",
        schema.name
    ));
    let reader = schema.url_with(&format!("&user={role}"));
    let output = test
        .keyhook(["check"])
        .env("KEYHOOK_DB", reader)
        .output()
        .unwrap();
    schema.run(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        !stdout(&output).contains("can change"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_server_that_does_not_answer_is_named_without_its_password() {
    let test = Test::new().search("x", "1 = 1");
    let output = test
        .keyhook(["dry-run", "x", "--count"])
        .env("KEYHOOK_DB", "postgres://keyhook:hunter2@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let said = stderr(&output);
    assert!(
        said.contains("postgres://keyhook:***@127.0.0.1:1/none"),
        "{said}"
    );
    assert!(!said.contains("hunter2"));
}

/// No command names the server with its password or `sslpassword`, whichever path the
/// message takes (`check`'s searches, dispatch's outbox, the commands' own errors).
#[test]
fn no_command_shows_a_servers_secrets() {
    let test = Test::new()
        .search("x", "1 = 1")
        .task("t", "x", "http://127.0.0.1:9/", "")
        .write(
            "webhooks/w.toml",
            "name = \"w\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.*\"]\n\
             secret = \"s\"\n",
        );
    let url = "postgres://keyhook:hunter2@127.0.0.1:1/none?sslpassword=keysecret";
    for args in [
        &["check"][..],
        &["dispatch"],
        &["dry-run", "x"],
        &["run-task", "t"],
        &["events", "status"],
        &["db", "init"],
    ] {
        let output = test.keyhook(args).env("KEYHOOK_DB", url).output().unwrap();
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            !said.contains("hunter2") && !said.contains("keysecret"),
            "{args:?}: {said}"
        );
        assert!(
            said.contains("127.0.0.1:1"),
            "{args:?} names the server: {said}"
        );
    }
}

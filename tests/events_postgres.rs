//! Event webhooks on a PostgreSQL license database: install, uninstall and drift; changes
//! committed on the server delivered signed (and a rolled-back one never), with the same
//! bytes as SQLite's triggers give for the same changes; two writers whose transactions
//! overlap both delivered once; `watch` woken by NOTIFY, and back after its connections are
//! killed. Each test has its own schema (`KEYHOOK_TEST_POSTGRES`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyhook::delivery::standard::{self, Key};
use keyhook::receiver::{Reply, Request, Server};
use postgres::fallible_iterator::FallibleIterator;

use crate::postgres::Schema;
use crate::support::watching::Watching;
use crate::support::{Test, stderr, stdout};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A folder whose `--db` is `schema`, QLM's tables made, with a Standard Webhooks webhook on
/// `/std` and a QLM-format one on `/qlm`, both for every license event.
fn on_server(schema: &Schema, url: &str) -> Test {
    let test = webhooks(Test::new(), url).env("KEYHOOK_DB", &schema.url());
    test.keyhook(["db", "init"]).assert().success();
    test
}

fn webhooks(test: Test, url: &str) -> Test {
    test.write(
        "webhooks/std.toml",
        &format!(
            "name = \"std\"\nurl = \"{url}/std\"\nevents = [\"license.*\"]\n\
             secret = \"{WHSEC}\"\nformat = \"standard\"\nsignature = \"standard\"\n"
        ),
    )
    .write(
        "webhooks/qlm.toml",
        &format!(
            "name = \"qlm\"\nurl = \"{url}/qlm\"\nevents = [\"license.*\"]\n\
             secret = \"s3cret\"\nformat = \"qlm\"\n"
        ),
    )
}

fn run(test: &Test, args: &[&str]) -> (Option<i32>, String, String) {
    let output = test.keyhook(args).output().unwrap();
    (output.status.code(), stdout(&output), stderr(&output))
}

/// keyhook's objects in the schema: tables, functions, triggers.
fn objects(schema: &Schema) -> Vec<String> {
    let mut client = schema.client();
    let rows = client
        .query(
            "SELECT 'table ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' \
             UNION ALL SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 \
             UNION ALL SELECT 'trigger ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal \
             ORDER BY 1",
            &[&schema.name],
        )
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// Makes function `name` what an earlier keyhook installed (an exclusive lock where the mark
/// is) and records its hash as install did, so only the lock tells it apart.
fn earlier_function(schema: &Schema, name: &str) {
    let mut client = writer(schema);
    let body: String = client
        .query_one(
            "SELECT prosrc FROM pg_proc WHERE proname = $1 AND pronamespace = current_schema()::regnamespace",
            &[&name],
        )
        .unwrap()
        .get(0);
    let start = body.find("    IF current_setting(").unwrap();
    let end = start + body[start..].find("END IF;\n").unwrap() + "END IF;\n".len();
    let earlier = format!(
        "{}    PERFORM pg_advisory_xact_lock({});\n{}",
        &body[..start],
        keyhook::events::postgres::plan::OUTBOX_LOCK,
        &body[end..]
    );
    client
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION \"{name}\"() RETURNS trigger LANGUAGE plpgsql AS $keyhook${earlier}$keyhook$; \
             UPDATE keyhook_events_meta m SET sql_sha256 = ( \
                 SELECT encode(sha256(string_agg(convert_to(p.prosrc, 'UTF8') || '\\x00'::bytea, ''::bytea \
                     ORDER BY t.ord)), 'hex') \
                 FROM json_array_elements_text(m.triggers::json) WITH ORDINALITY AS t(name, ord) \
                 JOIN pg_proc p ON p.proname = t.name \
                 JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = current_schema()) \
             WHERE m.table_name = 'LicenseKeys'"
        ))
        .unwrap();
}

#[test]
fn install_is_idempotent_status_sees_a_new_column_and_uninstall_removes_exactly_it() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema, "http://127.0.0.1:9");
    let before = objects(&schema);
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created table keyhook_outbox\n"), "{out}");
    assert!(out.contains("LicenseKeys: created triggers keyhook_LicenseKeys_insert, keyhook_LicenseKeys_update, keyhook_LicenseKeys_delete\n"), "{out}");
    let installed = objects(&schema);
    assert_eq!(installed.len(), before.len() + 2 + 10 + 9, "{installed:?}");
    let (code, out, _) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(objects(&schema), installed);
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    // An install by an earlier keyhook: its functions took one exclusive lock from a writer's
    // first event to its commit. Status says so, install replaces them.
    earlier_function(&schema, "keyhook_LicenseKeys_update");
    let (code, out, _) = run(&test, &["events", "status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("LicenseKeys: its triggers were made by an earlier keyhook"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("LicenseKeys: replaced (its triggers were made by an earlier keyhook"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    assert_eq!(objects(&schema), installed);
    // A trigger disabled by hand: its table's changes make no events.
    schema.run("ALTER TABLE licensekeys DISABLE TRIGGER \"keyhook_LicenseKeys_update\"");
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(
        out.contains("LicenseKeys: trigger(s) keyhook_LicenseKeys_update are disabled"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(out.contains("LicenseKeys: replaced (trigger(s)"), "{out}");
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    // The function the triggers call, altered without its body changing: seen, and made again.
    for alter in ["SECURITY INVOKER", "RESET search_path", "IMMUTABLE"] {
        schema.run(&format!("ALTER FUNCTION keyhook_outbox_last() {alter}"));
        let (_, out, _) = run(&test, &["events", "status"]);
        assert!(
            out.contains("LicenseKeys: function keyhook_outbox_last() was changed outside keyhook"),
            "{alter}: {out}"
        );
        let (_, out, _) = run(&test, &["events", "install"]);
        assert!(
            out.contains("replaced function keyhook_outbox_last"),
            "{out}"
        );
        let (_, out, _) = run(&test, &["events", "status"]);
        assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    }
    // The function the triggers call, dropped: every change would fail.
    schema.run("DROP FUNCTION keyhook_outbox_last()");
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(
        out.contains("LicenseKeys: function keyhook_outbox_last() is gone"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("created function keyhook_outbox_last"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    schema.run("ALTER TABLE LicenseKeys ADD COLUMN Region text");
    let (code, out, _) = run(&test, &["events", "status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "LicenseKeys: column(s) region added since install are missing from snapshots"
        ),
        "{out}"
    );
    assert!(out.contains("Customers: triggers current"), "{out}");
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("LicenseKeys: replaced (column(s) region added"),
        "{out}"
    );
    schema.run("INSERT INTO LicenseKeys (ActivationKey, Region) VALUES ('K1', 'north')");
    let (code, _, err) = run(&test, &["events", "uninstall"]);
    assert_eq!(code, Some(2), "the outbox holds an event");
    assert!(err.contains("pass --force"), "{err}");
    let (code, out, err) = run(&test, &["events", "uninstall", "--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("dropped table keyhook_outbox (1 event(s))"),
        "{out}"
    );
    assert_eq!(objects(&schema), before);
}

#[test]
fn a_condition_without_its_postgresql_text_is_refused_by_name() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema, "http://127.0.0.1:9").write(
        "events.toml",
        "[[source]]\ntable = \"Products\"\nkey = \"ProductID\"\npayload = \"product\"\n\
         [[source.event]]\nname = \"product.renamed\"\noperation = \"update\"\n\
         condition = \"OLD.ProductName IS NOT NEW.ProductName\"\n",
    );
    // check says what install would refuse, before install is tried.
    let (code, out, _) = run(&test, &["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("event `product.renamed`: field `condition_postgres`: is missing"),
        "{out}"
    );
    let (code, _, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("event `product.renamed`: field `condition_postgres`: is missing"),
        "{err}"
    );
    let test = test.write(
        "events.toml",
        "[[source]]\ntable = \"Products\"\nkey = \"ProductID\"\npayload = \"product\"\n\
         [[source.event]]\nname = \"product.renamed\"\noperation = \"update\"\n\
         condition = \"OLD.ProductName IS NOT NEW.ProductName\"\n\
         condition_postgres = \"OLD.ProductNam IS DISTINCT FROM NEW.ProductName\"\n",
    );
    let (code, out, _) = run(&test, &["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("field `condition_postgres`") && out.contains("productnam"),
        "check compiles the condition on the server: {out}"
    );
    let (code, _, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("productnam"), "the server's words: {err}");
    assert!(objects(&schema).iter().all(|o| !o.contains("keyhook")));
}

/// The changes QLM's writer makes over a license's life, and one rolled back.
const LIFE: [&str; 4] = [
    "INSERT INTO LicenseKeys (ID, ActivationKey, FullName, ExpiryDate) \
     VALUES (1, 'K1', 'Zoë \"Q\" O''Brien', '2026-12-01T00:00:00')",
    "UPDATE LicenseKeys SET ComputerID = 'PC-1', ActivationCount = 1 WHERE ID = 1",
    "UPDATE LicenseKeys SET ComputerID = '', ActivationCount = 0 WHERE ID = 1",
    "DELETE FROM LicenseKeys WHERE ID = 1",
];

const ROLLED_BACK: &str = "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2')";

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_secs() as i64
}

fn signed(request: &Request) -> bool {
    let key = Key::from_secret(WHSEC).unwrap();
    standard::verify(
        &[key],
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
        &request.body,
        unix_now(),
        300,
    )
    .is_ok()
}

fn bodies(requests: &[Request], path: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.target == path)
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect()
}

#[test]
fn committed_changes_are_delivered_signed_with_sqlites_bytes_and_a_rollback_never() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    let mut client = schema.client();
    client
        .batch_execute(&format!("SET search_path = {}", schema.name))
        .unwrap();
    let mut rolled_back = client.transaction().unwrap();
    rolled_back.batch_execute(ROLLED_BACK).unwrap();
    rolled_back.rollback().unwrap();
    for change in LIFE {
        client.batch_execute(change).unwrap();
    }
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let requests = server.requests();
    let types: Vec<&str> = requests
        .iter()
        .filter(|r| r.target == "/std")
        .map(|r| r.header("webhook-id").map_or("", |_| "signed"))
        .collect();
    assert!(types.iter().all(|t| *t == "signed"));
    assert!(requests.iter().filter(|r| r.target == "/std").all(signed));
    let events: Vec<String> = bodies(&requests, "/std")
        .iter()
        .map(|body| serde_json::from_str::<serde_json::Value>(body).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        events.join(" "),
        "\"license.created\" \"license.activated\" \"license.updated\" \
         \"license.deactivated\" \"license.updated\" \"license.deleted\""
    );
    assert!(bodies(&requests, "/std").iter().all(|b| !b.contains("K2")));
    let (code, ..) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0));
    assert_eq!(server.request_count(), requests.len(), "taken once");

    // The same changes in SQLite: the same QLM-format bodies, byte for byte.
    let lite = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let sqlite = webhooks(Test::new(), &lite.url(""));
    sqlite.keyhook(["events", "install"]).assert().success();
    let conn = rusqlite::Connection::open(sqlite.path("licenses.db")).unwrap();
    for change in LIFE {
        conn.execute_batch(change).unwrap();
    }
    sqlite.keyhook(["dispatch"]).assert().success();
    let from_sqlite = bodies(&lite.requests(), "/qlm");
    assert_eq!(from_sqlite.len(), 6);
    assert_eq!(from_sqlite, bodies(&requests, "/qlm"));
    assert!(
        from_sqlite[0].contains(r#""ExpiryDate":"2026-12-01T00:00:00""#),
        "{}",
        from_sqlite[0]
    );
}

/// Schema `odd` (beside the test's own, dropped by the test), made the license database's
/// through a URL whose search path is `encoded` (`odd` as `options` and a URL need it), QLM's
/// tables made and events installed there, webhooks on a receiver that answers 200.
fn installed_in(schema: &Schema, odd: &str, encoded: &str) -> (Test, Server) {
    schema.run(&format!("CREATE SCHEMA \"{odd}\""));
    let joiner = if schema.base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{joiner}options=-csearch_path%3D%22{encoded}%22",
        schema.base
    );
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = webhooks(Test::new(), &server.url("")).env("KEYHOOK_DB", &url);
    test.keyhook(["db", "init"]).assert().success();
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    (test, server)
}

/// A schema whose name holds `$keyhook$`, the tag keyhook's functions were quoted with: they
/// are quoted with another, and the triggers install, fire and uninstall as anywhere else.
#[test]
fn a_schema_whose_name_holds_the_quoting_tag_gets_working_triggers() {
    let Some(schema) = Schema::new() else { return };
    let odd = format!("{}$keyhook$", schema.name);
    let (test, server) = installed_in(&schema, &odd, &odd.replace('$', "%24"));
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "SET search_path = \"{odd}\"; \
             INSERT INTO LicenseKeys (ActivationKey) VALUES ('ODD-1')"
        ))
        .unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let created = bodies(&server.requests(), "/qlm");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].contains("ODD-1"), "{}", created[0]);
    let (code, out, err) = run(&test, &["events", "status", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(r#""current":true"#),
        "as keyhook installs them: {out}"
    );
    let (code, out, err) = run(&test, &["events", "uninstall", "--force"]);
    assert_eq!(code, Some(0), "{out}{err}");
    schema.run(&format!("DROP SCHEMA \"{odd}\" CASCADE"));
}

/// A schema whose name holds a backslash: a writer session with `standard_conforming_strings =
/// off` reads the triggers' string literals as keyhook wrote them, so the NOTIFY goes out on
/// the schema's channel (watch wakes) and the event names its table.
#[test]
fn a_backslash_in_the_schema_name_reads_the_same_in_a_non_standard_strings_session() {
    let Some(schema) = Schema::new() else { return };
    let odd = format!("{}\\q", schema.name);
    // In `options`, a backslash escapes the next character: `\\` is one.
    let (test, server) = installed_in(&schema, &odd, &odd.replace('\\', "%5C%5C"));
    let channel = keyhook::events::postgres::channel(&odd);
    let mut listener = schema.client();
    listener
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .unwrap();
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "SET standard_conforming_strings = off; SET escape_string_warning = off; \
             SET search_path = \"{odd}\"; \
             INSERT INTO LicenseKeys (ActivationKey) VALUES ('BS-1')"
        ))
        .unwrap();
    let heard = listener
        .notifications()
        .timeout_iter(Duration::from_secs(10))
        .next()
        .expect("listening")
        .expect("the insert's NOTIFY, on the schema's channel");
    assert_eq!(heard.channel(), channel);
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let created = bodies(&server.requests(), "/qlm");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].contains("BS-1"), "{}", created[0]);
    let (code, out, err) = run(&test, &["events", "uninstall", "--force"]);
    assert_eq!(code, Some(0), "{out}{err}");
    schema.run(&format!("DROP SCHEMA \"{odd}\" CASCADE"));
}

/// Roles of one test, dropped with what they own and were granted when it ends.
struct Roles<'a>(&'a Schema, Vec<String>);

impl Drop for Roles<'_> {
    fn drop(&mut self) {
        for role in &self.1 {
            let _ = self
                .0
                .client()
                .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// A change to LicenseKeys as `role`: the error's text when it fails.
fn insert_as(schema: &Schema, role: &str, key: &str) -> Option<String> {
    let mut client = writer(schema);
    client
        .batch_execute(&format!(
            "SET ROLE {role}; INSERT INTO LicenseKeys (ActivationKey) VALUES ('{key}')"
        ))
        .err()
        .map(|error| format!("{error:?}"))
}

/// keyhook_outbox_last() runs as its owner for every writer: an owner who cannot read the
/// outbox's sequence, or a writer who may not execute it, makes changes fail. Status says
/// which; install makes the installing role the owner and grants the writers EXECUTE.
#[test]
fn status_sees_writers_and_an_owner_that_cannot_run_the_function_and_install_fixes_both() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema, "http://127.0.0.1:9");
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let suffix = schema.name.trim_start_matches("keyhook_");
    let (w, o) = (format!("khw_{suffix}"), format!("kho_{suffix}"));
    let _roles = Roles(&schema, vec![w.clone(), o.clone()]);
    let s = &schema.name;
    schema.run(&format!(
        "CREATE ROLE {w} NOLOGIN; CREATE ROLE {o} NOLOGIN; GRANT USAGE ON SCHEMA {s} TO {w}; \
         GRANT INSERT ON licensekeys TO {w}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {w}; \
         REVOKE EXECUTE ON FUNCTION keyhook_outbox_last() FROM PUBLIC"
    ));
    let failed = insert_as(&schema, &w, "W-1").expect("the writer may not write events");
    assert!(failed.contains("permission denied"), "{failed}");
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(
        out.contains(&format!(
            "LicenseKeys: role(s) {w} may change the table but not write its events"
        )),
        "{out}"
    );
    // `check` says it too, as a problem of the license database.
    let (code, out, err) = run(&test, &["check"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains(&format!(
            "events: table `LicenseKeys`: role(s) {w} may change the table but not write its events"
        )),
        "{out}{err}"
    );
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!(
            "granted INSERT on keyhook_outbox (event_type, table_name, row_key, created_ms, \
             snapshot) and EXECUTE on function keyhook_outbox_last() to {w}"
        )),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    assert_eq!(insert_as(&schema, &w, "W-2"), None);
    // What a writer needs and no more: INSERT on the columns the triggers fill; the outbox's
    // seq is an identity column, which takes no grant on its sequence.
    let k = format!("khk_{suffix}");
    let _more = Roles(&schema, vec![k.clone()]);
    schema.run(&format!(
        "CREATE ROLE {k} NOLOGIN; GRANT USAGE ON SCHEMA {s} TO {k}; \
         GRANT INSERT ON licensekeys TO {k}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {k}; \
         GRANT EXECUTE ON FUNCTION keyhook_outbox_last() TO {k}; \
         GRANT INSERT (event_type, table_name, row_key, created_ms, snapshot) \
             ON keyhook_outbox TO {k}; \
         DO $$ BEGIN EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM {k}', \
             pg_get_serial_sequence('keyhook_outbox', 'seq')); END $$"
    ));
    assert_eq!(insert_as(&schema, &k, "K-1"), None);
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    // An owner without access to the schema or the sequence: every writer's change fails.
    schema.run(&format!(
        "ALTER FUNCTION keyhook_outbox_last() OWNER TO {o}"
    ));
    let failed = insert_as(&schema, &w, "W-3").expect("the owner cannot read the sequence");
    assert!(failed.contains("permission denied"), "{failed}");
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(
        out.contains(&format!(
            "LicenseKeys: function keyhook_outbox_last() runs as its owner `{o}`, who cannot read"
        )),
        "{out}"
    );
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("made the installing role the owner of function keyhook_outbox_last()"),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
    assert_eq!(insert_as(&schema, &w, "W-4"), None);
    // A table to make again and a writer to grant, at once: one install does both.
    let n = format!("khn_{suffix}");
    let _last = Roles(&schema, vec![n.clone()]);
    schema.run(&format!(
        "ALTER TABLE LicenseKeys ADD COLUMN Region text; CREATE ROLE {n} NOLOGIN; \
         GRANT USAGE ON SCHEMA {s} TO {n}; GRANT UPDATE ON licensekeys TO {n}"
    ));
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: column(s) region added"), "{out}");
    let (code, out, err) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("LicenseKeys: replaced") && out.contains(&format!("to {n} (")),
        "{out}"
    );
    let (_, out, _) = run(&test, &["events", "status"]);
    assert!(out.contains("LicenseKeys: triggers current"), "{out}");
}

/// A connection whose search path is the test's schema.
/// The server process of `client`'s connection.
fn backend_pid(client: &mut postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0)
}

/// Waits (30 s at most) until the server process `pid` waits for a lock: what a fixed sleep
/// would only guess.
fn wait_until_waiting_for_a_lock(schema: &Schema, pid: i32) {
    let mut observer = schema.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: Option<String> = observer
            .query_one(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if waiting.as_deref() == Some("Lock") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server process {pid} never waited for a lock ({waiting:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn writer(schema: &Schema) -> postgres::Client {
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "SET search_path = {}; SET lock_timeout = '20s'",
            schema.name
        ))
        .unwrap();
    client
}

/// `type key email` of each license event `/std` received, in arrival order, and how many
/// distinct ids they came with.
fn events_and_ids(server: &Server) -> (Vec<String>, usize) {
    let requests = server.requests();
    let mut ids: Vec<String> = requests
        .iter()
        .filter(|r| r.target == "/std")
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    let events = bodies(&requests, "/std")
        .iter()
        .map(|b| {
            let event: serde_json::Value = serde_json::from_str(b).unwrap();
            let data = &event["data"];
            format!(
                "{} {} {}",
                event["type"].as_str().unwrap(),
                data["ActivationKey"].as_str().unwrap(),
                data["Email"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    ids.dedup();
    (events, ids.len())
}

/// The events of license `key`, in arrival order.
fn of<'a>(events: &'a [String], key: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|line| line.split(' ').nth(1) == Some(key))
        .map(String::as_str)
        .collect()
}

/// Writer A takes its seq first and commits last; writer B's event comes while A is open, and
/// B commits first. A sequence hands numbers out at insert time: had B's event been taken
/// while A was open, the cursor would have passed A's seq for good. B does not wait for A,
/// but its event does: a dispatch takes nothing above an open transaction's mark. After A
/// commits, both arrive once. Writer C's event waits behind D's open transaction, and goes
/// out once D rolls back.
#[test]
fn two_writers_whose_transactions_overlap_are_both_delivered_once() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    let mut a = writer(&schema);
    a.batch_execute(
        "BEGIN; INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (1, 'K1', 'a')",
    )
    .unwrap();
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (2, 'K2', 'b')")
        .unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        events_and_ids(&server).0,
        Vec::<String>::new(),
        "B's event waits for A"
    );
    a.batch_execute("COMMIT").unwrap();
    let (code, ..) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0));
    let (events, ids) = events_and_ids(&server);
    assert_eq!(events, ["license.created K1 a", "license.created K2 b"]);
    assert_eq!(ids, 2, "each once");
    // A rolled-back transaction lets go of what waited behind it.
    let mut d = writer(&schema);
    d.batch_execute(
        "BEGIN; INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (4, 'K4', 'd')",
    )
    .unwrap();
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (3, 'K3', 'c')")
        .unwrap();
    run(&test, &["dispatch"]);
    assert_eq!(events_and_ids(&server).0.len(), 2, "C's event waits for D");
    d.batch_execute("ROLLBACK").unwrap();
    run(&test, &["dispatch"]);
    let (events, ids) = events_and_ids(&server);
    assert_eq!(events[2..], ["license.created K3 c"]);
    assert_eq!(ids, 3);
}

/// Writer A changes license 1, then license 2, which writer B changed and has not committed
/// yet: without keyhook, A waits for B and both commit. The triggers must not turn that into
/// a deadlock (they did when they took one lock at a writer's first event: B's change waited
/// for A's lock while A waited for B's row). The events of license 2 arrive in the order of
/// its changes: B's, then A's.
#[test]
fn the_triggers_turn_no_wait_between_writers_into_a_deadlock() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1'), (2, 'K2')")
        .unwrap();
    test.keyhook(["events", "install"]).assert().success();
    let mut a = writer(&schema);
    let mut b = writer(&schema);
    a.batch_execute("BEGIN; UPDATE LicenseKeys SET Email = 'a' WHERE ID = 1")
        .unwrap();
    let (changed, b_changed) = std::sync::mpsc::channel();
    let (go, commit_b) = std::sync::mpsc::channel::<()>();
    let second = std::thread::spawn(move || {
        let result = b.batch_execute("BEGIN; UPDATE LicenseKeys SET Email = 'b' WHERE ID = 2");
        changed.send(result.is_ok()).unwrap();
        commit_b.recv().unwrap();
        result.and_then(|()| b.batch_execute("COMMIT"))
    });
    let b_ok = b_changed.recv_timeout(Duration::from_secs(10));
    assert_eq!(b_ok, Ok(true), "B's change went through while A was open");
    // A now waits for B's row; B commits; A goes on.
    let a_pid = backend_pid(&mut a);
    let (updated, a_changed) = std::sync::mpsc::channel();
    let first = std::thread::spawn(move || {
        let result = a.batch_execute("UPDATE LicenseKeys SET Email = 'a' WHERE ID = 2");
        updated.send(()).unwrap();
        result.and_then(|()| a.batch_execute("COMMIT"))
    });
    wait_until_waiting_for_a_lock(&schema, a_pid);
    assert!(a_changed.try_recv().is_err(), "A waits for B's row");
    go.send(()).unwrap();
    let b_result = second.join().unwrap();
    let a_result = first.join().unwrap();
    assert!(b_result.is_ok(), "B: {b_result:?}");
    assert!(a_result.is_ok(), "A: {a_result:?}");
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (events, ids) = events_and_ids(&server);
    assert_eq!(of(&events, "K1"), ["license.updated K1 a"]);
    assert_eq!(
        of(&events, "K2"),
        ["license.updated K2 b", "license.updated K2 a"],
        "in the order of its changes"
    );
    assert_eq!(ids, 3, "each once");
}

/// Two more waits the triggers must not turn into errors: a writer whose own deferred
/// foreign key waits at commit for another writer's row (a lock taken at commit by the
/// triggers, before the check, deadlocked them), and a transaction that changes a license and
/// then alters the table (pending deferred trigger events forbid that).
#[test]
fn a_deferred_foreign_key_and_a_change_before_ddl_still_work() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    writer(&schema)
        .batch_execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1'), (2, 'K2'); \
             INSERT INTO Customers (CustomerID) VALUES (1); \
             CREATE TABLE app_orders (customer_id integer REFERENCES Customers (CustomerID) \
                 DEFERRABLE INITIALLY DEFERRED, note text)",
        )
        .unwrap();
    test.keyhook(["events", "install"]).assert().success();
    let mut a = writer(&schema);
    let mut b = writer(&schema);
    a.batch_execute(
        "BEGIN; UPDATE LicenseKeys SET Email = 'a' WHERE ID = 1; \
         INSERT INTO app_orders VALUES (1, 'A')",
    )
    .unwrap();
    b.batch_execute(
        "BEGIN; SELECT * FROM Customers WHERE CustomerID = 1 FOR UPDATE; \
         UPDATE LicenseKeys SET Email = 'b' WHERE ID = 2",
    )
    .unwrap();
    // A's commit checks its foreign key: it waits for B's row lock.
    let a_pid = backend_pid(&mut a);
    let first = std::thread::spawn(move || a.batch_execute("COMMIT"));
    wait_until_waiting_for_a_lock(&schema, a_pid);
    let b_result = b.batch_execute("COMMIT");
    let a_result = first.join().unwrap();
    assert!(b_result.is_ok(), "B: {b_result:?}");
    assert!(a_result.is_ok(), "A: {a_result:?}");
    writer(&schema)
        .batch_execute(
            "BEGIN; UPDATE LicenseKeys SET Email = 'c' WHERE ID = 1; \
             ALTER TABLE LicenseKeys ADD COLUMN Region text; COMMIT",
        )
        .unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (events, _) = events_and_ids(&server);
    assert_eq!(
        of(&events, "K1"),
        ["license.updated K1 a", "license.updated K1 c"]
    );
    assert_eq!(of(&events, "K2"), ["license.updated K2 b"]);
}

/// Each event carries the row as its own change left it, in the order of the changes, though
/// the transaction changed the row again after it.
#[test]
fn each_event_carries_its_change_as_it_was() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    writer(&schema)
        .batch_execute(
            "BEGIN; \
             INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (3, 'K3', 'first'); \
             UPDATE LicenseKeys SET ComputerID = 'PC-1', ActivationCount = 1 WHERE ID = 3; \
             UPDATE LicenseKeys SET Email = 'second' WHERE ID = 3; \
             DELETE FROM LicenseKeys WHERE ID = 3; \
             COMMIT",
        )
        .unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (events, ids) = events_and_ids(&server);
    assert_eq!(
        events,
        [
            "license.created K3 first",
            "license.activated K3 first",
            "license.updated K3 first",
            "license.updated K3 second",
            "license.deleted K3 second",
        ]
    );
    assert_eq!(ids, 5);
}

#[test]
fn watch_is_woken_by_notify_survives_killed_connections_and_stops_on_sigterm() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    let watching = Watching::start_with(&test, &["watch", "--poll", "300s"]);
    let committed = Instant::now();
    schema.run("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')");
    // Two webhooks: two requests. The timer is 300 s: only a notification wakes it this soon.
    assert!(server.wait_for(2, Duration::from_secs(20)), "delivered");
    let latency = committed.elapsed();
    assert!(latency < Duration::from_secs(20), "{latency:?}");
    // The server ends watch's sessions, as a restart does; it connects again.
    let mut client = schema.client();
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
            &[&schema.name],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1, "watch's listening connection");
    schema.run("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (8, 'K8')");
    assert!(
        server.wait_for(4, Duration::from_secs(30)),
        "delivered after reconnecting"
    );
    assert_eq!(watching.stop(), Some(0));
    assert_eq!(server.request_count(), 4);
}

#[test]
fn an_expiry_on_the_server_fires_license_expired_once() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    schema.run(
        "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate) \
         VALUES (1, 'K1', '2026-11-23T12:00:00'), (2, 'K2', '2020-01-01T00:00:00')",
    );
    let pass = |now: &str| run(&test, &["--now", now, "dispatch"]);
    let (code, out, err) = pass("2026-11-23T10:00:00");
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(server.request_count(), 4, "two creations, to two webhooks");
    assert_eq!(pass("2026-11-23T13:00:00").0, Some(0));
    assert_eq!(server.request_count(), 6, "K1's expiry, to two webhooks");
    assert_eq!(pass("2026-11-23T14:00:00").0, Some(0));
    assert_eq!(server.request_count(), 6, "once");
    let requests = server.requests();
    let expired = requests
        .iter()
        .find(|r| r.target == "/qlm" && r.header("X-Keyhook-Event") == Some("license.expired"))
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&expired.body).unwrap();
    assert_eq!(json["LicenseInfo"]["ActivationKey"], "K1");
    let id = expired.header("X-Keyhook-Delivery").unwrap();
    assert!(id.starts_with("evt_exp_1_"), "{id}");
}

/// A transaction that read the sequence's last value before a dispatch pass did, and marked
/// itself after that pass had looked at the marks: its mark is below the cursor. Its seq is
/// above what that pass took, and a later pass must take nothing past it until it ends.
#[test]
fn a_mark_below_the_cursor_holds_later_events_back() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    let mut setup = writer(&schema);
    setup
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (1, 'K1', 'a')")
        .unwrap();
    let first: i64 = setup
        .query_one("SELECT max(seq) FROM keyhook_outbox", &[])
        .unwrap()
        .get(0);
    run(&test, &["dispatch"]);
    assert_eq!(events_and_ids(&server).0, ["license.created K1 a"]);
    // X: the mark it would have taken had it read the last value a few events ago.
    let class = keyhook::events::postgres::plan::mark_class(&schema.name);
    let setting = keyhook::events::postgres::plan::mark_setting(&schema.name);
    let mut x = writer(&schema);
    x.batch_execute(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock_shared({class}, ({} & 4294967295)::bit(32)::integer); \
         SELECT set_config('{setting}', 'on', true); \
         INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (2, 'K2', 'x')",
        first - 5
    ))
    .unwrap();
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (3, 'K3', 'y')")
        .unwrap();
    run(&test, &["dispatch"]);
    assert_eq!(events_and_ids(&server).0.len(), 1, "Y's event waits for X");
    x.batch_execute("COMMIT").unwrap();
    run(&test, &["dispatch"]);
    let (events, ids) = events_and_ids(&server);
    assert_eq!(
        events,
        [
            "license.created K1 a",
            "license.created K2 x",
            "license.created K3 y"
        ]
    );
    assert_eq!(ids, 3);
}

/// `keyhook_outbox_last()` runs as the installer: a caller's temporary view named like the
/// catalog it reads must not be what it reads (else any writer could run SQL as the installer).
#[test]
fn the_installers_function_reads_no_callers_temporary_objects() {
    let Some(schema) = Schema::new() else { return };
    let test = on_server(&schema, "http://127.0.0.1:9");
    test.keyhook(["events", "install"]).assert().success();
    let mut client = writer(&schema);
    let real: i64 = client
        .query_one("SELECT keyhook_outbox_last()", &[])
        .unwrap()
        .get(0);
    client
        .batch_execute(
            "CREATE TEMP VIEW pg_sequence AS SELECT 0::oid AS seqrelid, 12345::bigint AS seqstart",
        )
        .unwrap();
    let read: i64 = client
        .query_one("SELECT keyhook_outbox_last()", &[])
        .unwrap()
        .get(0);
    assert_eq!(read, real, "the catalog, not the caller's view");
    assert_ne!(read, 12344);
    // A body that is not this keyhook's is replaced by install.
    schema.run(
        "CREATE OR REPLACE FUNCTION keyhook_outbox_last() RETURNS bigint LANGUAGE sql \
         SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT 0::bigint'",
    );
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("replaced function keyhook_outbox_last"),
        "{out}"
    );
    assert_eq!(
        client
            .query_one("SELECT keyhook_outbox_last()", &[])
            .unwrap()
            .get::<_, i64>(0),
        real
    );
}

/// Installed by an earlier keyhook (no `keyhook_outbox_last()`, triggers that take one lock
/// per writer): this keyhook still dispatches, as that one did, until install replaces them.
#[test]
fn an_earlier_install_is_dispatched_until_install_replaces_it() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    for operation in ["insert", "update", "delete"] {
        earlier_function(&schema, &format!("keyhook_LicenseKeys_{operation}"));
    }
    schema.run("DROP FUNCTION keyhook_outbox_last()");
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (1, 'K1', 'a')")
        .unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(events_and_ids(&server).0, ["license.created K1 a"]);
    let (_, out, _) = run(&test, &["events", "install"]);
    assert!(
        out.contains("created function keyhook_outbox_last"),
        "{out}"
    );
    writer(&schema)
        .batch_execute("INSERT INTO LicenseKeys (ID, ActivationKey, Email) VALUES (2, 'K2', 'b')")
        .unwrap();
    let (code, ..) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        events_and_ids(&server).0,
        ["license.created K1 a", "license.created K2 b"]
    );
}

#[test]
fn a_server_dispatched_under_another_url_says_why_nothing_is_recorded() {
    // The event cursor is kept per URL as given: another spelling of the same server reads
    // its outbox from the start, and its deliveries are in the state already. Said, not the
    // server's bare unique-key error.
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = on_server(&schema, &server.url(""));
    test.keyhook(["events", "install"]).assert().success();
    writer(&schema).batch_execute(LIFE[0]).unwrap();
    let (code, out, err) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let sent = server.request_count();
    let spelled = format!("{}&application_name=another", schema.url());
    let output = test
        .keyhook(["dispatch"])
        .env("KEYHOOK_DB", &spelled)
        .output()
        .unwrap();
    crate::support::assert_events_recorded_again(&output);
    assert_eq!(server.request_count(), sent);
}

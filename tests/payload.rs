//! The request, byte for byte: QLM's documented example must come out exactly.

use crate::support::{self, Test, text};
use keyhook::receiver::{Reply, Server};
use rusqlite::types::Value;
use sha2::{Digest, Sha256};

const FIXTURE: &[u8] = include_bytes!("fixtures/qlm-example-body.json");
const FIXTURE_SIGNATURE: &str = "8514cbf9c4396c2a5e665e5e11d051700f14f8757b360de8f0e2ff933955d83d";

/// A license row holding the values of QLM's example `LicenseInfo`.
fn qlm_example_license(test: &Test) {
    let json: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
    let info = json["LicenseInfo"].as_object().unwrap();
    let mut columns: Vec<(&str, Value)> = info
        .iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::Bool(flag) => Value::Integer(i64::from(*flag)),
                serde_json::Value::Number(n) => Value::Integer(n.as_i64().unwrap()),
                serde_json::Value::String(s) => Value::Text(s.clone()),
                other => panic!("unexpected {other}"),
            };
            (name.as_str(), value)
        })
        .collect();
    for (name, value) in &mut columns {
        if *name == "LicenseModel" {
            *value = text("trial");
        }
    }
    columns.push(("SubscriptionExpiryDate", text("2021-05-29T23:59:59")));
    test.license(&columns);
}

fn example_test(url: &str) -> Test {
    let test = Test::new()
        .write(
            "searches/all-trials.toml",
            "name = \"All trials\"\nsql = \"LicenseModel = 'trial'\"\n",
        )
        .write(
            "tasks/stWebHook.toml",
            &format!(
                "name = \"stWebHook\"\nsearch = \"all-trials\"\nschedule = \"every 1 day\"\n\n\
                 [webhook]\nurl = \"{url}\"\nsecret = \"my-secret-key\"\nuser_data = \"my user data\"\n"
            ),
        );
    qlm_example_license(&test);
    test
}

#[test]
fn qlm_example_is_reproduced_byte_for_byte() {
    assert_eq!(FIXTURE.len(), 886);
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = example_test(&server.url("/hooks/qlm"));
    test.keyhook(["run-task", "stWebHook"]).assert().success();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hooks/qlm");
    assert_eq!(request.body, FIXTURE, "\n{}", request.body_text());
    assert_eq!(request.header("content-length"), Some("886"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-qlm-signature"), Some(FIXTURE_SIGNATURE));
    let user_agent = request.header("user-agent").unwrap();
    assert_eq!(user_agent, format!("keyhook/{}", env!("CARGO_PKG_VERSION")));
    assert!(
        request
            .header("x-keyhook-delivery")
            .unwrap()
            .starts_with("msg_")
    );
}

#[test]
fn dry_run_payloads_show_the_same_bytes_and_signature_but_not_the_secret() {
    let test = example_test("http://127.0.0.1:9/never");
    let output = test
        .keyhook(["dry-run", "stWebHook", "--payloads"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = support::stdout(&output);
    assert!(
        stdout.contains(std::str::from_utf8(FIXTURE).unwrap()),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("X-QLM-Signature: {FIXTURE_SIGNATURE}")));
    assert!(stdout.contains("Content-Length: 886"));
    assert!(!stdout.contains("my-secret-key"));
    let _redacted = test.redacted().bind_to_scope();
    insta::assert_snapshot!(stdout);
}

#[test]
fn signature_is_sha256_of_body_then_secret() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = example_test(&server.url("/"));
    test.keyhook(["run-task", "stWebHook"]).assert().success();
    let request = &server.requests()[0];
    let mut hasher = Sha256::new();
    hasher.update(&request.body);
    hasher.update(b"my-secret-key");
    let independent = hex::encode(hasher.finalize());
    assert_eq!(
        request.header("X-QLM-Signature"),
        Some(independent.as_str())
    );
}

#[test]
fn nulls_unicode_and_quotes_are_pinned() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .search("odd", "ID = 7")
        .task("odd", "odd", &server.url("/"), "");
    test.license(&[
        ("ID", Value::Integer(7)),
        ("ActivationKey", text("K\"7\\")),
        ("FullName", text("Zoë \"Zee\" Müller – 陈美 😀")),
        ("Email", Value::Null),
        ("Duration", Value::Null),
        ("ExpiryDate", Value::Null),
        ("MaintenanceRenewalDate", text("2027-02-28 08:30")),
        ("Comment", text("line one\nline two\ttab </script>")),
        ("LicenseModel", text("subscription")),
        ("NumLicenses", Value::Null),
    ]);
    test.keyhook(["run-task", "odd"]).assert().success();
    let body = server.requests()[0].body_text().into_owned();
    insta::assert_snapshot!(body);
}

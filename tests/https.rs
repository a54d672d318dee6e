//! HTTPS receivers: a real TLS server on 127.0.0.1 with certificates made at test time, fed by
//! the real `keyhook run-task`: private CAs, wrong names, expired certificates, mutual TLS,
//! a plain-HTTP server on an https:// url, and one handshake for many deliveries.

use crate::support::pki::{Ca, Identity};
use crate::support::{self, Test, stdout};
use keyhook::receiver::{Reply, Server, ServerTls};

const CA_NAME: &str = "keyhook test CA";

/// A TLS receiver answering 200, presenting `identity`.
fn receiver(identity: &Identity) -> Server {
    let tls = ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes()).unwrap();
    Server::start_tls("127.0.0.1:0", tls, |_| Reply::ok()).unwrap()
}

/// A receiver that requires a client certificate signed by `clients`.
fn mutual_receiver(identity: &Identity, clients: &Ca) -> Server {
    let tls = ServerTls::requiring_client_cert(
        identity.cert.as_bytes(),
        identity.key.as_bytes(),
        clients.pem.as_bytes(),
    )
    .unwrap();
    Server::start_tls("127.0.0.1:0", tls, |_| Reply::ok()).unwrap()
}

/// `count` licenses expiring soon, a task posting them to `url`, and the CA's certificate at
/// `tasks/ca.pem` (so `ca_file = "ca.pem"` is relative to the task file, not the folder).
fn renewals(url: &str, ca: &Ca, count: i64, extra_webhook: &str) -> Test {
    let test = Test::new()
        .search("renewals", "SubscriptionExpiryDate > [today_start]")
        .task("renewals", "renewals", url, extra_webhook)
        .write("tasks/ca.pem", &ca.pem);
    for id in 1..=count {
        test.simple_license(id, "2026-12-01T00:00:00");
    }
    test
}

fn run(test: &Test) -> (Option<i32>, String) {
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    (output.status.code(), stdout(&output))
}

#[test]
fn a_private_ca_in_ca_file_delivers_over_one_connection() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["localhost", "127.0.0.1"]));
    let url = server.url("/hook");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let test = renewals(&url, &ca, 20, "ca_file = \"ca.pem\"");
    let (code, text) = run(&test);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("20 matched, 20 delivered, 0 failed"),
        "{text}"
    );
    assert_eq!(server.request_count(), 20);
    assert_eq!(
        server.connection_count(),
        1,
        "one TLS handshake, kept alive"
    );
}

#[test]
fn localhost_names_are_checked_as_names() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["localhost"]));
    let url = format!("https://localhost:{}/hook", server.addr().port());
    let test = renewals(&url, &ca, 1, "ca_file = \"ca.pem\"");
    let (code, text) = run(&test);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn ca_file_in_keyhook_toml_serves_every_task() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["127.0.0.1"]));
    let test = renewals(&server.url("/hook"), &ca, 2, "")
        .write("certs/ca.pem", &ca.pem)
        .write("keyhook.toml", "ca_file = \"certs/ca.pem\"\n");
    let (code, text) = run(&test);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 2);
}

#[test]
fn ssl_cert_file_is_the_system_trust_store() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["127.0.0.1"]));
    let test = renewals(&server.url("/hook"), &ca, 1, "");
    let bundle = test.path("tasks/ca.pem").display().to_string();
    let test = test.env("SSL_CERT_FILE", &bundle);
    let (code, text) = run(&test);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn an_unknown_issuer_is_named_with_what_to_set() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["127.0.0.1"]));
    let test = renewals(&server.url("/hook"), &ca, 2, "");
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "the certificate of 127.0.0.1 is issued by `CN=keyhook test CA`, which keyhook \
             does not trust: set `ca_file`"
        ),
        "{text}"
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_certificate_for_another_name_says_which_names_it_has() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.server(&["hooks.example.com", "www.example.com"]));
    let test = renewals(&server.url("/hook"), &ca, 1, "ca_file = \"ca.pem\"");
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "the certificate of 127.0.0.1 is for `hooks.example.com`, `www.example.com`, \
             not for `127.0.0.1`"
        ),
        "{text}"
    );
}

#[test]
fn an_expired_certificate_says_when() {
    let ca = Ca::new(CA_NAME);
    let server = receiver(&ca.expired_server(&["127.0.0.1"]));
    let test = renewals(&server.url("/hook"), &ca, 1, "ca_file = \"ca.pem\"");
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the certificate of 127.0.0.1 expired at 2024-01-31 00:00:00 UTC ("),
        "{text}"
    );
}

#[test]
fn mutual_tls_needs_client_cert_and_client_key() {
    let (ca, clients) = (Ca::new(CA_NAME), Ca::new("keyhook clients CA"));
    let server = mutual_receiver(&ca.server(&["127.0.0.1"]), &clients);
    let test = renewals(&server.url("/hook"), &ca, 2, "ca_file = \"ca.pem\"");
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("requires a client certificate")
            && text.contains("set `client_cert` and `client_key`"),
        "{text}"
    );
    assert_eq!(server.request_count(), 0);
    let refused = server.connection_count();

    let client = clients.client("keyhook");
    let extra = "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"";
    let test = renewals(&server.url("/hook"), &ca, 2, extra)
        .write("tasks/client.pem", &client.cert)
        .write("tasks/client.key", &client.key);
    let (code, text) = run(&test);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 2);
    assert_eq!(
        server.connection_count(),
        refused + 1,
        "one kept alive for both"
    );
}

#[test]
fn a_client_certificate_from_another_ca_is_rejected_by_the_receiver() {
    let (ca, clients) = (Ca::new(CA_NAME), Ca::new("keyhook clients CA"));
    let server = mutual_receiver(&ca.server(&["127.0.0.1"]), &clients);
    let stranger = Ca::new("someone else").client("keyhook");
    let extra = "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"";
    let test = renewals(&server.url("/hook"), &ca, 1, extra)
        .write("tasks/client.pem", &stranger.cert)
        .write("tasks/client.key", &stranger.key);
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the receiver rejected keyhook's client certificate"),
        "{text}"
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_plain_http_server_on_an_https_url_is_named_and_never_sent_to() {
    let plain = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let url = plain.url("/hook").replace("http://", "https://");
    let ca = Ca::new(CA_NAME);
    let test = renewals(&url, &ca, 1, "");
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("does not speak TLS") && text.contains("never falls back to plain HTTP"),
        "{text}"
    );
    assert_eq!(plain.request_count(), 0, "nothing was sent in clear");
}

#[test]
fn a_key_that_does_not_fit_is_a_configuration_error_that_never_shows_the_key() {
    let ca = Ca::new(CA_NAME);
    let (one, other) = (ca.client("one"), ca.client("other"));
    let extra = "client_cert = \"client.pem\"\nclient_key = \"client.key\"";
    let test = renewals("https://127.0.0.1:9/hook", &ca, 1, extra)
        .write("tasks/client.pem", &one.cert)
        .write("tasks/client.key", &other.key);
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let all = format!("{}{}", stdout(&output), support::stderr(&output));
    assert!(all.contains("does not fit client_cert"), "{all}");
    let key_body = other.key.lines().nth(1).unwrap();
    assert!(!all.contains(key_body), "the key leaked: {all}");
    let check = test.keyhook(["check"]).output().unwrap();
    let all = format!("{}{}", stdout(&check), support::stderr(&check));
    assert!(all.contains("does not fit client_cert"), "{all}");
    assert!(!all.contains(key_body), "the key leaked: {all}");
}

#[test]
fn check_reads_the_tls_files_and_warns_about_readable_keys_and_cleartext() {
    use std::os::unix::fs::PermissionsExt;
    let ca = Ca::new(CA_NAME);
    let client = ca.client("keyhook");
    let mutual = "client_cert = \"client.pem\"\nclient_key = \"client.key\"";
    let test = renewals("https://hooks.example.com/hook", &ca, 1, mutual)
        .write("tasks/client.pem", &client.cert)
        .write("tasks/client.key", &client.key)
        .task("clear", "renewals", "http://hooks.example.com/hook", "")
        .task("local", "renewals", "http://127.0.0.1:8080/hook", "")
        .task(
            "broken",
            "renewals",
            "https://x.example/",
            "ca_file = \"nope.pem\"",
        )
        .write("keyhook.toml", "ca_file = \"garbage.pem\"\n")
        .write("garbage.pem", "not a certificate\n");
    let key = test.path("tasks/client.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = test.keyhook(["check"]).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("error: keyhook.toml: ca_file garbage.pem: holds no PEM certificate"),
        "{text}"
    );
    assert!(
        text.contains("error: tasks/broken.toml: [webhook]: could not read ca_file tasks/nope.pem"),
        "{text}"
    );
    assert!(
        text.contains("warning: tasks/renewals.toml: other users can read client_key"),
        "{text}"
    );
    assert!(
        text.contains(
            "warning: tasks/clear.toml: [webhook] url sends payloads and their \
                       signatures unencrypted to hooks.example.com"
        ),
        "{text}"
    );
    assert!(!text.contains("tasks/local.toml: [webhook] url"), "{text}");
    assert!(!text.contains(client.key.lines().nth(1).unwrap()), "{text}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = stdout(&test.keyhook(["check"]).output().unwrap());
    assert!(!text.contains("client_key"), "{text}");
}

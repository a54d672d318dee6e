//! keyhook used as a hostile user would: broken definition files must not leak their secrets,
//! and bytes from the network must not reach the terminal raw.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::support::{self, Test, stderr, stdout};
use keyhook::receiver::{Reply, Server};

const SECRET: &str = "s3cr3t-VALUE-never-shown";

/// A valid search and a task file whose `[webhook]` ends with `broken`.
fn broken_task(broken: &str) -> Test {
    let task = format!(
        "name = \"leaky\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n\
         [webhook]\nurl = \"http://127.0.0.1:9/\"\n{broken}\n"
    );
    let test = Test::new()
        .search("all", "ID > 0")
        .write("tasks/leaky.toml", &task);
    test.simple_license(1, "2026-11-25T10:00:00");
    test
}

/// Everything a command printed, both streams.
fn all_output(output: &std::process::Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[test]
fn a_broken_secret_line_never_shows_the_secret() {
    let cases = [
        format!("secret = \"{SECRET}\" trailing"),
        format!("secret = \"{SECRET}\"\nsecret = \"{SECRET}\""),
        format!("secret = \"x\"\nprevious_secrets = [\"{SECRET}\", 5]"),
        format!("secret = \"x\"\nprevious_secrets = [\n  \"{SECRET}\",\n  5,\n]"),
        format!("secret = {SECRET}"),
        format!("secret = '{SECRET}"),
        format!("Secret_Key = \"{SECRET}\" x"),
    ];
    let commands: [&[&str]; 6] = [
        &["check"],
        &["run-due"],
        &["run-task", "leaky"],
        &["dry-run", "leaky"],
        &["list"],
        &["next"],
    ];
    for case in &cases {
        let test = broken_task(case);
        for args in commands {
            let output = test.keyhook(args).output().unwrap();
            let text = all_output(&output);
            assert!(
                !text.contains("s3cr3t"),
                "{args:?} on {case:?} printed:\n{text}"
            );
            if args[0] != "list" && args[0] != "next" {
                assert_ne!(output.status.code(), Some(0), "{args:?} on {case:?}");
            }
        }
        let text = all_output(&test.keyhook(["check"]).output().unwrap());
        assert!(text.contains("tasks/leaky.toml"), "{text}");
        assert!(text.contains("invalid TOML at line "), "{text}");
    }
}

#[test]
fn errors_on_other_lines_still_show_the_line() {
    let test = broken_task("secret = \"x\"\nuser_data = \"a\" b");
    let text = all_output(&test.keyhook(["check"]).output().unwrap());
    assert!(text.contains("line 8"), "{text}");
    assert!(text.contains("user_data = \"a\" b"), "{text}");
}

/// A task whose receiver answers 500 with `body`.
fn answering(body: &'static [u8]) -> (Server, Test) {
    let server = Server::start("127.0.0.1:0", move |_| Reply::status(500).with_body(body)).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("hostile", "all", &server.url("/"), "");
    test.simple_license(1, "2026-11-25T10:00:00");
    (server, test)
}

fn assert_no_raw_controls(text: &str, what: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{what} printed a raw control character:\n{text:?}"
    );
}

#[test]
fn a_receivers_escape_codes_are_shown_escaped() {
    let (_server, test) = answering(b"\x1b[2J\x1b]0;pwned\x07\rFAKE: all delivered\x9b");
    let output = test.keyhook(["run-task", "hostile"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = all_output(&output);
    assert_no_raw_controls(&text, "run-task");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert!(text.contains("\\rFAKE"), "{text}");
    for args in [
        &["log"][..],
        &["log", "--attempts"],
        &["retry", "--now", &support::later(86_400)],
    ] {
        let text = all_output(&test.keyhook(args).output().unwrap());
        assert_no_raw_controls(&text, &format!("{args:?}"));
    }
    let json = stdout(
        &test
            .keyhook(["log", "--json", "--attempts"])
            .output()
            .unwrap(),
    );
    let entry: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    let error = entry["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("\u{1b}[2J\u{1b}]0;pwned\u{7}\rFAKE"),
        "{error:?}"
    );
}

#[test]
fn a_license_row_with_escape_codes_is_shown_escaped() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(500)).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("hostile", "all", &server.url("/"), "");
    test.license(&[
        ("ID", rusqlite::types::Value::Integer(7)),
        ("ActivationKey", support::text("KEY\x1b[31m-RED\r")),
        ("Email", support::text("evil\x1b[2J@example.com")),
    ]);
    for args in [&["dry-run", "all"][..], &["run-task", "hostile"], &["log"]] {
        let text = all_output(&test.keyhook(args).output().unwrap());
        assert_no_raw_controls(&text, &format!("{args:?}"));
        assert!(text.contains("\\u{1b}"), "{args:?}: {text}");
    }
}

/// `keyhook listen` on a free port; returns the child and its stdout lines.
fn listen() -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("keyhook"))
        .args(["listen", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    let address = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_string();
    (child, lines, address)
}

fn post(address: &str, target: &str, body: &[u8]) {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
}

#[test]
fn listen_escapes_and_bounds_what_it_prints() {
    let (mut child, mut lines, address) = listen();
    post(&address, "/a", b"\x1b[2Jplain \rtext\x07");
    let mut big = b"[\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5_000_000));
    big.extend(b"\"]");
    post(&address, "/b", &big);
    let mut printed = String::new();
    while !printed.contains("more characters not shown") {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        printed.push_str(&line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_raw_controls(&printed, "listen");
    assert!(
        printed.contains("\\u{1b}[2Jplain \\rtext\\u{7}"),
        "{printed:?}"
    );
    assert!(
        printed.contains("5000004 bytes"),
        "the size is still reported"
    );
    assert!(printed.len() < 100_000, "{} bytes printed", printed.len());
}

//! A running `keyhook watch` for tests: started once it says it is watching, its stderr
//! collected line by line, stopped with SIGTERM, and killed if the test fails first.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Test;

/// How long a test waits for something that normally takes about a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `watch`, its stderr collected line by line; killed if the test fails.
pub struct Watching {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Watching {
    pub fn start(test: &Test) -> Watching {
        Watching::start_with(test, &["watch"])
    }

    /// `keyhook <args>` (a `watch`), once it said it is watching.
    pub fn start_with(test: &Test, args: &[&str]) -> Watching {
        Watching::spawn(test.process(args))
    }

    /// `command` (a `watch`), once it said it is watching.
    pub fn spawn(mut command: Command) -> Watching {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("watching"), "{line}");
        // Keep reading stdout, so a full pipe never blocks watch.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let pipe = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Watching { child, stderr }
    }

    /// Waits until stderr holds a line with every one of `parts`; all of stderr so far.
    pub fn wait_for_line(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.stderr.lock().unwrap().join("\n");
            if text
                .lines()
                .any(|line| parts.iter().all(|p| line.contains(p)))
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {parts:?} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal("-TERM");
        self.child.wait().unwrap().code()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

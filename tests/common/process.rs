//! The `iop-gateway` binary as a user runs it: a command, or a server process killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub fn gateway(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iop-gateway"));
    command
        .current_dir(dir)
        .env_remove("IOP_DATABASE_URL")
        .env_remove("IOP_CONFIG")
        .env_remove("IOP_LISTEN")
        // Every server of the tests gets its own free console port.
        .env("IOP_CONSOLE_LISTEN", "127.0.0.1:0");
    command.env("IOP_LOG", "warn");
    command
}

pub fn run(command: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run iop-gateway");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `iop-gateway ARGS` and waits for its "listening on" line.
pub fn start(mut command: Command) -> (Server, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("read stdout");
        seen.push(line.clone());
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_owned();
        }
    };
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server { child, base }, seen)
}

/// Like `start`, but keeps everything the server writes to stderr (its logs) for the test to read.
pub fn start_keeping_logs(
    mut command: Command,
) -> (Server, std::sync::Arc<std::sync::Mutex<String>>) {
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    command.stderr(Stdio::piped());
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut logs = kept.lock().unwrap_or_else(|e| e.into_inner());
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("read stdout");
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Server { child, base }, logs)
}

//! Running the `tartan` binary from tests, and reading back what a run wrote.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tartan::train::records::{Record, read_records};

/// The binary under test: this build's, or `TARTAN_TEST_BIN` (to show that a test fails on an
/// older build).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("TARTAN_TEST_BIN").map_or_else(|| env!("CARGO_BIN_EXE_tartan").into(), Into::into)
}

pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

pub fn spawn(args: &[&str]) -> Child {
    command(args).spawn().unwrap()
}

/// Runs the binary to its end, or kills it after `limit` and fails: a hang is a bug.
pub fn run_within(mut c: Command, limit: Duration) -> Output {
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("tartan still ran after {limit:?}; stderr:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `tartan ARGS`, at most two minutes.
pub fn tartan(args: &[&str]) -> Output {
    run_within(command(args), Duration::from_secs(120))
}

/// `tartan train --set S ...` with every `sets` item.
pub fn train(sets: &[String], extra_args: &[&str]) -> Output {
    tartan(&train_args(sets, extra_args).iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn train_args(sets: &[String], extra_args: &[&str]) -> Vec<String> {
    let mut args = vec!["train".to_string()];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    for s in sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    args
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Asserts a clean failure (exit 1, no panic) and returns stderr.
pub fn failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

pub fn success(out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "{err}");
    err
}

pub fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The steps of the `train` lines of a run's metrics.jsonl, in file order.
pub fn logged_steps(run: &Path) -> Vec<usize> {
    read_records(run)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| match r {
            Record::Train { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

/// The step of a run's latest checkpoint.
pub fn checkpoint_step(run: &Path) -> usize {
    let dir = super::latest_checkpoint(run).expect("a checkpoint");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    state["train"]["step"].as_u64().unwrap() as usize
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Copies a folder tree, as `cp -r` does.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

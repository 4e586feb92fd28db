//! Memory over a long run: 1,000 small optimizer steps through the real binary, with the
//! resident set sampled from /proc while it trains. Allocator caches and the first
//! evaluation settle early; after that the resident set must stay flat.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::tiny::{tiny_sets, tiny_setup};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn steps_logged(run: &std::path::Path) -> usize {
    let records = tartan::train::records::read_records(run).unwrap_or_default();
    records.iter().filter(|r| matches!(r, tartan::train::records::Record::Train { .. })).count()
}

#[test]
fn memory_stays_flat_over_1000_steps() {
    let setup = tiny_setup(51);
    let run = setup.path("soak");
    let sets = tiny_sets(
        &setup,
        &run,
        &["train.max_steps=1000", "train.log_every=1", "eval.every_steps=100", "eval.test=false"],
    );
    let mut args = vec!["train".to_string()];
    for s in &sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    // A file, not a pipe: a pipe nobody reads fills up and blocks the run's logging.
    let log = setup.path("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tartan"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // (step, resident KiB) samples.
    let mut samples: Vec<(usize, u64)> = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Some(rss) = rss_kib(child.id()) {
            samples.push((steps_logged(&run), rss));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(steps_logged(&run), 1000);
    let peak = |from: usize, to: usize| {
        samples.iter().filter(|(s, _)| (from..to).contains(s)).map(|(_, r)| *r).max().unwrap_or(0)
    };
    let (early, late) = (peak(200, 400), peak(800, 1000));
    assert!(early > 0 && late > 0, "too few samples: {} taken", samples.len());
    eprintln!("resident set: peak {early} KiB over steps 200-400, {late} KiB over steps 800-1000");
    // 4 MiB of slack for allocator noise: a leak of 7 KiB per step (a few of this model's
    // activation tensors) would exceed it over the 600 steps between the two windows.
    assert!(late <= early + 4096, "resident set grew from {early} KiB to {late} KiB (steps 200-400 against 800-1000)");
}

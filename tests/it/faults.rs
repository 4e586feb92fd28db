//! Faults through the real binary: Ctrl-C, SIGTERM and SIGHUP save and exit cleanly, `kill -9`
//! loses only the steps since the last checkpoint, and all resume with every step logged once.

use std::process::Command;
use std::time::Duration;

use crate::common::bin::{checkpoint_step, logged_steps, signal, spawn, wait_for};
use crate::common::latest_checkpoint;
use crate::common::tiny::{TinySetup, tiny_setup};

fn train_steps(run: &std::path::Path) -> usize {
    logged_steps(run).len()
}

fn config(setup: &TinySetup, run: &str) -> std::path::PathBuf {
    let p = |n: &str| setup.path(n).display().to_string();
    let text = format!(
        "output_dir = \"{}\"\n[model]\nname = \"{}\"\nmax_length = 32\n[task]\ntrain = \"{}\"\ndev = \"{}\"\n[train]\nbatch_size = 16\nmax_steps = 100000\nlog_every = 1\nlr = 5e-3\nhead_lr = 5e-3\n[eval]\nevery_steps = 20\nbatch_size = 100\ntest = false\n",
        p(run),
        setup.model.display(),
        p("train.jsonl"),
        p("dev.jsonl")
    );
    let path = setup.path(&format!("{run}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_the_run_resumes() {
    let setup = tiny_setup(41);
    let cfg = config(&setup, "sigint");
    let run = setup.path("sigint");
    let child = spawn(&["train", "--config", cfg.to_str().unwrap()]);
    wait_for("30 steps", Duration::from_secs(120), || train_steps(&run) >= 30);
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("interrupted at step") && stderr.contains("--resume"), "{stderr}");
    let saved = checkpoint_step(&run);
    assert!(saved >= 30, "checkpoint at step {saved}");
    let before = seconds_of(&run.join(format!("checkpoint-{saved}/state.json")), "/train/seconds");
    assert!(before > 0.0, "the checkpoint holds no training time");
    let limit = format!("train.max_steps={}", saved + 10);
    let out = spawn(&["train", "--resume", run.to_str().unwrap(), "--set", &limit]).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("resumed {} at step {saved}", run.display())));
    assert_eq!(checkpoint_step(&run), saved + 10);
    // The training time counts the process before the interruption too.
    let total = seconds_of(&run.join("results.json"), "/train_seconds");
    assert!(total > before, "train_seconds {total} does not include the {before} s before the interruption");
}

fn seconds_of(file: &std::path::Path, pointer: &str) -> f64 {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    json.pointer(pointer).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{} has no {pointer}", file.display()))
}

#[test]
fn kill_9_loses_at_most_the_steps_since_the_last_checkpoint() {
    let setup = tiny_setup(42);
    let cfg = config(&setup, "sigkill");
    let run = setup.path("sigkill");
    let mut child = spawn(&["train", "--config", cfg.to_str().unwrap()]);
    wait_for("a checkpoint and 10 more steps", Duration::from_secs(120), || {
        latest_checkpoint(&run).is_some() && train_steps(&run) >= 50
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = checkpoint_step(&run);
    let logged = train_steps(&run);
    assert!(
        logged - saved <= 20,
        "checkpoint at {saved}, {logged} steps logged: more than the 20 steps between checkpoints were lost"
    );
    let limit = format!("train.max_steps={}", saved + 5);
    let out = spawn(&["train", "--resume", run.to_str().unwrap(), "--set", &limit]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(run.join("best/model.safetensors").exists());
    // The killed process could not release its lock: the resume says so and takes it over.
    assert!(stderr.contains("was left locked by a process that ended without releasing it"), "{stderr}");
    assert_eq!(logged_steps(&run), (1..=saved + 5).collect::<Vec<_>>(), "a step is missing or logged twice");
}

/// What schedulers and `docker stop` send (SIGTERM) and a closed terminal (SIGHUP) stop a run
/// as Ctrl-C does: a checkpoint, the resume hint, a non-zero exit; the resumed run logs every
/// step once.
#[test]
fn sigterm_and_sighup_save_a_checkpoint_and_every_step_is_logged_once_after_resume() {
    let setup = tiny_setup(44);
    for (name, sig) in [("sigterm", libc::SIGTERM), ("sighup", libc::SIGHUP)] {
        let cfg = config(&setup, name);
        let run = setup.path(name);
        let child = spawn(&["train", "--config", cfg.to_str().unwrap()]);
        wait_for("25 steps", Duration::from_secs(120), || train_steps(&run) >= 25);
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains("interrupted at step") && stderr.contains("--resume"), "{name}: {stderr}");
        let saved = checkpoint_step(&run);
        assert!(saved >= 25, "{name}: checkpoint at step {saved}");
        if sig == libc::SIGHUP {
            continue;
        }
        let limit = format!("train.max_steps={}", saved + 10);
        let out = spawn(&["train", "--resume", run.to_str().unwrap(), "--set", &limit]).wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(logged_steps(&run), (1..=saved + 10).collect::<Vec<_>>(), "a step is missing or logged twice");
    }
}

/// A write that fails for lack of space (simulated with a file-size limit, `ulimit -f`) is an
/// error naming the file, and the previous checkpoint stays whole.
#[test]
fn a_full_disk_is_an_error_and_keeps_the_previous_checkpoint() {
    let setup = tiny_setup(43);
    let cfg = config(&setup, "full");
    let run = setup.path("full");
    let out =
        spawn(&["train", "--config", cfg.to_str().unwrap(), "--set", "train.max_steps=20"]).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = std::fs::read(latest_checkpoint(&run).unwrap().join("model.safetensors")).unwrap();
    assert!(before.len() > 100 * 1024, "the tiny model must be larger than the limit below");

    // Ignore SIGXFSZ so an over-limit write fails with EFBIG, as on a full disk.
    let script = format!(
        "trap '' XFSZ; ulimit -f 100; exec {} train --resume {} --set train.max_steps=40",
        crate::common::bin::binary().display(),
        run.display()
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run succeeded despite the limit: {stderr}");
    assert!(
        stderr.contains("cannot write")
            && stderr.contains("is the disk full?")
            && stderr.contains("previous version is kept"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(latest_checkpoint(&run).unwrap().join("model.safetensors")).unwrap(), before);
    assert_eq!(checkpoint_step(&run), 20);
}

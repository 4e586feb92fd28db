//! `tartan sweep` runs the grid once, tabulates it, and skips finished runs when run again.

use std::process::Command;

use crate::common::tiny::tiny_setup;

#[test]
fn sweep_runs_the_grid_tabulates_and_skips_finished_runs() {
    let setup = tiny_setup(51);
    let p = |n: &str| setup.path(n).display().to_string();
    let config = setup.path("base.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nname = \"{}\"\nmax_length = 32\n[task]\ntrain = \"{}\"\ndev = \"{}\"\ntest = \"{}\"\n[train]\nbatch_size = 16\nmax_steps = 10\n[eval]\nevery_steps = 5\n[[aux]]\nname = \"related\"\nfile = \"{}\"\n",
            setup.model.display(), p("train.jsonl"), p("dev.jsonl"), p("test.jsonl"), p("related.txt")
        ),
    )
    .unwrap();
    let out_dir = setup.path("sweep");
    let sweep = || {
        Command::new(env!("CARGO_BIN_EXE_tartan"))
            .args([
                "sweep",
                "--config",
                config.to_str().unwrap(),
                "--strategies",
                "finetune,mt-tartan",
                "--seeds",
                "0,1",
                "--output",
                out_dir.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let first = sweep();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    // 2 strategies x 1 task x (dev, test), each over 2 seeds.
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(5) == Some("2")), "{csv}");
    let md = std::fs::read_to_string(out_dir.join("results.md")).unwrap();
    assert!(md.contains("| finetune |") && md.contains("| mt-tartan |"), "{md}");
    assert!(out_dir.join("results.json").exists());
    let second = sweep();
    assert_eq!(String::from_utf8_lossy(&second.stderr).matches("is finished; skipping it").count(), 4);
}

/// A sweep with `--archive` keeps each finished run's records there; on a machine without the
/// run folders, the same sweep finds them in the archive and trains nothing.
#[test]
fn sweep_resumes_from_its_archive_without_the_run_folders() {
    let setup = tiny_setup(52);
    let p = |n: &str| setup.path(n).display().to_string();
    let config = setup.path("base.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nname = \"{}\"\nmax_length = 32\n[task]\ntrain = \"{}\"\ndev = \"{}\"\n[train]\nbatch_size = 16\nmax_steps = 4\n[eval]\nevery_steps = 2\n",
            setup.model.display(), p("train.jsonl"), p("dev.jsonl")
        ),
    )
    .unwrap();
    let archive = setup.path("archive");
    let sweep = |out: &str| {
        let out = setup.path(out);
        let args = ["sweep", "--config", config.to_str().unwrap(), "--strategies", "finetune", "--seeds", "0,1"];
        let output = Command::new(env!("CARGO_BIN_EXE_tartan"))
            .args(args)
            .args(["--seed-major", "--output", out.to_str().unwrap(), "--archive", archive.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (String::from_utf8_lossy(&output.stderr).to_string(), std::fs::read_to_string(out.join("results.md")).unwrap())
    };
    let (_, first) = sweep("a");
    // The task is named by the folder of its training file: the setup's temporary folder.
    let task = setup.dir.path().file_name().unwrap();
    for seed in ["seed0", "seed1"] {
        let kept: Vec<String> = std::fs::read_dir(archive.join(task).join("finetune").join(seed))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
    }
    let (log, again) = sweep("b");
    assert_eq!(log.matches("is finished in the archive").count(), 2, "{log}");
    assert!(!log.contains("Main:"), "a run trained again:\n{log}");
    assert_eq!(first, again);
}

//! `tartan sweep` runs the grid once, tabulates it, and skips finished runs when run again.

mod common;

use std::process::Command;

use common::tiny::tiny_setup;

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

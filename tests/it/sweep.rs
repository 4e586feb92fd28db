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
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("](dev-curves.png)") && out_dir.join("dev-curves.png").exists(), "{report}");
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

/// `--leave-one-out` adds a run without each corpus; `tartan report` over the sweep's runs then
/// has an auxiliary-data section per TARTAN run, with the score with and without each corpus.
#[test]
fn leave_one_out_sweep_feeds_the_reports_auxiliary_data_section() {
    let setup = tiny_setup(53);
    let p = |n: &str| setup.path(n).display().to_string();
    let config = setup.path("base.toml");
    let aux = |name: &str| format!("[[aux]]\nname = \"{name}\"\nfile = \"{}\"\n", p(&format!("{name}.txt")));
    std::fs::write(
        &config,
        format!(
            "[model]\nname = \"{}\"\nmax_length = 32\n[task]\ntrain = \"{}\"\ndev = \"{}\"\ntest = \"{}\"\n[train]\nbatch_size = 16\nmax_steps = 6\nlog_every = 1\n[eval]\nevery_steps = 3\n{}{}",
            setup.model.display(), p("train.jsonl"), p("dev.jsonl"), p("test.jsonl"), aux("related"), aux("noise")
        ),
    )
    .unwrap();
    let out_dir = setup.path("sweep");
    let tartan = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tartan")).args(args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    let strategies = "--strategies=mt-tartan,meta-tartan";
    tartan(&[
        "sweep",
        "--config",
        config.to_str().unwrap(),
        strategies,
        "--seeds",
        "0",
        "--leave-one-out",
        "--output",
        out_dir.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(out_dir.join("results.md")).unwrap();
    for row in ["mt-tartan", "mt-tartan without related", "meta-tartan without noise"] {
        assert!(md.contains(&format!("| {row} |")), "no row {row}:\n{md}");
    }
    let task = out_dir.join(setup.dir.path().file_name().unwrap());
    let variant = std::fs::read_to_string(task.join("meta-tartan-without-related/seed0/config.toml")).unwrap();
    assert!(variant.contains("left_out = [\"related\"]") && !variant.contains("related.txt"), "{variant}");

    let runs: Vec<String> = [
        "mt-tartan",
        "mt-tartan-without-related",
        "mt-tartan-without-noise",
        "meta-tartan",
        "meta-tartan-without-related",
        "meta-tartan-without-noise",
    ]
    .iter()
    .map(|s| task.join(s).join("seed0").display().to_string())
    .collect();
    let report = setup.path("report");
    let mut args = vec!["report", "--output", report.to_str().unwrap()];
    args.extend(runs.iter().map(String::as_str));
    tartan(&args);
    let text = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert_eq!(text.matches("### Auxiliary data: which helped, and when").count(), 6, "{text}");
    assert_eq!(text.matches("## How to read the auxiliary-data sections").count(), 1);
    let reference = text.lines().find(|l| l.starts_with("| end-task (for reference) |")).unwrap();
    assert_eq!(reference.matches('|').count(), 8, "seven cells, as the header: {reference}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| related |")).collect();
    // MT-TARTAN: fixed weights of 1/3, no cosine (no dev gradient), a share from the gradient norms.
    assert!(rows[0].starts_with("| related | 0.333 | 0.333 | - | - | ") && rows[0].contains('%'), "{}", rows[0]);
    assert!(rows[0].contains("(n=1) / ") && rows[0].contains("(n=1): "), "no leave-one-out scores: {}", rows[0]);
    // META-TARTAN logs the cosine.
    let meta = rows.iter().find(|r| r.contains("(n=1) / ") && !r.contains("| - | - |")).expect("a META-TARTAN row");
    assert!(meta.contains('%'), "{meta}");
    assert!(text.contains("](01-mt-tartan-seed0/aux-related.png)"), "{text}");
    assert!(report.join("04-meta-tartan-seed0/aux-noise.png").exists());
    assert!(report.join("01-mt-tartan-seed0/losses.png").exists());

    // The overview of a study: the comparison, its charts and a line per run, no run folders.
    let overview = setup.path("overview");
    let mut args = vec!["report", "--overview", "--output", overview.to_str().unwrap()];
    args.extend(runs.iter().map(String::as_str));
    tartan(&args);
    let text = std::fs::read_to_string(overview.join("report.md")).unwrap();
    let task = setup.dir.path().file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains("| mt-tartan without related |") && text.contains("## Runs"), "{text}");
    let line = text.lines().find(|l| l.starts_with(&format!("| {task} | meta-tartan | 0 |"))).expect("META's line");
    assert!(line.contains("| 6 |") && line.contains("end-task 0.") && line.contains("related 0."), "{line}");
    let charts =
        [format!("meta-tartan-{task}.png"), "dev-curves.png".into(), "results.csv".into(), "results.json".into()];
    for file in charts {
        assert!(overview.join(&file).exists(), "no {file}");
        assert!(text.contains(&file) || file.starts_with("results"), "report.md does not show {file}");
    }
    // Each TARTAN run's corpora, with the figures of its auxiliary-data section.
    let aux = text.lines().find(|l| l.starts_with(&format!("| {task} | meta-tartan | 0 | related |"))).expect("a row");
    assert_eq!(aux.matches('|').count(), 11, "ten cells, as the header: {aux}");
    assert!(aux.ends_with("% |") && !aux.contains("| - | - |"), "META-TARTAN logs cosines and accuracy: {aux}");
    let folders = std::fs::read_dir(&overview).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(folders, 0, "an overview has no per-run folders");
}

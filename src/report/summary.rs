//! `tartan report`: a Markdown summary of runs: for several, their comparison first
//! (`comparison.rs`, `charts.rs`); then, unless an overview is asked for, each run's charts.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::charts::write_comparison_charts;
use super::comparison::{gains_markdown, runs_markdown, write_tables};
use crate::config::RunConfig;
use crate::train::charts::RunLog;
use crate::train::records::RunResult;

/// One run: its resolved configuration and, once it has finished, its results.
pub struct RunSummary {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// `None` while the run trains (no results.json yet): its report then shows what
    /// metrics.jsonl logged so far, and it stays out of every comparison.
    pub result: Option<RunResult>,
}

impl RunSummary {
    pub fn read(dir: &Path) -> Result<Self> {
        let config: RunConfig = toml::from_str(
            &std::fs::read_to_string(dir.join("config.toml"))
                .with_context(|| format!("{} has no config.toml", dir.display()))?,
        )
        .with_context(|| format!("{}/config.toml is not valid", dir.display()))?;
        let result = if dir.join("results.json").exists() {
            Some(RunResult::read(dir)?)
        } else if dir.join("metrics.jsonl").exists() {
            None
        } else {
            bail!(
                "{} has neither results.json nor metrics.jsonl: a run writes metrics.jsonl at its first logged step; report on a run folder that has trained",
                dir.display()
            );
        };
        Ok(Self { dir: dir.to_path_buf(), config, result })
    }

    /// The task's name: the folder holding its training file (`chemprot`, `citation_intent`).
    pub fn task(&self) -> String {
        self.config.task.name()
    }
}

/// What a report holds besides the comparison of several runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// A section per run, with its charts.
    PerRun,
    /// The comparison only: the tables, the charts across runs and one line per run, small
    /// enough to commit for a whole study.
    Overview,
}

/// Writes `report.md` into `out`. Over several runs it begins with their comparison (also
/// written as `results.md/.csv/.json`, with its charts); with `Detail::PerRun` each run's charts
/// follow, redrawn in a folder of their own (`01-meta-tartan-seed0/`). Links are relative, so
/// the report folder stands alone.
pub fn write_report(runs: &[RunSummary], out: &Path, detail: Detail) -> Result<PathBuf> {
    if out.exists() && !out.is_dir() {
        bail!("{} is a file; --output names the folder report.md is written into: give a folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the report folder {}", out.display()))?;
    let mut md = String::from("# tartan report\n\n");
    if runs.len() > 1 {
        md += &comparison(runs, out)?;
    }
    if detail == Detail::PerRun {
        md += &run_sections(runs, out)?;
    }
    let path = out.join("report.md");
    crate::fsutil::write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

/// The table over seeds, the charts across runs, and one line per run.
fn comparison(runs: &[RunSummary], out: &Path) -> Result<String> {
    let mut md = String::from(
        "Selection metric on test, mean ± std over runs (dev mean in parentheses), in percent; \
         also in `results.md`, `results.csv` and `results.json`.\n\n",
    );
    md += &write_tables(runs, out)?;
    md += "\n";
    if let Some(gains) = gains_markdown(runs) {
        md += "Gain over fine-tuning on test, in points: the mean over seeds of each run minus the \
               fine-tune run of the same seed, and each seed's difference.\n\n";
        md += &gains;
        md += "\n";
    }
    for chart in write_comparison_charts(runs, out)? {
        let link = chart.png.strip_prefix(out).unwrap_or(&chart.png);
        let _ = writeln!(md, "![{}]({})\n", chart.caption, link.display());
    }
    md += "## Runs\n\nEach finished run: optimizer steps done, the step of the model kept (best on dev), \
           its median seconds per step and the time of its logged steps (from `metrics.jsonl`, over every \
           process that trained it, evaluations included, TAPT's masked-LM phases not), its dev and test \
           selection metric (percent) and its last logged task weights.\n\n";
    md += &runs_markdown(runs)?;
    md += "\n";
    if let Some(table) = super::auxiliary::overview_table(runs)? {
        md += "## Auxiliary corpora\n\nPer MT-TARTAN and META-TARTAN run and corpus, as in each run's \
               auxiliary-data section (definitions there, or in a report without `--overview`), with the \
               corpus' masked-token accuracy on its last logged batch.\n\n";
        md += &table;
        md += "\n";
    }
    Ok(md)
}

/// A section per run: its headline, charts and, for TARTAN runs, what each corpus did.
fn run_sections(runs: &[RunSummary], out: &Path) -> Result<String> {
    let mut md = String::new();
    let mut explained = false;
    for (i, r) in runs.iter().enumerate() {
        let dir = out.join(format!("{:02}-{}", i + 1, crate::train::charts::run_name(&r.dir).replace('/', "-")));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let charts = crate::train::charts::write_run_charts(&r.dir, &dir, r.config.metric().key())?;
        let _ = writeln!(md, "## {}\n", r.dir.display());
        match &r.result {
            Some(result) => md += &finished(r, result),
            None => md += &unfinished(r)?,
        }
        md += "\n";
        for c in charts {
            let link = c.strip_prefix(out).unwrap_or(&c);
            let _ = writeln!(md, "![{}]({})\n", c.file_stem().unwrap_or_default().to_string_lossy(), link.display());
        }
        if let Some(section) = super::auxiliary::section(r, runs, &dir, out)? {
            md += &section;
            explained = true;
        }
    }
    if explained {
        md += super::auxiliary::DEFINITIONS;
    }
    Ok(md)
}

/// The headline of a finished run: steps, best step, time and scores.
fn finished(r: &RunSummary, result: &RunResult) -> String {
    let mut md = format!(
        "strategy `{}`, task `{}`, seed {}, {} steps, best at step {}, {:.0} s\n\n",
        r.config.label(),
        r.task(),
        r.config.seed,
        result.steps,
        result.best_step.map_or("-".into(), |s| s.to_string()),
        result.train_seconds
    );
    for (split, scores) in [("dev", &result.dev), ("test", &result.test)] {
        if let Some(s) = scores {
            let _ = writeln!(
                md,
                "- {split}: accuracy {:.2}, macro-F1 {:.2}, micro-F1 {:.2} (n = {})",
                100.0 * s.accuracy,
                100.0 * s.macro_f1,
                100.0 * s.micro_f1,
                s.n
            );
        }
    }
    md
}

/// The headline of a run still training: how far metrics.jsonl goes and its best dev score so
/// far, which the run's final result need not keep.
fn unfinished(r: &RunSummary) -> Result<String> {
    let log = RunLog::read(&r.dir)?;
    let metric = r.config.metric().key();
    // Every logged optimizer step has a learning rate; the MLM-head warm-up's steps count apart.
    let last_step = log.train.get("lr").and_then(|p| p.last()).map_or(0.0, |p| p.0);
    let best = log
        .eval
        .get(&("dev".to_string(), metric.to_string()))
        .and_then(|points| points.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)));
    let best = best.map_or("no dev evaluation yet".into(), |(step, v)| {
        format!("best dev {metric} so far {:.2} at step {step}", 100.0 * v)
    });
    Ok(format!(
        "strategy `{}`, task `{}`, seed {}: **unfinished** (no results.json), {last_step} steps logged, {best}\n",
        r.config.label(),
        r.task(),
        r.config.seed,
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::{Metric, Strategy};
    use crate::train::metrics::Scores;

    /// A finished run of `strategy` on `task` with test accuracy `test_acc` (dev 0.5), as the
    /// report's tests compare them.
    pub(in crate::report) fn run(strategy: Strategy, task: &str, seed: u64, test_acc: f64) -> RunSummary {
        let mut config = RunConfig { strategy, seed, ..RunConfig::default() };
        config.task.train = PathBuf::from(format!("data/{task}/train.jsonl"));
        config.task.metric = Some(Metric::Accuracy);
        let scores = |acc: f64| Scores {
            accuracy: acc,
            macro_f1: 0.0,
            micro_f1: acc,
            per_label: vec![],
            confusion: vec![],
            n: 10,
        };
        let result = RunResult {
            metric: "accuracy".into(),
            best_step: Some(1),
            dev: Some(scores(0.5)),
            test: Some(scores(test_acc)),
            steps: 1,
            train_seconds: 1.0,
            final_finetune: None,
        };
        RunSummary { dir: PathBuf::from("x"), config, result: Some(result) }
    }

    /// A run still training is reported from its log so far, and kept out of the table.
    #[test]
    fn a_run_without_results_is_reported_as_unfinished_from_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("chemprot/finetune");
        std::fs::create_dir_all(&run_dir).unwrap();
        let config = run(Strategy::Finetune, "chemprot", 0, 0.7).config;
        std::fs::write(run_dir.join("config.toml"), toml::to_string(&config).unwrap()).unwrap();
        let records = [
            r#"{"type":"mlm_warmup","step":100,"loss":7.0,"accuracy":0.05}"#,
            r#"{"type":"train","step":5,"lr":1e-4,"head_lr":1e-3,"loss":1.0,"grad_norm":1.0,"steps_per_s":1.0,"tasks":{"end-task":{"loss":1.0,"weight":1.0}}}"#,
            r#"{"type":"eval","step":5,"split":"dev","accuracy":0.5,"macro_f1":0.4,"micro_f1":0.5}"#,
            r#"{"type":"eval","step":10,"split":"dev","accuracy":0.25,"macro_f1":0.2,"micro_f1":0.25}"#,
            r#"{"type":"train","step":10,"lr":1e-4,"head_lr":1e-3,"loss":1.0,"grad_norm":1.0,"steps_per_s":1.0,"tasks":{"end-task":{"loss":1.0,"weight":1.0}}}"#,
        ];
        std::fs::write(run_dir.join("metrics.jsonl"), records.join("\n")).unwrap();
        let runs = vec![RunSummary::read(&run_dir).unwrap(), run(Strategy::MetaTartan, "chemprot", 0, 0.9)];
        assert!(runs[0].result.is_none());
        assert!(
            !super::super::comparison::table_markdown(&runs).contains("finetune"),
            "an unfinished run has no score to compare"
        );
        let md = std::fs::read_to_string(write_report(&runs[..1], &dir.path().join("report"), Detail::PerRun).unwrap())
            .unwrap();
        assert!(
            md.contains("**unfinished** (no results.json), 10 steps logged, best dev accuracy so far 50.00 at step 5"),
            "{md}"
        );
        std::fs::remove_file(run_dir.join("metrics.jsonl")).unwrap();
        let err = RunSummary::read(&run_dir).err().unwrap();
        assert!(format!("{err:#}").contains("has neither results.json nor metrics.jsonl"), "{err:#}");
    }
}

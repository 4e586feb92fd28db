//! `tartan report`: a Markdown summary of runs and, for several, the comparison table in the
//! layout of the paper's (strategies as rows, tasks as columns, mean ± std over seeds).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::RunConfig;
use crate::train::records::RunResult;

/// One finished run: its resolved configuration and results.
pub struct RunSummary {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub result: RunResult,
}

impl RunSummary {
    pub fn read(dir: &Path) -> Result<Self> {
        let config: RunConfig = toml::from_str(
            &std::fs::read_to_string(dir.join("config.toml"))
                .with_context(|| format!("{} has no config.toml", dir.display()))?,
        )
        .with_context(|| format!("{}/config.toml is not valid", dir.display()))?;
        let result: RunResult = serde_json::from_str(
            &std::fs::read_to_string(dir.join("results.json"))
                .with_context(|| format!("{} has no results.json (not finished?)", dir.display()))?,
        )
        .with_context(|| format!("{}/results.json is not valid", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf(), config, result })
    }

    /// The task's name: the folder holding its training file (`chemprot`, `citation_intent`).
    pub fn task(&self) -> String {
        self.config.task.name()
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// (strategy, task) -> (dev values, test values) of each run's selection metric, in percent.
pub fn table(runs: &[RunSummary]) -> BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> {
    let mut cells: BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for r in runs {
        let metric = r.config.metric();
        let cell = cells.entry((r.config.strategy_name(), r.task())).or_default();
        if let Some(s) = &r.result.dev {
            cell.0.push(100.0 * s.get(metric));
        }
        if let Some(s) = &r.result.test {
            cell.1.push(100.0 * s.get(metric));
        }
    }
    cells
}

/// The comparison table as Markdown (test, with dev in parentheses).
pub fn table_markdown(runs: &[RunSummary]) -> String {
    let cells = table(runs);
    let tasks: Vec<String> =
        cells.keys().map(|(_, t)| t.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let strategies: Vec<String> =
        cells.keys().map(|(s, _)| s.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut out = format!("| strategy | {} |\n| --- |{}\n", tasks.join(" | "), " --- |".repeat(tasks.len()));
    for s in &strategies {
        let row: Vec<String> = tasks
            .iter()
            .map(|t| match cells.get(&(s.clone(), t.clone())) {
                Some((dev, test)) if !test.is_empty() => {
                    let (m, sd) = mean_std(test);
                    let dev = if dev.is_empty() { String::new() } else { format!(" (dev {:.1})", mean_std(dev).0) };
                    format!("{m:.1} ± {sd:.1}{dev}, n={}", test.len())
                }
                _ => "-".into(),
            })
            .collect();
        let _ = writeln!(out, "| {s} | {} |", row.join(" | "));
    }
    out
}

/// Writes `report.md` into `out`, redrawing each run's charts.
pub fn write_report(runs: &[RunSummary], out: &Path) -> Result<PathBuf> {
    if out.exists() && !out.is_dir() {
        bail!("{} is a file; --output names the folder report.md is written into: give a folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the report folder {}", out.display()))?;
    let mut md = String::from("# tartan report\n\n");
    if runs.len() > 1 {
        md += "Selection metric on test, mean ± std over runs (dev mean in parentheses), in percent.\n\n";
        md += &table_markdown(runs);
        md += "\n";
    }
    for r in runs {
        let charts = crate::train::charts::write_run_charts(&r.dir, r.config.metric().key())?;
        let _ = writeln!(md, "## {}\n", r.dir.display());
        let _ = writeln!(
            md,
            "strategy `{}`, task `{}`, seed {}, {} steps, best at step {}, {:.0} s\n",
            r.config.strategy_name(),
            r.task(),
            r.config.seed,
            r.result.steps,
            r.result.best_step.map_or("-".into(), |s| s.to_string()),
            r.result.train_seconds
        );
        for (split, scores) in [("dev", &r.result.dev), ("test", &r.result.test)] {
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
        md += "\n";
        for c in charts {
            let _ = writeln!(
                md,
                "![{}]({})\n",
                c.file_stem().unwrap_or_default().to_string_lossy(),
                std::path::absolute(&c).unwrap_or(c.clone()).display()
            );
        }
    }
    let path = out.join("report.md");
    crate::fsutil::write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Metric, Strategy};
    use crate::train::metrics::Scores;

    fn run(strategy: Strategy, task: &str, seed: u64, test_acc: f64) -> RunSummary {
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
        RunSummary { dir: PathBuf::from("x"), config, result }
    }

    #[test]
    fn table_has_strategies_as_rows_tasks_as_columns_and_mean_std_over_seeds() {
        let runs = vec![
            run(Strategy::Finetune, "chemprot", 0, 0.70),
            run(Strategy::Finetune, "chemprot", 1, 0.80),
            run(Strategy::MetaTartan, "chemprot", 0, 0.90),
            run(Strategy::Finetune, "sciie", 0, 0.60),
        ];
        let md = table_markdown(&runs);
        assert!(md.starts_with("| strategy | chemprot | sciie |"), "{md}");
        // 70 and 80: mean 75, sample std 7.07.
        assert!(md.contains("| finetune | 75.0 ± 7.1 (dev 50.0), n=2 | 60.0 ± 0.0 (dev 50.0), n=1 |"), "{md}");
        assert!(md.contains("| meta-tartan | 90.0 ± 0.0 (dev 50.0), n=1 | - |"), "{md}");
    }
}

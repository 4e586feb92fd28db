//! The comparison of several runs: the table in the paper's layout (strategies as rows in the
//! paper's order, tasks as columns, mean ± std over seeds) as Markdown, CSV and JSON, and one
//! line per run (steps, best step, time, scores, final weights).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use anyhow::Result;

use super::summary::RunSummary;
use crate::config::Strategy;
use crate::fsutil::write_atomic;
use crate::train::charts::RunLog;
use crate::train::metrics::Scores;

/// A row of the table: the strategy and, for leave-one-out runs, the corpora left out. Rows
/// sort in the paper's order (fine-tune, TAPT, MT-TARTAN, META-TARTAN), each strategy's
/// leave-one-out rows after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub strategy: Strategy,
    /// `RunConfig::label`: the strategy's name, and "without ..." for leave-one-out runs.
    pub label: String,
}

impl Row {
    pub(super) fn of(run: &RunSummary) -> Self {
        Self { strategy: run.config.strategy, label: run.config.label() }
    }
}

/// Dev and test values of each finished run's selection metric in a cell, in percent.
#[derive(Debug, Default)]
pub struct Cell {
    pub dev: Vec<f64>,
    pub test: Vec<f64>,
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// (row, task) -> the cell of the finished runs. Runs without some corpora (`left_out`) have
/// rows of their own.
pub fn table(runs: &[RunSummary]) -> BTreeMap<(Row, String), Cell> {
    let mut cells: BTreeMap<(Row, String), Cell> = BTreeMap::new();
    for (r, result) in runs.iter().filter_map(|r| Some((r, r.result.as_ref()?))) {
        let metric = r.config.metric();
        let cell = cells.entry((Row::of(r), r.task())).or_default();
        if let Some(s) = &result.dev {
            cell.dev.push(100.0 * s.get(metric));
        }
        if let Some(s) = &result.test {
            cell.test.push(100.0 * s.get(metric));
        }
    }
    cells
}

/// The comparison table as Markdown: test mean ± sample sd (none for one run), dev mean in
/// parentheses, and the number of runs.
pub fn table_markdown(runs: &[RunSummary]) -> String {
    cells_markdown(&table(runs))
}

/// The header of a table with a column per task.
fn header(tasks: &BTreeSet<&String>) -> String {
    let names: Vec<&str> = tasks.iter().map(|t| t.as_str()).collect();
    format!("| strategy | {} |\n| --- |{}\n", names.join(" | "), " --- |".repeat(tasks.len()))
}

fn cells_markdown(cells: &BTreeMap<(Row, String), Cell>) -> String {
    let tasks: BTreeSet<&String> = cells.keys().map(|(_, t)| t).collect();
    let rows: BTreeSet<&Row> = cells.keys().map(|(r, _)| r).collect();
    let mut out = header(&tasks);
    for row in rows {
        let values: Vec<String> = tasks
            .iter()
            .map(|&t| match cells.get(&(row.clone(), t.clone())) {
                Some(c) if !c.test.is_empty() => {
                    let (m, sd) = mean_std(&c.test);
                    // One run has no spread to show.
                    let sd = if c.test.len() > 1 { format!(" ± {sd:.1}") } else { String::new() };
                    let dev =
                        if c.dev.is_empty() { String::new() } else { format!(" (dev {:.1})", mean_std(&c.dev).0) };
                    format!("{m:.1}{sd}{dev}, n={}", c.test.len())
                }
                _ => "-".into(),
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.label, values.join(" | "));
    }
    out
}

/// `results.md/.csv/.json` in `out`: the comparison table over `runs`. Returns the Markdown.
pub fn write_tables(runs: &[RunSummary], out: &Path) -> Result<String> {
    let cells = table(runs);
    let md = cells_markdown(&cells);
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    let mut csv = String::from("strategy,task,split,mean,std,n,values\n");
    let mut json = serde_json::Map::new();
    for ((row, task), cell) in &cells {
        for (split, values) in [("dev", &cell.dev), ("test", &cell.test)] {
            let (mean, std) = if values.is_empty() { (f64::NAN, f64::NAN) } else { mean_std(values) };
            let list: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
            let label = &row.label;
            let _ = writeln!(csv, "{label},{task},{split},{mean:.2},{std:.2},{},{}", values.len(), list.join(";"));
            json.insert(
                format!("{label}/{task}/{split}"),
                serde_json::json!({"mean": mean, "std": std, "values": values}),
            );
        }
    }
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    write_atomic(&out.join("results.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(md)
}

/// Each strategy's gain over fine-tuning on test, paired by seed: per task, the mean of
/// (run - fine-tune run of the same seed) over the seeds both have, and each seed's difference.
/// Pairing takes out what a seed does to both (data order, head); `None` without fine-tune runs.
pub fn gains_markdown(runs: &[RunSummary]) -> Option<String> {
    let test = |r: &RunSummary| Some(100.0 * r.result.as_ref()?.test.as_ref()?.get(r.config.metric()));
    let mut by: BTreeMap<(Row, String), BTreeMap<u64, f64>> = BTreeMap::new();
    for r in runs {
        if let Some(v) = test(r) {
            by.entry((Row::of(r), r.task())).or_default().insert(r.config.seed, v);
        }
    }
    let finetune: BTreeMap<&String, &BTreeMap<u64, f64>> =
        by.iter().filter(|((row, _), _)| row.strategy == Strategy::Finetune).map(|((_, t), v)| (t, v)).collect();
    let tasks: BTreeSet<&String> = finetune.keys().copied().collect();
    let rows: BTreeSet<&Row> = by.keys().map(|(r, _)| r).filter(|r| r.strategy != Strategy::Finetune).collect();
    if tasks.is_empty() || rows.is_empty() {
        return None;
    }
    let mut md = header(&tasks);
    for row in rows {
        let cells: Vec<String> = tasks
            .iter()
            .map(|&task| {
                let Some(own) = by.get(&(row.clone(), task.clone())) else { return "-".into() };
                let diffs: Vec<(u64, f64)> =
                    own.iter().filter_map(|(seed, v)| Some((*seed, v - finetune[task].get(seed)?))).collect();
                if diffs.is_empty() {
                    return "-".into();
                }
                let mean = diffs.iter().map(|d| d.1).sum::<f64>() / diffs.len() as f64;
                let each: Vec<String> = diffs.iter().map(|(s, d)| format!("{d:+.1} (seed {s})")).collect();
                format!("**{mean:+.1}**: {}", each.join(", "))
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", row.label, cells.join(" | "));
    }
    Some(md)
}

/// One line per finished run, in table order: where it stopped, its best step, its pace and
/// time from the log, dev and test selection metric, and the final task weights of multi-task
/// runs.
pub fn runs_markdown(runs: &[RunSummary]) -> Result<String> {
    let mut finished: Vec<&RunSummary> = runs.iter().filter(|r| r.result.is_some()).collect();
    finished.sort_by_key(|r| (r.task(), Row::of(r), r.config.seed));
    let mut md = String::from(
        "| task | strategy | seed | steps | best step | s / step (median) | time of the logged steps | dev | test | final weights |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in finished {
        let Some(result) = &r.result else { continue };
        let log = RunLog::read(&r.dir)?;
        let pace = Pace::of(&log);
        let metric = r.config.metric();
        let pct = |s: &Option<Scores>| s.as_ref().map_or("-".into(), |s| format!("{:.1}", 100.0 * s.get(metric)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.task(),
            r.config.label(),
            r.config.seed,
            result.steps,
            result.best_step.map_or("-".into(), |s| s.to_string()),
            pace.map_or("-".into(), |p| format!("{:.1}", p.median_step_seconds)),
            pace.map_or("-".into(), |p| minutes(p.seconds)),
            pct(&result.dev),
            pct(&result.test),
            final_weights(&log),
        );
    }
    Ok(md)
}

/// How fast a run trained, from the pace `metrics.jsonl` logs every `train.log_every` steps
/// (the wall time between two logged steps, evaluations included). Read from the log, it
/// covers every process that trained the run, also for runs whose `train_seconds` counts only
/// the last one (builds before 7229fca, 2026-11-30); it leaves out TAPT's masked-LM phases and
/// the MLM-head warm-up, which the log of the run folder does not hold.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pace {
    seconds: f64,
    median_step_seconds: f64,
}

impl Pace {
    fn of(log: &RunLog) -> Option<Self> {
        let points = log.train.get("steps_per_s")?;
        let mut previous = 0.0;
        let mut seconds = 0.0;
        let mut per_step = Vec::new();
        for &(step, rate) in points.iter().filter(|p| p.1 > 0.0) {
            seconds += (step - previous) / rate;
            per_step.push(1.0 / rate);
            previous = step;
        }
        per_step.sort_by(f64::total_cmp);
        let median = *per_step.get(per_step.len() / 2)?;
        Some(Self { seconds, median_step_seconds: median })
    }
}

/// `1 h 05 min` or `12 min`.
fn minutes(seconds: f64) -> String {
    let m = (seconds / 60.0).round() as u64;
    if m >= 60 { format!("{} h {:02} min", m / 60, m % 60) } else { format!("{m} min") }
}

/// `end-task 0.70, tapt 0.30` from the run's last logged weights; `-` for a single task.
fn final_weights(log: &RunLog) -> String {
    let last: Vec<String> = log
        .series("weight.")
        .into_iter()
        .filter_map(|s| Some(format!("{} {:.2}", s.name, s.points.last()?.1)))
        .collect();
    if last.len() > 1 { last.join(", ") } else { "-".into() }
}

#[cfg(test)]
mod tests {
    use super::super::summary::tests::run;
    use super::*;

    #[test]
    fn table_has_strategies_as_rows_in_the_papers_order_tasks_as_columns_and_mean_std_over_seeds() {
        let runs = vec![
            run(Strategy::MetaTartan, "chemprot", 0, 0.90),
            run(Strategy::Finetune, "chemprot", 0, 0.70),
            run(Strategy::Finetune, "chemprot", 1, 0.80),
            run(Strategy::PretrainFinetune, "sciie", 0, 0.65),
            run(Strategy::Finetune, "sciie", 0, 0.60),
        ];
        let md = table_markdown(&runs);
        assert!(md.starts_with("| strategy | chemprot | sciie |"), "{md}");
        // 70 and 80: mean 75, sample std 7.07.
        assert!(md.contains("| finetune | 75.0 ± 7.1 (dev 50.0), n=2 | 60.0 (dev 50.0), n=1 |"), "{md}");
        assert!(md.contains("| meta-tartan | 90.0 (dev 50.0), n=1 | - |"), "{md}");
        let rows: Vec<&str> = md.lines().skip(2).map(|l| l.split(" | ").next().unwrap()).collect();
        assert_eq!(rows, ["| finetune", "| pretrain-finetune", "| meta-tartan"]);
    }

    #[test]
    fn gains_pair_each_run_with_the_fine_tune_run_of_its_seed() {
        let runs = vec![
            run(Strategy::Finetune, "chemprot", 0, 0.70),
            run(Strategy::Finetune, "chemprot", 1, 0.80),
            run(Strategy::MetaTartan, "chemprot", 0, 0.75),
            run(Strategy::MetaTartan, "chemprot", 1, 0.90),
            // No fine-tune run of seed 2 to pair with: left out.
            run(Strategy::MetaTartan, "chemprot", 2, 0.10),
        ];
        let md = gains_markdown(&runs).unwrap();
        assert!(md.contains("| meta-tartan | **+7.5**: +5.0 (seed 0), +10.0 (seed 1) |"), "{md}");
        assert!(!md.contains("| finetune |"), "{md}");
        assert_eq!(gains_markdown(&runs[2..]), None, "no fine-tune runs, no gains");
    }

    #[test]
    fn pace_sums_the_logged_windows_and_takes_the_median_step() {
        let mut log = RunLog::default();
        // Steps 1-10 at 2 steps/s (5 s), 11-20 at 0.5 (20 s), 21-25 at 1 (5 s).
        log.train.insert("steps_per_s".into(), vec![(10.0, 2.0), (20.0, 0.5), (25.0, 1.0)]);
        let pace = Pace::of(&log).unwrap();
        assert!((pace.seconds - 30.0).abs() < 1e-9, "{pace:?}");
        assert_eq!(pace.median_step_seconds, 1.0);
        assert_eq!(Pace::of(&RunLog::default()), None);
    }

    #[test]
    fn training_time_reads_in_minutes_and_hours() {
        assert_eq!(minutes(29.0), "0 min");
        assert_eq!(minutes(754.0), "13 min");
        assert_eq!(minutes(3900.0), "1 h 05 min");
    }
}

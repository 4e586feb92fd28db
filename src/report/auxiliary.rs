//! "Which of my auxiliary data helped, and when?": for an MT-TARTAN or META-TARTAN run, per
//! auxiliary corpus, its weight, its gradient's cosine with the dev gradient and its share of
//! the update over the run, from the figures `metrics.jsonl` logs every `train.log_every`
//! steps; and the score with and without the corpus when the report has the runs without it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::comparison::{Row, mean_std};
use super::summary::RunSummary;
use crate::config::Strategy;
use crate::plot::{Panel, Series, draw};
use crate::train::charts::{RunLog, run_name};

/// The objective name of the end-task in the logs.
const END_TASK: &str = "end-task";

/// How to read the sections, once per report.
pub const DEFINITIONS: &str = "## How to read the auxiliary-data sections

- **weight**: the corpus' weight in the step's sum of losses, as logged every `train.log_every` steps (META-TARTAN: the softmax of its learned logit; MT-TARTAN: fixed).
- **cos with dev**: META-TARTAN only. The cosine between the corpus' gradient and the gradient of the end-task loss on dev data, over the shared encoder (the figure META-TARTAN's weight update follows; the step's last micro-batch). Charts show each logged value as a pale dot and a centred moving average over about a tenth of them; the table averages the first and the last third of the run's steps.
- **share of the update**: at a logged step, the corpus' `grad_norm` over the sum of every task's `grad_norm`, where `grad_norm` is the norm of the task's weighted gradient (its weight times the gradient of its loss) over the shared encoder, before clipping. It says how much of the summed gradient magnitude comes from the corpus; it ignores direction (two tasks that cancel both count) and AdamW's per-parameter scaling. The table gives its mean over the run; charts smooth it as the cosine.
- **with / without**: the selection metric in percent (test, or dev for runs without test scores; mean over runs, n runs) of the runs with this run's corpora and of those without this corpus: same task and strategy, or fine-tuning when no corpus is left. `tartan sweep --leave-one-out` schedules the runs without each corpus.
";

/// One task's logged figures over a run, as (step, value) points.
#[derive(Debug, Default, PartialEq)]
struct TaskFigures {
    weight: Vec<(f64, f64)>,
    cos: Vec<(f64, f64)>,
    share: Vec<(f64, f64)>,
}

/// Every task's figures; the share only at steps where every task logged a gradient norm.
fn task_figures(log: &RunLog) -> BTreeMap<String, TaskFigures> {
    let mut out: BTreeMap<String, TaskFigures> = BTreeMap::new();
    for (key, points) in &log.train {
        match key.split_once('.') {
            Some(("weight", task)) => out.entry(task.to_string()).or_default().weight = points.clone(),
            Some(("cos", task)) => out.entry(task.to_string()).or_default().cos = points.clone(),
            _ => {}
        }
    }
    for (task, share) in shares(log) {
        out.entry(task).or_default().share = share;
    }
    out
}

/// Per task, its gradient norm's share of the sum over all tasks at each logged step.
pub(super) fn shares(log: &RunLog) -> BTreeMap<String, Vec<(f64, f64)>> {
    let norms: Vec<(&str, &Vec<(f64, f64)>)> =
        log.train.iter().filter_map(|(k, v)| Some((k.strip_prefix("grad_norm.")?, v))).collect();
    let mut by_step: BTreeMap<u64, Vec<(&str, f64)>> = BTreeMap::new();
    for (task, points) in &norms {
        for &(step, norm) in points.iter() {
            by_step.entry(step as u64).or_default().push((task, norm));
        }
    }
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (step, row) in by_step {
        let total: f64 = row.iter().map(|r| r.1).sum();
        if row.len() < norms.len() || total <= 0.0 || !total.is_finite() {
            continue;
        }
        for (task, norm) in row {
            out.entry(task.to_string()).or_default().push((step as f64, norm / total));
        }
    }
    out
}

/// Centred moving average over about a tenth of the points (at least 3), so a trend reads
/// through the step-to-step noise; near the ends the window holds fewer points.
pub(super) fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let half = (points.len() / 20).max(1);
    (0..points.len())
        .map(|i| {
            let window = &points[i.saturating_sub(half)..(i + half + 1).min(points.len())];
            (points[i].0, window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64)
        })
        .collect()
}

/// The first and last logged step of a run, from the end-task's weights (logged at every
/// logged step), which `figures_row` splits into thirds.
fn logged_span(end: &TaskFigures) -> (f64, f64) {
    (end.weight.first().map_or(0.0, |p| p.0), end.weight.last().map_or(0.0, |p| p.0))
}

/// Mean of the values at steps in `steps`.
fn mean_in(points: &[(f64, f64)], steps: std::ops::RangeInclusive<f64>) -> Option<f64> {
    let values: Vec<f64> = points.iter().filter(|p| steps.contains(&p.0)).map(|p| p.1).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or("-".into(), format)
}

/// A table row: mean and final weight, mean cosine in the first and last third of the run,
/// mean share of the update.
fn figures_row(name: &str, f: &TaskFigures, steps: (f64, f64)) -> String {
    // Thirds of the logged steps' span, so both ends hold as many logged steps.
    let (first, last) = steps;
    let third = (last - first) / 3.0;
    let all = 0.0..=f64::INFINITY;
    let final_weight = f.weight.last().map(|p| p.1);
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        cell(mean_in(&f.weight, all.clone()), |v| format!("{v:.3}")),
        cell(final_weight, |v| format!("{v:.3}")),
        cell(mean_in(&f.cos, first..=first + third), |v| format!("{v:+.3}")),
        cell(mean_in(&f.cos, last - third..=last), |v| format!("{v:+.3}")),
        cell(mean_in(&f.share, all), |v| format!("{:.0}%", 100.0 * v)),
    )
}

/// The selection metric (percent) on `split` of the runs like `run` (task) whose corpora are
/// exactly `corpora` and whose strategy is `run`'s, or fine-tuning when `corpora` is empty.
fn scores(runs: &[RunSummary], run: &RunSummary, corpora: &BTreeSet<&str>, split: &str) -> Vec<f64> {
    let metric = run.config.metric();
    runs.iter()
        .filter(|r| r.task() == run.task())
        .filter(|r| {
            if corpora.is_empty() {
                r.config.strategy == Strategy::Finetune
            } else {
                r.config.strategy == run.config.strategy && corpus_names(r) == *corpora
            }
        })
        .filter_map(|r| r.result.as_ref())
        .filter_map(|result| if split == "test" { result.test.as_ref() } else { result.dev.as_ref() })
        .map(|s| 100.0 * s.get(metric))
        .collect()
}

fn corpus_names(run: &RunSummary) -> BTreeSet<&str> {
    run.config.aux.iter().map(|a| a.name.as_str()).collect()
}

/// "with / without" of `corpus`: mean (n) of each group and the difference, or `-` without
/// runs lacking the corpus.
fn with_without(run: &RunSummary, runs: &[RunSummary], corpus: &str, split: &str) -> String {
    let with = corpus_names(run);
    let mut without = with.clone();
    without.remove(corpus);
    let (a, b) = (scores(runs, run, &with, split), scores(runs, run, &without, split));
    if a.is_empty() || b.is_empty() {
        return "-".into();
    }
    let (ma, mb) = (mean_std(&a).0, mean_std(&b).0);
    format!("{ma:.1} (n={}) / {mb:.1} (n={}): {:+.1}", a.len(), b.len(), ma - mb)
}

/// A file name part for a corpus name: letters, digits, `-`, `_` and `.` kept.
fn file_part(name: &str) -> String {
    name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect()
}

/// The chart of one corpus: weight, cosine with the dev gradient and share of the update,
/// with the end-task's for reference. Panels without logged figures are left out.
fn draw_corpus(stem: &Path, title: &str, name: &str, f: &TaskFigures, end: &TaskFigures) -> Result<PathBuf> {
    let mut panels = vec![Panel {
        title: format!("Weight of {name} in the loss (end-task for reference)"),
        y_label: "weight".into(),
        series: vec![Series::line(name, f.weight.clone()), Series::line(END_TASK, end.weight.clone())],
    }];
    let noisy = |points: &[(f64, f64)], end: &[(f64, f64)]| {
        vec![
            Series::faint(format!("{name}, each logged step"), points.to_vec()),
            Series::line(format!("{name}, moving average"), smooth(points)),
            Series::line(format!("{END_TASK}, moving average"), smooth(end)),
        ]
    };
    if !f.cos.is_empty() {
        panels.push(Panel {
            title: "Cosine of its gradient with the dev gradient".into(),
            y_label: "cosine".into(),
            series: noisy(&f.cos, &end.cos),
        });
    }
    if !f.share.is_empty() {
        panels.push(Panel {
            title: "Share of the update: its weighted-gradient norm over the sum of all tasks'".into(),
            y_label: "share".into(),
            series: noisy(&f.share, &end.share),
        });
    }
    draw(stem, title, "optimizer step", &panels)
}

/// The auxiliary-data section of `run` (MT-TARTAN and META-TARTAN runs; `None` for others),
/// with the leave-one-out comparison against `runs`. Its charts go into `charts`, a folder
/// under `out`, which the links are relative to.
pub fn section(run: &RunSummary, runs: &[RunSummary], charts: &Path, out: &Path) -> Result<Option<String>> {
    if !matches!(run.config.strategy, Strategy::MtTartan | Strategy::MetaTartan) {
        return Ok(None);
    }
    let figures = task_figures(&RunLog::read(&run.dir)?);
    let empty = TaskFigures::default();
    let end = figures.get(END_TASK).unwrap_or(&empty);
    let steps = logged_span(end);
    let split = if run.result.as_ref().is_some_and(|r| r.test.is_some()) { "test" } else { "dev" };
    let metric = run.config.metric().key();
    let mut md = String::from("### Auxiliary data: which helped, and when\n\n");
    let _ = writeln!(
        md,
        "| corpus | mean weight | final weight | cos with dev, first third | cos with dev, last third | share of the update | {split} {metric} with / without it |"
    );
    md += "| --- | --- | --- | --- | --- | --- | --- |\n";
    let mut links = String::new();
    for a in &run.config.aux {
        let f = figures.get(&a.name).unwrap_or(&empty);
        let _ = writeln!(md, "{} {} |", figures_row(&a.name, f, steps), with_without(run, runs, &a.name, split));
        let stem = charts.join(format!("aux-{}", file_part(&a.name)));
        let png = draw_corpus(&stem, &format!("{}: auxiliary corpus {}", run_name(&run.dir), a.name), &a.name, f, end)?;
        let link = png.strip_prefix(out).map(PathBuf::from).unwrap_or(png);
        let _ = writeln!(
            links,
            "![{}: weight, cosine with the dev gradient, share of the update]({})\n",
            a.name,
            link.display()
        );
    }
    let _ = writeln!(md, "{}  |\n", figures_row(&format!("{END_TASK} (for reference)"), end, steps));
    Ok(Some(md + &links))
}

/// For an overview: one row per auxiliary corpus of every finished MT-/META-TARTAN run (the
/// figures of each run's section, plus the corpus' last masked-token accuracy); `None` when
/// there is no such run.
pub fn overview_table(runs: &[RunSummary]) -> Result<Option<String>> {
    let mut multi: Vec<&RunSummary> = runs
        .iter()
        .filter(|r| r.result.is_some() && matches!(r.config.strategy, Strategy::MtTartan | Strategy::MetaTartan))
        .collect();
    if multi.is_empty() {
        return Ok(None);
    }
    multi.sort_by_key(|r| (r.task(), Row::of(r), r.config.seed));
    let mut md = String::from(
        "| task | strategy | seed | corpus | mean weight | final weight | cos with dev, first third | cos with dev, last third | share of the update | last masked-token accuracy |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for run in multi {
        let log = RunLog::read(&run.dir)?;
        let figures = task_figures(&log);
        let empty = TaskFigures::default();
        let steps = logged_span(figures.get(END_TASK).unwrap_or(&empty));
        for a in &run.config.aux {
            let row = figures_row(&a.name, figures.get(&a.name).unwrap_or(&empty), steps);
            let accuracy = log.train.get(&format!("accuracy.{}", a.name)).and_then(|p| p.last()).map(|p| p.1);
            let _ = writeln!(
                md,
                "| {} | {} | {} {} | {} |",
                run.task(),
                run.config.label(),
                run.config.seed,
                row.trim_end_matches(" |"),
                cell(accuracy, |v| format!("{:.0}%", 100.0 * v)),
            );
        }
    }
    Ok(Some(md))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::records::{Record, TaskStep};

    fn step(step: usize, tasks: &[(&str, f64, f64, Option<f64>)]) -> Record {
        let tasks = tasks
            .iter()
            .map(|&(name, weight, cos, grad_norm)| {
                let t = TaskStep { loss: 1.0, weight, cos: Some(cos), grad_norm, ..TaskStep::default() };
                (name.to_string(), t)
            })
            .collect();
        Record::Train {
            step,
            lr: 1e-4,
            head_lr: 1e-3,
            loss: 1.0,
            grad_norm: 1.0,
            steps_per_s: 1.0,
            dev_loss: None,
            tasks,
        }
    }

    #[test]
    fn share_is_each_tasks_gradient_norm_over_the_sum_at_steps_where_all_logged_one() {
        let records = [
            step(5, &[("end-task", 0.5, 0.9, Some(3.0)), ("tapt", 0.5, 0.1, Some(1.0))]),
            step(10, &[("end-task", 0.6, 0.8, Some(2.0)), ("tapt", 0.4, -0.2, Some(2.0))]),
            // A step where one task logged no norm has no share.
            step(15, &[("end-task", 0.6, 0.8, Some(2.0)), ("tapt", 0.4, -0.2, None)]),
        ];
        let figures = task_figures(&RunLog::from_records(&records));
        assert_eq!(figures["tapt"].share, vec![(5.0, 0.25), (10.0, 0.5)]);
        assert_eq!(figures["end-task"].share, vec![(5.0, 0.75), (10.0, 0.5)]);
        assert_eq!(figures["tapt"].cos, vec![(5.0, 0.1), (10.0, -0.2), (15.0, -0.2)]);
        assert_eq!(figures["tapt"].weight.len(), 3);
    }

    #[test]
    fn moving_average_is_centred_and_keeps_the_steps() {
        let points: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, [0.0, 3.0, 0.0, 3.0, 0.0][i])).collect();
        let s = smooth(&points);
        assert_eq!(s.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.iter().map(|p| p.1).collect::<Vec<_>>(), vec![1.5, 1.0, 2.0, 1.0, 1.5]);
    }

    #[test]
    fn the_table_row_averages_the_first_and_last_third() {
        let f = TaskFigures {
            weight: vec![(1.0, 0.2), (2.0, 0.4), (3.0, 0.6)],
            cos: vec![(1.0, 0.5), (2.0, 0.0), (3.0, -0.5)],
            share: vec![(1.0, 0.1), (3.0, 0.3)],
        };
        assert_eq!(figures_row("tapt", &f, (1.0, 3.0)), "| tapt | 0.400 | 0.600 | +0.500 | -0.500 | 20% |");
        assert_eq!(figures_row("x", &TaskFigures::default(), (1.0, 3.0)), "| x | - | - | - | - | - |");
    }
}

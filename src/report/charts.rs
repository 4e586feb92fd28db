//! Charts across runs, for a report over several: each task's dev curves by strategy (every
//! run's evaluations and their mean over seeds), and per task what META-TARTAN's runs did:
//! their weights, each objective's cosine with the dev gradient, and its share of the update.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::auxiliary::{shares, smooth};
use super::comparison::Row;
use super::summary::RunSummary;
use crate::config::Strategy;
use crate::plot::{Panel, Series, draw};
use crate::train::charts::RunLog;

/// A chart written, and what it shows.
pub struct Chart {
    pub png: PathBuf,
    pub caption: String,
}

/// Draws the charts comparing the finished runs among `runs` into `out`.
pub fn write_comparison_charts(runs: &[RunSummary], out: &Path) -> Result<Vec<Chart>> {
    let finished: Vec<(&RunSummary, RunLog)> =
        runs.iter().filter(|r| r.result.is_some()).map(|r| Ok((r, RunLog::read(&r.dir)?))).collect::<Result<_>>()?;
    let tasks: BTreeSet<String> = finished.iter().map(|(r, _)| r.task()).collect();
    let mut charts = Vec::new();
    let curves: Vec<Panel> = tasks.iter().map(|t| dev_curves(t, &finished)).collect();
    if !curves.is_empty() {
        let title = "Dev metric by strategy: each run's evaluations, and their mean";
        charts.push(Chart {
            png: draw(&out.join("dev-curves"), title, "optimizer step", &curves)?,
            caption: "Dev curves by strategy (dots: every run's evaluations; lines: the mean over the runs, up to the last step all of them reached)".into(),
        });
    }
    for task in &tasks {
        let meta: Vec<(u64, &RunLog)> = finished
            .iter()
            .filter(|(r, _)| {
                r.task() == *task && r.config.strategy == Strategy::MetaTartan && r.config.left_out.is_empty()
            })
            .map(|(r, log)| (r.config.seed, log))
            .collect();
        if meta.is_empty() {
            continue;
        }
        let stem = out.join(format!("meta-tartan-{task}"));
        charts.push(Chart {
            png: draw(&stem, &format!("{task}: META-TARTAN runs"), "optimizer step", &meta_panels(&meta))?,
            caption: format!(
                "{task}: META-TARTAN's weights, cosines with the dev gradient and shares of the update, per seed"
            ),
        });
    }
    Ok(charts)
}

/// One task's panel: per row, every run's dev evaluations as dots and their mean as a line.
fn dev_curves(task: &str, finished: &[(&RunSummary, RunLog)]) -> Panel {
    let mut by_row: BTreeMap<Row, Vec<&[(f64, f64)]>> = BTreeMap::new();
    let mut metric = "";
    for (r, log) in finished.iter().filter(|(r, _)| r.task() == task) {
        metric = r.config.metric().key();
        if let Some(points) = log.eval.get(&("dev".to_string(), metric.to_string())) {
            by_row.entry(Row::of(r)).or_default().push(points);
        }
    }
    let mut series = Vec::new();
    for (row, curves) in by_row {
        let dots = curves.iter().flat_map(|c| c.iter().map(|&(s, v)| (s, 100.0 * v))).collect();
        series.push(Series::faint(format!("{}, each run", row.label), dots));
        let n = curves.len();
        series.push(Series::line(format!("{}, mean of {n}", row.label), mean_where_all_reached(&curves)));
    }
    Panel { title: format!("{task}: dev {}", metric.replace('_', "-")), y_label: format!("{metric} (%)"), series }
}

/// The mean (in percent) over `curves` at each step all of them evaluated: early stopping ends
/// runs at different steps, and a mean over the runs still going would jump where one stops.
fn mean_where_all_reached(curves: &[&[(f64, f64)]]) -> Vec<(f64, f64)> {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for curve in curves {
        for &(step, v) in curve.iter() {
            at.entry(step as u64).or_default().push(v);
        }
    }
    at.into_iter()
        .filter(|(_, v)| v.len() == curves.len())
        .map(|(step, v)| (step as f64, 100.0 * v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

/// Weights, cosines and shares of the update of a task's META-TARTAN runs, one line per seed
/// and objective; cosines and shares as moving averages (the per-run reports show the raw
/// points).
fn meta_panels(runs: &[(u64, &RunLog)]) -> Vec<Panel> {
    let per_objective = |prefix: &str, smoothed: bool| -> Vec<Series> {
        runs.iter()
            .flat_map(|(seed, log)| {
                log.series(prefix).into_iter().map(move |s| {
                    let points = if smoothed { smooth(&s.points) } else { s.points };
                    Series::line(format!("seed {seed}, {}", s.name), points)
                })
            })
            .collect()
    };
    let share_series = runs
        .iter()
        .flat_map(|(seed, log)| {
            shares(log)
                .into_iter()
                .map(move |(name, points)| Series::line(format!("seed {seed}, {name}"), smooth(&points)))
        })
        .collect();
    vec![
        Panel { title: "Task weights".into(), y_label: "weight".into(), series: per_objective("weight.", false) },
        Panel {
            title: "Cosine with the dev gradient (moving average)".into(),
            y_label: "cosine".into(),
            series: per_objective("cos.", true),
        },
        Panel {
            title: "Share of the update: weighted-gradient norm over all tasks' (moving average)".into(),
            y_label: "share".into(),
            series: share_series,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_curve_stops_at_the_last_step_every_run_reached() {
        let a = [(10.0, 0.5), (20.0, 0.7), (30.0, 0.8)];
        let b = [(10.0, 0.7), (20.0, 0.9)];
        let mean = mean_where_all_reached(&[&a, &b]);
        assert_eq!(mean.len(), 2);
        assert!((mean[0].1 - 60.0).abs() < 1e-9 && (mean[1].1 - 80.0).abs() < 1e-9, "{mean:?}");
        assert_eq!(mean[1].0, 20.0);
    }
}

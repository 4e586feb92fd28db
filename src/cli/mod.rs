//! The `tartan` command line.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod export;
pub mod predict;
pub mod report;
pub mod sweep;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tartan", version, about = "End-task aware training (TARTAN) of BERT/RoBERTa encoders")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Time a workload (training step, forward, evaluation epoch, META-TARTAN step).
    Bench(bench::BenchArgs),
    /// Compare fine-tuning, MT-TARTAN and META-TARTAN on a synthetic task (no downloads), or
    /// on real data with --model and --task.
    Demo(demo::DemoArgs),
    /// Train with a strategy (fine-tune, TAPT/DAPT, MT-TARTAN, META-TARTAN) from a config file.
    Train(train::TrainArgs),
    /// Score a saved model on labelled JSONL data.
    Eval(eval::EvalArgs),
    /// Write a run's best model as a Hugging Face `*ForSequenceClassification` folder that
    /// `pipeline("text-classification")` loads.
    Export(export::ExportArgs),
    /// Predict labels and probabilities for JSONL texts (a file or stdin).
    Predict(predict::PredictArgs),
    /// Summarise finished runs: Markdown, charts and, for several runs, the comparison table.
    Report(report::ReportArgs),
    /// Run a grid of task configs x strategies x seeds and tabulate the results.
    Sweep(sweep::SweepArgs),
}

/// Parses a count flag that must be at least 1 (`--batch-size`, `--reps`, ...).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}; expected a whole number of at least 1")),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Export(a) => export::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Report(a) => report::run(a),
        Command::Sweep(a) => sweep::run(a),
    }
}

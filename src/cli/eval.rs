use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use clap::Args;

use crate::data::task::Split;
use crate::device::DeviceKind;
use crate::train::evaluate::evaluate;
use crate::train::saved_model::load_model;

#[derive(Args)]
pub struct EvalArgs {
    /// A model saved by `tartan train` (e.g. runs/x/best).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled JSONL (`text`, `label`).
    #[arg(long)]
    pub data: PathBuf,
    /// Examples per batch.
    #[arg(long, default_value_t = 64, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let device = crate::device::resolve(args.device)?;
    let saved = load_model(&args.model, &device)?;
    let split = Split::load(&args.data, &saved.labels, &saved.pretrained.tokenizer, saved.info.max_length)?;
    let scores = evaluate(
        &saved.model.valid(),
        &split,
        &saved.labels,
        args.batch_size,
        saved.pretrained.tokenizer.pad_id,
        &device,
    );
    println!("{}", serde_json::to_string_pretty(&scores)?);
    Ok(())
}

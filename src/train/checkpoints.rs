//! Resumable checkpoints, `checkpoint-<step>/` as Hugging Face Trainer names them: model,
//! optimizer moments and loop state, written atomically, rotated to `checkpoint.keep`, and
//! repaired after a crash in the middle of a swap.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::saved_model::save_pretrained;
use super::setup::{encoder_ids, param_groups};
use super::trainer::Trainer;
use crate::fsutil::{recover_dir, replace_dir, staging_dir, write_atomic};
use crate::model::weights::{load_plain, plain_tensors, read_plain, to_safetensors_bytes};
use crate::validate::at_least_one;

/// Checkpoints for resuming a run (`checkpoint-<step>/`, as Hugging Face Trainer names them).
/// `best/`, the best model by dev metric, is kept apart and always.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Save every this many optimizer steps; 0 means at each evaluation.
    pub every_steps: usize,
    /// How many of the most recent checkpoints are kept.
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { every_steps: 0, keep: 1 }
    }
}

impl CheckpointSection {
    pub fn validate(&self) -> Result<()> {
        at_least_one("checkpoint.keep", self.keep)
            .context("the latest checkpoint is what a run resumes from, so at least one is kept")
    }
}

impl Trainer {
    /// Writes `checkpoint-<step>/` (model, optimizer moments, loop state) atomically, then
    /// drops the oldest beyond `checkpoint.keep`.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        self.state.positions = self.objectives.iter().map(|o| o.position()).collect();
        self.state.weighting = self.weighting.state();
        self.state.seconds = self.clock.seconds();
        let run_dir = &self.plan.run_dir;
        let dest = run_dir.join(format!("checkpoint-{}", self.state.step));
        let tensors = plain_tensors(&self.model);
        self.check_finite(&tensors)?;
        let staged = staging_dir(&dest)?;
        write_atomic(&staged.join("model.safetensors"), &to_safetensors_bytes(&tensors)?)?;
        write_atomic(
            &staged.join("optimizer.safetensors"),
            &to_safetensors_bytes(&self.optim.state_tensors(&self.groups))?,
        )?;
        let state = serde_json::json!({"train": self.state, "optimizer_steps": self.optim.steps()});
        write_atomic(&staged.join("state.json"), serde_json::to_string_pretty(&state)?.as_bytes())?;
        replace_dir(&staged, &dest)?;
        let saved = checkpoints(run_dir)?;
        for (_, old) in &saved[..saved.len().saturating_sub(self.cfg.checkpoint.keep)] {
            std::fs::remove_dir_all(old)
                .with_context(|| format!("cannot remove the old checkpoint {}", old.display()))?;
        }
        Ok(())
    }

    /// Continues from checkpoint folder `dir`.
    pub(super) fn restore_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state_file = dir.join("state.json");
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file)?)
            .with_context(|| format!("{} is not valid JSON", state_file.display()))?;
        self.state = serde_json::from_value(state["train"].clone())
            .with_context(|| format!("{} is not a tartan checkpoint state", state_file.display()))?;
        let steps = state["optimizer_steps"].as_u64().unwrap_or(0);
        let model_file = dir.join("model.safetensors");
        self.model = load_plain(self.model.clone(), read_plain(&model_file)?, &model_file.display().to_string())?;
        // Loading gives the parameters new ids: the groups and the encoder set follow them.
        self.groups = param_groups(&self.model);
        self.encoder_ids = encoder_ids(&self.model);
        self.optim.load_state(steps, &read_plain(&dir.join("optimizer.safetensors"))?, &self.groups, &self.device)?;
        for (o, p) in self.objectives.iter_mut().zip(&self.state.positions) {
            o.seek(*p);
        }
        self.weighting.load_state(&self.state.weighting)?;
        self.clock = super::trainer::Clock::resume(self.state.seconds);
        tracing::info!("resumed {} at step {}", self.plan.run_dir.display(), self.state.step);
        Ok(())
    }

    /// A masked-LM phase's result: the encoder and MLM head in HF layout, for the next phase.
    pub(super) fn save_pretrained_model(&self) -> Result<()> {
        let model = &self.model;
        let dest = self.plan.run_dir.join("model");
        let p = &self.pretrained;
        save_pretrained(&dest, &model.encoder, model.mlm.as_ref(), &p.config, &p.tokenizer, Some(&p.dir))
    }

    /// Refuses to save parameters that are not all finite, so a diverged run never replaces
    /// the last good checkpoint.
    pub(super) fn check_finite(&self, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
        if let Some((name, _, _)) = tensors.iter().find(|(_, _, v)| v.iter().any(|x| !x.is_finite())) {
            bail!(
                "parameter {name} is not finite at step {}; nothing was saved and the last good checkpoint is kept. Lower the learning rates and resume",
                self.state.step
            );
        }
        Ok(())
    }
}

/// The latest complete checkpoint of a run (after repairing an interrupted swap), if any.
pub fn latest(run_dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    recover_checkpoints(run_dir)?;
    Ok(checkpoints(run_dir)?.pop())
}

/// The complete `checkpoint-<step>/` folders of a run, oldest first. Read-only, so it is safe
/// to call while another process trains in the folder.
pub fn checkpoints(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found: Vec<(usize, PathBuf)> = checkpoint_names(run_dir)?
        .into_iter()
        .filter_map(|name| Some((name.strip_prefix("checkpoint-")?.parse().ok()?, run_dir.join(&name))))
        .filter(|(_, dir): &(usize, PathBuf)| dir.join("state.json").exists())
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Puts back each checkpoint that a crash inside `replace_dir` left as `checkpoint-<step>.old`
/// and removes half-written `.staged` folders.
pub fn recover_checkpoints(run_dir: &Path) -> Result<()> {
    for name in checkpoint_names(run_dir)? {
        if let Some(base) = name.strip_suffix(".old").or_else(|| name.strip_suffix(".staged")) {
            recover_dir(&run_dir.join(base))?;
        }
    }
    Ok(())
}

fn checkpoint_names(run_dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", run_dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.with_context(|| format!("cannot list {}", run_dir.display()))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("checkpoint-") {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

//! AdamW with parameter groups, as `torch.optim.AdamW`.
//!
//! Hand-written rather than burn's `ModuleOptimizer`: TARTAN needs four groups (encoder and
//! heads, each with and without weight decay) with their own learning rates under one
//! schedule, PyTorch's exact update, and a state file keyed by parameter path for resuming.

use std::collections::HashMap;

use anyhow::{Result, bail};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use super::grads::GradBuffer;

#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub lr: f64,
    pub weight_decay: f64,
}

#[derive(Debug, Clone)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub encoder: Group,
    pub heads: Group,
}

/// Biases and LayerNorm parameters are not decayed (BERT's recipe).
pub fn decays(path: &str) -> bool {
    !(path.ends_with("bias") || path.ends_with(".gamma") || path.ends_with(".beta"))
}

pub struct AdamW {
    config: AdamWConfig,
    /// First and second moments, flat, per parameter.
    moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
    steps: u64,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, moments: HashMap::new(), steps: 0 }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of every parameter that has a gradient; `lr_factor` is the schedule's.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        mut grads: GradBuffer,
        lr_factor: f64,
        paths: &HashMap<ParamId, String>,
    ) -> M {
        self.steps += 1;
        let t = self.steps as i32;
        let c = &self.config;
        let mut mapper = Update {
            grads: &mut grads,
            moments: &mut self.moments,
            paths,
            config: c,
            lr_factor,
            bias1: 1.0 - c.beta1.powi(t),
            bias2: 1.0 - c.beta2.powi(t),
        };
        module.map(&mut mapper)
    }

    /// Moments keyed by `<path>.exp_avg` / `<path>.exp_avg_sq`, for a resumable checkpoint.
    pub fn state_tensors(&self, paths: &HashMap<ParamId, String>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        for (id, (m, v)) in &self.moments {
            let path = &paths[id];
            for (suffix, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let values = t.to_data().try_to_vec::<f32>().expect("f32 moments");
                out.push((format!("{path}.{suffix}"), vec![values.len()], values));
            }
        }
        out
    }

    pub fn load_state(
        &mut self,
        steps: u64,
        tensors: &crate::model::weights::TensorMap,
        paths: &HashMap<ParamId, String>,
        device: &burn::tensor::Device,
    ) -> Result<()> {
        self.steps = steps;
        self.moments.clear();
        for (id, path) in paths {
            let get = |s: &str| tensors.get(&format!("{path}.{s}"));
            match (get("exp_avg"), get("exp_avg_sq")) {
                (Some((sm, m)), Some((sv, v))) => {
                    let t = |shape: &Vec<usize>, x: &Vec<f32>| {
                        Tensor::<1>::from_data(TensorData::new(x.clone(), shape.clone()), device)
                    };
                    self.moments.insert(*id, (t(sm, m), t(sv, v)));
                }
                (None, None) if steps == 0 => {}
                (None, None) => {}
                _ => bail!("optimizer state for {path} is incomplete"),
            }
        }
        Ok(())
    }
}

struct Update<'a> {
    grads: &'a mut GradBuffer,
    moments: &'a mut HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
    paths: &'a HashMap<ParamId, String>,
    config: &'a AdamWConfig,
    lr_factor: f64,
    bias1: f64,
    bias2: f64,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(g) = self.grads.remove(&param.id) else { return param };
        let (id, tensor, mapper) = param.consume();
        let c = self.config;
        let path = &self.paths[&id];
        let group = if crate::model::is_encoder_param(path) { c.encoder } else { c.heads };
        let lr = group.lr * self.lr_factor;
        let wd = if decays(path) { group.weight_decay } else { 0.0 };
        let dims = tensor.dims();
        let n = g.dims()[0];
        let p = tensor.inner().reshape([n]);
        let (m, v) = match self.moments.remove(&id) {
            Some(mv) => mv,
            None => (g.zeros_like(), g.zeros_like()),
        };
        let m = m.mul_scalar(c.beta1) + g.clone().mul_scalar(1.0 - c.beta1);
        let v = v.mul_scalar(c.beta2) + g.square().mul_scalar(1.0 - c.beta2);
        let denom = v.clone().sqrt().div_scalar(self.bias2.sqrt()).add_scalar(c.eps);
        let p = p.mul_scalar(1.0 - lr * wd) - m.clone().div(denom).mul_scalar(lr / self.bias1);
        self.moments.insert(id, (m, v));
        let updated = Tensor::from_inner(p.reshape(dims)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// Linear warm-up from 0 over `warmup` steps, then linear decay to 0 at `total`
/// (`get_linear_schedule_with_warmup`); `step` counts updates already made.
pub fn linear_schedule(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        (total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert_eq!(linear_schedule(0, 10, 100), 0.0);
        assert_eq!(linear_schedule(5, 10, 100), 0.5);
        assert_eq!(linear_schedule(10, 10, 100), 1.0);
        assert!((linear_schedule(55, 10, 100) - 0.5).abs() < 1e-12);
        assert_eq!(linear_schedule(100, 10, 100), 0.0);
        assert_eq!(linear_schedule(3, 0, 4), 0.25);
    }

    #[test]
    fn no_decay_on_biases_and_layer_norms() {
        assert!(decays("encoder.encoder.layer.0.attention.self_.query.weight"));
        assert!(!decays("encoder.encoder.layer.0.attention.self_.query.bias"));
        assert!(!decays("encoder.embeddings.LayerNorm.gamma"));
        assert!(!decays("encoder.embeddings.LayerNorm.beta"));
        assert!(!decays("mlm.bias"));
        assert!(decays("encoder.embeddings.word_embeddings.weight"));
    }
}

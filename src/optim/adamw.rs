//! AdamW with parameter groups, as `torch.optim.AdamW`.
//!
//! Hand-written rather than burn's `ModuleOptimizer`: TARTAN needs groups (encoder and heads,
//! each with and without weight decay) with their own learning rates under one schedule,
//! PyTorch's exact update, and a state file keyed by parameter path for resuming. Which group
//! a parameter is in is decided once, by `ParamGroups`, not on every step.

use std::collections::HashMap;

use anyhow::{Result, bail};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use crate::optim::GradBuffer;
use crate::optim::kernels::{self, AdamWScalars};
use crate::params::param_paths;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    pub lr: f64,
    pub weight_decay: f64,
}

#[derive(Debug, Clone)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Indexed by `ParamGroups`' group numbers.
    pub groups: Vec<Group>,
}

/// Biases and LayerNorm parameters are not decayed (BERT's recipe).
pub fn decays(path: &str) -> bool {
    !(path.ends_with("bias") || path.ends_with(".gamma") || path.ends_with(".beta"))
}

/// Where each parameter of a module belongs: its path (the key of the optimizer state), its
/// group number and whether it is decayed.
#[derive(Debug, Clone, Default)]
pub struct ParamGroups {
    params: HashMap<ParamId, (String, usize, bool)>,
}

impl ParamGroups {
    /// Groups `module`'s parameters by `group_of(path)`.
    pub fn new<M: Module>(module: &M, group_of: impl Fn(&str) -> usize) -> Self {
        let params = param_paths(module).into_iter().map(|(id, path)| {
            let (group, decay) = (group_of(&path), decays(&path));
            (id, (path, group, decay))
        });
        Self { params: params.collect() }
    }

    pub fn path(&self, id: &ParamId) -> Option<&str> {
        self.params.get(id).map(|p| p.0.as_str())
    }

    pub fn group(&self, id: &ParamId) -> Option<usize> {
        self.params.get(id).map(|p| p.1)
    }
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
    pub fn step<M: Module>(&mut self, module: M, mut grads: GradBuffer, lr_factor: f64, groups: &ParamGroups) -> M {
        self.steps += 1;
        let t = self.steps as i32;
        let c = &self.config;
        let mut mapper = Update {
            grads: &mut grads,
            moments: &mut self.moments,
            groups,
            config: c,
            lr_factor,
            bias1: 1.0 - c.beta1.powi(t),
            bias2: 1.0 - c.beta2.powi(t),
        };
        module.map(&mut mapper)
    }

    /// Moments keyed by `<path>.exp_avg` / `<path>.exp_avg_sq`, for a resumable checkpoint.
    pub fn state_tensors(&self, groups: &ParamGroups) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        for (id, (m, v)) in &self.moments {
            let Some(path) = groups.path(id) else { continue };
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
        tensors: &crate::params::TensorMap,
        groups: &ParamGroups,
        device: &burn::tensor::Device,
    ) -> Result<()> {
        self.steps = steps;
        self.moments.clear();
        for (id, (path, _, _)) in &groups.params {
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
    groups: &'a ParamGroups,
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
        let (_, index, decay) = &self.groups.params[&id];
        let group = c.groups[*index];
        let lr = group.lr * self.lr_factor;
        let wd = if *decay { group.weight_decay } else { 0.0 };
        let dims = tensor.dims();
        let n = g.dims()[0];
        let p = tensor.inner().reshape([n]);
        let scalars = AdamWScalars {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            lr,
            weight_decay: wd,
            bias1: self.bias1,
            bias2: self.bias2,
        };
        let (p, m, v) = kernels::adamw(p, g, self.moments.remove(&id), &scalars);
        self.moments.insert(id, (m, v));
        let updated = Tensor::from_inner(p.reshape(dims)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

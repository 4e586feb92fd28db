//! Constant weights: fine-tuning (the end-task alone, weight 1) and MT-TARTAN.

use burn::tensor::Gradients;

use super::{StepFigures, TaskFigures, Weighting, dot_and_norm};
use crate::model::TartanModel;

pub struct Fixed {
    weights: Vec<f64>,
    /// With several tasks, each one's weighted-gradient norm over the shared encoder in the
    /// step's last micro-batch, as META-TARTAN logs it: the report's share of the update.
    norms: Vec<Option<f64>>,
}

impl Fixed {
    pub fn new(weights: Vec<f64>) -> Self {
        let norms = vec![None; weights.len()];
        Self { weights, norms }
    }
}

impl Weighting for Fixed {
    fn weights(&self) -> Vec<f64> {
        self.weights.clone()
    }

    fn observe(&mut self, task: usize, model: &TartanModel, grads: &Gradients) {
        // A single task has the whole update; measuring it would only cost time.
        if self.weights.len() > 1 {
            self.norms[task] = Some(dot_and_norm(&model.encoder, grads, None).1.sqrt());
        }
    }

    fn end_step(&mut self) -> StepFigures {
        let tasks =
            self.norms.iter_mut().map(|n| TaskFigures { grad_norm: n.take(), ..TaskFigures::default() }).collect();
        StepFigures { dev_loss: None, tasks }
    }
}

//! How much each objective counts in an optimizer step. The loop asks for the weights, shows
//! the strategy every task's gradient, and tells it when a step ends; fixed weights
//! (MT-TARTAN, fine-tuning) and learned ones (META-TARTAN) plug in behind this trait.

pub mod fixed;
pub mod meta;

use anyhow::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor};

use crate::model::{Bert, TartanModel};
use crate::optim::{GradBuffer, kernels};

/// What a weighting measured in one optimizer step, per task in the loop's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFigures {
    /// The dev loss behind the step's meta-gradient.
    pub dev_loss: Option<f64>,
    pub tasks: Vec<TaskFigures>,
}

/// One task's figures (all absent for fixed weights).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskFigures {
    /// Cosine of the task's gradient with the dev gradient over the shared encoder.
    pub cos: Option<f64>,
    /// Norm of the task's weighted gradient over the shared encoder.
    pub grad_norm: Option<f64>,
    /// The logit of the task's weight.
    pub logit: Option<f64>,
}

pub trait Weighting {
    /// One weight per objective, in the loop's order (end-task first).
    fn weights(&self) -> Vec<f64>;

    /// Before the tasks' gradients of one micro-batch are computed.
    fn begin_micro_step(&mut self, _model: &TartanModel, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// Task `task`'s gradient, already multiplied by its weight and divided by the
    /// accumulation steps.
    fn observe(&mut self, _task: usize, _model: &TartanModel, _grads: &Gradients) {}

    /// After the optimizer step; returns the step's figures to log.
    fn end_step(&mut self) -> StepFigures {
        StepFigures::default()
    }

    /// The strategy's state, for resuming.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// Squared norm of the gradients in `grads` over `encoder`'s parameters and, given `dev`, their
/// dot product with it, without keeping a copy of them. Returns (dot, squared norm). Given
/// `dev`, both are over the parameters `dev` holds, so that a cosine is over one set.
fn dot_and_norm(encoder: &Bert, grads: &Gradients, dev: Option<&GradBuffer>) -> (f64, f64) {
    struct Dot<'a> {
        grads: &'a Gradients,
        dev: Option<&'a GradBuffer>,
        dot: f64,
        sq: f64,
    }
    impl ModuleVisitor for Dot<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let dev = match self.dev.map(|dev| dev.get(&param.id)) {
                // Not in the set the dev gradient, and so the cosine, is over.
                Some(None) => return,
                dev => dev.flatten(),
            };
            let Some(g) = param.val().grad(self.grads) else { return };
            let n = g.shape().num_elements();
            let g = g.reshape([n]);
            self.sq += kernels::sq_norm(&g);
            if let Some(d) = dev {
                self.dot += kernels::dot(&g, d);
            }
        }
    }
    let mut v = Dot { grads, dev, dot: 0.0, sq: 0.0 };
    encoder.visit(&mut v);
    (v.dot, v.sq)
}

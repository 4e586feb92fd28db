//! Training objectives over the shared encoder. Each one turns its next batch into a loss;
//! the training loop only sees this trait, so a new auxiliary objective needs no change there.

pub mod classification;
pub mod mlm;

use anyhow::Result;
use burn::tensor::{Device, Tensor};

use crate::data::batch::{BatchStream, DataPosition};
use crate::model::TartanModel;

/// One objective's loss on one batch.
pub struct ObjectiveLoss {
    pub loss: Tensor<1>,
    /// The share of targets predicted right, where the objective measures it (masked-LM).
    pub accuracy: Option<f64>,
}

pub trait Objective {
    /// A short name used in logs, metrics and task-weight plots (`end-task`, `tapt`, ...).
    fn name(&self) -> &str;

    /// The loss on this objective's next training batch (advances its data position).
    fn next_loss(&mut self, model: &TartanModel, device: &Device) -> Result<ObjectiveLoss>;

    /// The objective's stream of training batches (position, epoch length, resume).
    fn stream(&self) -> &BatchStream;

    fn stream_mut(&mut self) -> &mut BatchStream;

    fn batches_per_epoch(&self) -> usize {
        self.stream().batches_per_epoch()
    }

    fn position(&self) -> DataPosition {
        self.stream().position()
    }

    fn seek(&mut self, position: DataPosition) {
        self.stream_mut().seek(position)
    }
}

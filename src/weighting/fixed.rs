//! Constant weights: fine-tuning (the end-task alone, weight 1) and MT-TARTAN.

use super::Weighting;

pub struct Fixed(pub Vec<f64>);

impl Weighting for Fixed {
    fn weights(&self) -> Vec<f64> {
        self.0.clone()
    }
}

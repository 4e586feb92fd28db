//! Batching: length buckets, seeded shuffling, dynamic padding.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Batches of one epoch, as indices into the dataset. Examples are shuffled, grouped into
/// pools of `POOL` batches, sorted by length inside a pool (so a batch pads little) and the
/// batches shuffled again. The order depends only on `(seed, epoch)`, which is what makes a
/// resumed run see the same data as an uninterrupted one. Without `bucket`, batches are plain
/// slices of the shuffled order.
pub fn epoch_batches(lengths: &[usize], batch_size: usize, seed: u64, epoch: u64, bucket: bool) -> Vec<Vec<usize>> {
    const POOL: usize = 50;
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    if !bucket {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for pool in order.chunks(batch_size * POOL) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Batches for evaluation: sorted by length (least padding), order restored by the caller.
pub fn eval_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

pub fn labels_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}

/// Where a stream of epochs stands: resuming from it replays exactly the same batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataPosition {
    pub epoch: u64,
    pub batch: usize,
}

/// An endless sequence of training batches over a dataset, epoch after epoch.
#[derive(Debug, Clone)]
pub struct BatchStream {
    lengths: Vec<usize>,
    batch_size: usize,
    seed: u64,
    bucket: bool,
    position: DataPosition,
    current: Vec<Vec<usize>>,
}

impl BatchStream {
    pub fn new(lengths: Vec<usize>, batch_size: usize, seed: u64, bucket: bool) -> Self {
        let current = epoch_batches(&lengths, batch_size, seed, 0, bucket);
        Self { lengths, batch_size, seed, bucket, position: DataPosition::default(), current }
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.batch_size)
    }

    pub fn position(&self) -> DataPosition {
        self.position
    }

    pub fn seek(&mut self, position: DataPosition) {
        if position.epoch != self.position.epoch || self.current.is_empty() {
            self.current = epoch_batches(&self.lengths, self.batch_size, self.seed, position.epoch, self.bucket);
        }
        self.position = position;
    }

    /// The next batch's example indices.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.position.batch >= self.current.len() {
            self.seek(DataPosition { epoch: self.position.epoch + 1, batch: 0 });
        }
        let batch = self.current[self.position.batch].clone();
        self.position.batch += 1;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_batches_cover_every_example_once_and_depend_on_seed_and_epoch() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 300).collect();
        let a = epoch_batches(&lengths, 16, 1, 0, true);
        let mut all: Vec<usize> = a.concat();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, epoch_batches(&lengths, 16, 1, 0, true));
        assert_ne!(a, epoch_batches(&lengths, 16, 1, 1, true));
        assert_ne!(a, epoch_batches(&lengths, 16, 2, 0, true));
        let plain: Vec<usize> = epoch_batches(&lengths, 16, 1, 0, false).concat();
        assert_eq!(plain.len(), 1000);
    }

    #[test]
    fn bucketing_pads_less_than_random_batches() {
        let lengths: Vec<usize> = (0..3200).map(|i| 10 + (i * 7919) % 300).collect();
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches.iter().map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len()).sum()
        };
        let bucketed = padded(&epoch_batches(&lengths, 32, 0, 0, true));
        let random: Vec<Vec<usize>> = (0..3200).collect::<Vec<_>>().chunks(32).map(<[usize]>::to_vec).collect();
        assert!(bucketed * 10 < padded(&random) * 7, "{bucketed} vs {}", padded(&random));
    }
}

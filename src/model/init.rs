//! Random initial weights from an explicit seed, drawn on the host.
//!
//! burn's backends draw from one generator per process (burn-flex keeps it in a static), which
//! `Backend::seed` replaces. Two models built at once, as parallel tests or two trainers in one
//! program do, took each other's draws: a test comparing bf16 with f32 training failed one of
//! two full test runs on 2026-11-30, its f32 head drawn from a stream another test had reseeded
//! (tests had to hold a lock around every draw, and some did not). And the CPU and CUDA
//! backends drew different heads from the same seed. Here each component has its own
//! generator, seeded from the run's seed and the component's name, so a seed gives the same
//! weights on every backend whatever else the process does.
//!
//! The normal draw is Box-Muller, written out: `rand_distr` in our lock file is built for
//! another major version of `rand` than ours.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The standard deviation of Hugging Face's `BertPreTrainedModel._init_weights`.
const HF_STD: f64 = 0.02;

pub struct Init {
    /// `None` for a placeholder, which gives zeros.
    rng: Option<StdRng>,
}

impl Init {
    /// The generator of the component `part` (`"classifier"`, `"mlm_head"`, ...) of a run
    /// seeded `seed`: components draw from separate streams, so adding one changes no other.
    pub fn new(seed: u64, part: &str) -> Self {
        // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
        let hash =
            part.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Self { rng: Some(StdRng::seed_from_u64(seed ^ hash)) }
    }

    /// Zeros in place of draws, for a module whose every parameter a checkpoint replaces:
    /// drawing MiniLM's encoder took 2-3% of a `tartan bench meta` profile, 0.5 s of start-up
    /// in every process, for weights nobody reads.
    pub fn placeholder() -> Self {
        Self { rng: None }
    }

    /// `torch.nn.Linear`'s default: weight and bias uniform in ±1/sqrt(fan_in).
    pub fn torch_linear(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        let bound = 1.0 / (d_in as f64).sqrt();
        let weight = self.uniform(d_in * d_out, bound);
        let bias = self.uniform(d_out, bound);
        Linear { weight: matrix(weight, [d_in, d_out], device), bias: Some(vector(bias, device)) }
    }

    /// Hugging Face's encoder init: weight normal(0, 0.02), bias zero.
    pub fn hf_linear(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        let weight = self.normal(d_in * d_out, HF_STD);
        Linear { weight: matrix(weight, [d_in, d_out], device), bias: Some(vector(vec![0.0; d_out], device)) }
    }

    /// Hugging Face's embedding init: normal(0, 0.02).
    pub fn hf_embedding(&mut self, n: usize, d: usize, device: &Device) -> Embedding {
        Embedding { weight: matrix(self.normal(n * d, HF_STD), [n, d], device) }
    }

    fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        let Some(rng) = &mut self.rng else { return vec![0.0; n] };
        (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
    }

    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        let Some(rng) = &mut self.rng else { return vec![0.0; n] };
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // 1 - u lies in (0, 1], so the logarithm is finite.
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let angle = std::f64::consts::TAU * u2;
            out.push((r * angle.cos()) as f32);
            out.push((r * angle.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

fn matrix(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

fn vector(values: Vec<f32>, device: &Device) -> Param<Tensor<1>> {
    let n = values.len();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (mean, (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt())
    }

    #[test]
    fn draws_have_the_asked_spread_and_depend_on_seed_and_part_only() {
        let normal = Init::new(1, "encoder").normal(100_001, 0.02);
        assert_eq!(normal.len(), 100_001);
        let (mean, sd) = stats(&normal);
        assert!(mean.abs() < 3e-4 && (sd - 0.02).abs() < 3e-4, "mean {mean}, sd {sd}");
        let uniform = Init::new(1, "classifier").uniform(100_000, 0.5);
        let (mean, sd) = stats(&uniform);
        // Uniform in ±b: sd b/sqrt(3).
        assert!(mean.abs() < 5e-3 && (sd - 0.5 / 3f64.sqrt()).abs() < 3e-3, "mean {mean}, sd {sd}");
        assert!(uniform.iter().all(|x| x.abs() <= 0.5));
        assert_eq!(Init::new(1, "classifier").uniform(8, 1.0), Init::new(1, "classifier").uniform(8, 1.0));
        assert_ne!(Init::new(1, "classifier").uniform(8, 1.0), Init::new(2, "classifier").uniform(8, 1.0));
        assert_ne!(Init::new(1, "classifier").uniform(8, 1.0), Init::new(1, "mlm_head").uniform(8, 1.0));
        assert_eq!(Init::placeholder().normal(3, 0.02), vec![0.0; 3]);
    }
}

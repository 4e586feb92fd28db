//! Times flex's matmul on the shapes of a MiniLM step at 16 x 128 (median of 21 runs after a
//! warm-up), to see which layout and batching gemm handles well: e.g. a `[16, 128, d]` input
//! kept batched against folded into 2048 rows (docs/BENCHMARKS.md, "Folded Linear").
//!
//! `cargo run --release --example matmul_shapes` (set `RAYON_NUM_THREADS` to compare threads).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

fn time(name: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[10];
    println!("{name:44} {:8.2} ms {:7.1} GFLOP/s", median * 1e3, flops / median / 1e9);
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn main() {
    let device = Device::flex();
    for (m, k, n) in [(2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384)] {
        let flops = 2.0 * (m * k * n) as f64;
        let (x, w, dy) = (random([m, k], &device), random([k, n], &device), random([m, n], &device));
        let batched = x.clone().reshape([16, m / 16, k]);
        let w3 = w.clone().unsqueeze::<3>();
        time(&format!("folded {m}x{k} @ {k}x{n}"), flops, || drop(x.clone().matmul(w.clone())));
        time(&format!("batched 16x{}x{k} @ 1x{k}x{n}", m / 16), flops, || drop(batched.clone().matmul(w3.clone())));
        time(&format!("dX {m}x{n} @ ({k}x{n})^T"), flops, || drop(dy.clone().matmul(w.clone().transpose())));
        time(&format!("dW ({m}x{k})^T @ {m}x{n}"), flops, || drop(x.clone().transpose().matmul(dy.clone())));
    }
    let flops = 2.0 * (16 * 12 * 128 * 128 * 32) as f64;
    let (q, k) =
        (random([16, 128, 12, 32], &device).swap_dims(1, 2), random([16, 128, 12, 32], &device).swap_dims(1, 2));
    let probs = random([16, 12, 128, 128], &device);
    time("scores q @ k^T (head-split views)", flops, || drop(q.clone().matmul(k.clone().swap_dims(2, 3))));
    time("context probs @ v (head-split view)", flops, || drop(probs.clone().matmul(k.clone())));
}

//! burn-flex's matmul as patched in `crates/burn-flex` (outputs written by gemm into
//! uninitialised memory, see its PATCH.md) against a naive f64 product, on each of its paths:
//! 2-D, batched with gemm's own threads, batch-parallel small matrices, broadcast batches,
//! strided (transposed) operands, and `k = 0`, where nothing is written and zeros must come out.

use crate::common::{random, values};
use burn::tensor::{Device, Tensor};

/// `a @ b` for `[batch, m, k] x [batch or 1, k, n]`, in f64 on the host.
fn naive(a: &[f32], b: &[f32], [batch, m, k, n]: [usize; 4], b_broadcast: bool) -> Vec<f32> {
    let mut out = vec![0f32; batch * m * n];
    for p in 0..batch {
        let (ao, bo) = (p * m * k, if b_broadcast { 0 } else { p * k * n });
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|l| a[ao + i * k + l] as f64 * b[bo + l * n + j] as f64).sum();
                out[(p * m + i) * n + j] = s as f32;
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: element {i} is {g}, want {w}");
    }
}

#[test]
fn patched_flex_matmul_equals_a_naive_product_on_every_path() {
    let device = Device::flex();
    for [m, k, n] in [[3, 5, 4], [128, 384, 384]] {
        let (a, b) = (random([m, k], &device), random([k, n], &device));
        let want = naive(&values(&a), &values(&b), [1, m, k, n], false);
        assert_close(&values(&a.matmul(b)), &want, &format!("2-D {m}x{k}x{n}"));
    }
    for [batch, m, k, n] in [[2, 3, 5, 4], [2, 128, 256, 128], [64, 8, 16, 8]] {
        let (a, b) = (random([batch, m, k], &device), random([batch, k, n], &device));
        let want = naive(&values(&a), &values(&b), [batch, m, k, n], false);
        assert_close(&values(&a.matmul(b)), &want, &format!("batched {batch}x{m}x{k}x{n}"));
    }
    let (a, b) = (random([4, 3, 5], &device), random([1, 5, 4], &device));
    let want = naive(&values(&a), &values(&b), [4, 3, 5, 4], true);
    assert_close(&values(&a.matmul(b)), &want, "broadcast batch");
    let (a, bt) = (random([2, 6, 7], &device), random([2, 9, 7], &device));
    let b = bt.swap_dims(1, 2);
    let want = naive(&values(&a), &values(&b), [2, 6, 7, 9], false);
    assert_close(&values(&a.matmul(b)), &want, "transposed operand");
    let empty = Tensor::<2>::zeros([3, 0], &device).matmul(Tensor::<2>::zeros([0, 4], &device));
    assert_eq!(values(&empty), vec![0f32; 12], "k = 0 gives zeros");
}

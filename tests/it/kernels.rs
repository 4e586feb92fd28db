//! The fused kernels (`tartan::model::kernels`, `tartan::optim::kernels`) against the plain
//! burn compositions they replace: values, gradients (through burn-autodiff), results that do
//! not depend on the thread count, and exact GELU against PyTorch (`tests/fixtures/gelu.json`,
//! written by `tests/fixtures/gelu.py`).

use crate::common::{random, values};
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use tartan::model::dropout::{Mask, apply_mask_composed};
use tartan::model::kernels::{self, LayerNorm, layer_norm_composed};

/// Largest |a - b| relative to the largest |b| (with a floor), so tiny entries don't dominate.
fn rel_max(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

/// Gradient of `sum(f(x) * w)` with respect to `x` (and the output), on the autodiff device.
fn grad_of<const D: usize>(x: &Tensor<D>, w: &Tensor<D>, f: impl Fn(Tensor<D>) -> Tensor<D>) -> (Vec<f32>, Vec<f32>) {
    let xa = Tensor::<D>::from_data(x.to_data(), &Device::flex().autodiff()).require_grad();
    let wa = Tensor::<D>::from_data(w.to_data(), &Device::flex().autodiff());
    let y = f(xa.clone());
    let grads = (y.clone() * wa).sum().backward();
    (values(&y), values(&xa.grad(&grads).unwrap()))
}

fn gelu_composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().mul_scalar(0.5) * (x.div_scalar(std::f64::consts::SQRT_2).erf().add_scalar(1.0))
}

#[derive(serde::Deserialize)]
struct GeluFixture {
    x: Vec<f32>,
    gelu: Vec<f32>,
    grad: Vec<f32>,
}

#[test]
fn fused_gelu_matches_pytorch_within_1e_5() {
    let f: GeluFixture = serde_json::from_str(include_str!("../fixtures/gelu.json")).unwrap();
    let n = f.x.len();
    let x = Tensor::<1>::from_data(TensorData::new(f.x.clone(), [n]), &Device::flex());
    let forward = values(&kernels::gelu(x.clone()));
    let ones = Tensor::<1>::ones([n], &Device::flex());
    let (train_forward, grad) = grad_of(&x, &ones, kernels::gelu);
    for i in 0..n {
        let x = f.x[i];
        assert!((forward[i] - f.gelu[i]).abs() <= 1e-5, "gelu({x}) = {} vs PyTorch {}", forward[i], f.gelu[i]);
        assert_eq!(forward[i], train_forward[i], "gelu({x}) with and without autodiff");
        assert!((grad[i] - f.grad[i]).abs() <= 1e-5, "gelu'({x}) = {} vs PyTorch {}", grad[i], f.grad[i]);
    }
}

#[test]
fn fused_gelu_gradient_equals_the_unfused_composition() {
    let device = Device::flex();
    // Odd sizes exercise the vector tails; > 2^15 elements the multi-task path.
    for shape in [[3, 7, 5], [4, 96, 129]] {
        let (x, w) = (random(shape, &device).mul_scalar(3.0), random(shape, &device));
        let (y, gx) = grad_of(&x, &w, kernels::gelu);
        let (y0, gx0) = grad_of(&x, &w, gelu_composed);
        assert!(rel_max(&y, &y0) < 1e-6, "gelu forward {}", rel_max(&y, &y0));
        assert!(rel_max(&gx, &gx0) < 1e-5, "gelu gradient {}", rel_max(&gx, &gx0));
        assert_eq!(values(&kernels::gelu(x.clone())), y, "without autodiff");
    }
}

/// A padding bias `[b, 1, 1, k]` as the encoder builds it: 0, or the most negative f32.
fn padding_bias(b: usize, k: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..b * k).map(|i| if i % k < k - (i / k) * 3 { 0.0 } else { f32::MIN }).collect();
    Tensor::from_data(TensorData::new(v, [b, 1, 1, k]), device)
}

#[test]
fn fused_attention_softmax_gradient_equals_the_unfused_composition() {
    let device = Device::flex();
    for [b, h, q, k] in [[2, 3, 5, 7], [3, 4, 40, 37]] {
        let bias = padding_bias(b, k, &device);
        let scale = 1.0 / 8f64.sqrt();
        let (x, w) = (random([b, h, q, k], &device).mul_scalar(4.0), random([b, h, q, k], &device));
        let ba = Tensor::<4>::from_data(bias.to_data(), &Device::flex().autodiff());
        let fused = |s: Tensor<4>| kernels::attention_softmax(s, ba.clone(), scale);
        let composed = |s: Tensor<4>| burn::tensor::activation::softmax(s.mul_scalar(scale) + ba.clone(), 3);
        let (y, gx) = grad_of(&x, &w, fused);
        let (y0, gx0) = grad_of(&x, &w, composed);
        assert!(rel_max(&y, &y0) < 1e-6, "softmax forward {}", rel_max(&y, &y0));
        assert!(rel_max(&gx, &gx0) < 1e-5, "softmax gradient {}", rel_max(&gx, &gx0));
        let before = values(&x);
        let plain = values(&kernels::attention_softmax(x.clone(), bias.clone(), scale));
        assert_eq!(plain, y, "without autodiff");
        assert_eq!(values(&x), before, "a tensor held elsewhere was written in place");
        // A fresh input (as a matmul's output is) is overwritten in place, to the same values.
        let fresh = values(&kernels::attention_softmax(x.clone().mul_scalar(1.0), bias.clone(), scale));
        assert_eq!(fresh, y, "in place");
        // Padded keys get exactly zero probability.
        for (i, p) in y.iter().enumerate() {
            let (key, batch) = (i % k, i / (h * q * k));
            if key >= k - batch * 3 {
                assert_eq!(*p, 0.0);
            }
        }
    }
}

#[test]
fn fused_layer_norm_gradients_equal_the_unfused_composition() {
    let ad = Device::flex().autodiff();
    for (shape, d) in [([2, 3, 50], 50), ([4, 70, 384], 384)] {
        let x = random(shape, &Device::flex()).mul_scalar(2.0).add_scalar(0.5);
        let w = random(shape, &Device::flex());
        let gamma = random([d], &ad).add_scalar(1.0).require_grad();
        let beta = random([d], &ad).require_grad();
        let ln = LayerNorm {
            gamma: Param::from_tensor(gamma.clone()),
            beta: Param::from_tensor(beta.clone()),
            epsilon: 1e-12,
        };
        let run = |fused: bool| {
            let xa = Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
            let y = if fused {
                ln.forward(xa.clone())
            } else {
                layer_norm_composed(xa.clone(), ln.gamma.val(), ln.beta.val(), 1e-12)
            };
            let grads = (y.clone() * Tensor::<3>::from_data(w.to_data(), &ad)).sum().backward();
            let g = |t: &Tensor<1>| values(&t.grad(&grads).unwrap());
            (values(&y), values(&xa.grad(&grads).unwrap()), g(&ln.gamma.val()), g(&ln.beta.val()))
        };
        let (y, gx, gg, gb) = run(true);
        let (y0, gx0, gg0, gb0) = run(false);
        assert!(rel_max(&y, &y0) < 1e-5, "layer norm forward {}", rel_max(&y, &y0));
        assert!(rel_max(&gx, &gx0) < 1e-4, "layer norm dx {}", rel_max(&gx, &gx0));
        assert!(rel_max(&gg, &gg0) < 1e-5, "layer norm dgamma {}", rel_max(&gg, &gg0));
        assert!(rel_max(&gb, &gb0) < 1e-5, "layer norm dbeta {}", rel_max(&gb, &gb0));
        let inner = LayerNorm {
            gamma: Param::from_tensor(Tensor::from_data(gamma.to_data(), &Device::flex())),
            beta: Param::from_tensor(Tensor::from_data(beta.to_data(), &Device::flex())),
            epsilon: 1e-12,
        };
        assert_eq!(values(&inner.forward(x.clone())), y, "without autodiff");
    }
}

#[test]
fn fused_bias_add_gradients_equal_the_unfused_composition() {
    let ad = Device::flex().autodiff();
    // [3, 5, 7]: one task and vector tails; [16, 128, 384]: a Linear's output, many tasks.
    for shape in [[3, 5, 7], [16, 128, 384]] {
        let d = shape[2];
        let x = random(shape, &Device::flex());
        let w = random(shape, &Device::flex());
        let bias = random([d], &ad).require_grad();
        let run = |fused: bool| {
            // `mul_scalar` makes the input a fresh tensor the fused op may overwrite, as a
            // Linear's output is; the gradient still reaches `xa` through it.
            let xa = Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
            let input = xa.clone().mul_scalar(1.0);
            let y = if fused { kernels::bias_add(input, bias.clone()) } else { input + bias.clone().unsqueeze() };
            let grads = (y.clone() * Tensor::<3>::from_data(w.to_data(), &ad)).sum().backward();
            (values(&y), values(&xa.grad(&grads).unwrap()), values(&bias.grad(&grads).unwrap()))
        };
        let (y, gx, gb) = run(true);
        let (y0, gx0, gb0) = run(false);
        assert_eq!(y, y0, "bias add forward");
        assert_eq!(gx, gx0, "bias add dx");
        assert!(rel_max(&gb, &gb0) < 1e-5, "bias add dbias {}", rel_max(&gb, &gb0));
        let before = values(&x);
        let plain = Tensor::<1>::from_data(bias.to_data(), &Device::flex());
        assert_eq!(values(&kernels::bias_add(x.clone(), plain)), y, "without autodiff");
        assert_eq!(values(&x), before, "a tensor held elsewhere was written in place");
    }
}

#[test]
fn fused_dropout_equals_a_stored_mask_and_redraws_it_for_the_gradient() {
    let ad = Device::flex().autodiff();
    // 153,600 values: three mask chunks, the last one partial.
    let shape = [4, 100, 384];
    let (x, w) = (random(shape, &Device::flex()), random(shape, &Device::flex()));
    let mask = Mask { seed: 11, prob: 0.1 };
    let run = |fused: bool| {
        let xa = Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
        let input = xa.clone().mul_scalar(1.0);
        let y = if fused { kernels::dropout(input, mask) } else { apply_mask_composed(input, mask) };
        let grads = (y.clone() * Tensor::<3>::from_data(w.to_data(), &ad)).sum().backward();
        (values(&y), values(&xa.grad(&grads).unwrap()))
    };
    let (y, gx) = run(true);
    let (y0, gx0) = run(false);
    assert_eq!(y, y0, "dropout forward");
    assert_eq!(gx, gx0, "dropout gradient");
    let dropped = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
    assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
    let other = values(&kernels::dropout(x.clone(), Mask { seed: 12, prob: 0.1 }));
    assert_ne!(other, y, "another seed drew the same mask");
    let before = values(&x);
    assert_eq!(values(&kernels::dropout(x.clone(), mask)), y, "without autodiff");
    assert_eq!(values(&x), before, "a tensor held elsewhere was written in place");
}

/// Fixed task boundaries: one thread and two give the same bits.
#[test]
fn fused_kernels_do_not_depend_on_the_thread_count() {
    let device = Device::flex();
    let x = random([8, 100, 384], &device);
    let scores = random([8, 4, 100, 100], &device);
    let bias = padding_bias(8, 100, &device);
    let ln = LayerNorm::new(384, 1e-12, &device);
    let flat = x.clone().reshape([8 * 100 * 384]);
    let run = || {
        let (_, g) = grad_of(&x, &x, kernels::gelu);
        let (_, n) = grad_of(&x, &x, |t| ln.forward(t));
        let ad = Device::flex().autodiff();
        let row = Tensor::<1>::from_data(flat.clone().narrow(0, 0, 384).to_data(), &ad).require_grad();
        let y = kernels::bias_add(Tensor::<3>::from_data(x.to_data(), &ad), row.clone());
        let grads = (y * Tensor::<3>::from_data(x.to_data(), &ad)).sum().backward();
        (
            g,
            n,
            values(&row.grad(&grads).unwrap()),
            values(&kernels::attention_softmax(scores.clone(), bias.clone(), 0.3)),
            values(&kernels::dropout(x.clone(), Mask { seed: 3, prob: 0.1 })),
            tartan::optim::kernels::sq_norm(&flat).to_bits(),
        )
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    assert!(pool(1).install(run) == pool(2).install(run));
}

//! `train.precision = "bf16"` on the CPU: bf16 compute changes the logits a little and not
//! more, gradients arrive in f32 on the f32 parameters and point where f32's do, the master
//! weights and the saved model stay f32, and a short training run learns as f32 does.

use std::collections::BTreeMap;

use crate::common::tiny::{TinySetup, tiny_config, tiny_setup};
use crate::common::{rel_l2, shared_dir, values};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Device, Gradients, Int, Tensor, TensorData};
use tartan::data::batch::labels_tensor;
use tartan::loss::cross_entropy;
use tartan::model::weights::hf_grads;
use tartan::model::{ClassificationHead, EncoderInput, Precision, TartanModel, set_dropout};
use tartan::optim::{AdamW, AdamWConfig, GradBuffer, Group, ParamGroups};
use tartan::params::TensorMap;
use tartan::train::pretrained::Pretrained;
use tartan::train::strategy::{self, Start};

/// The tiny model with its MLM head and a fresh 4-label head, dropout off, in `precision`.
fn model(setup: &TinySetup, precision: Precision, device: &Device) -> TartanModel {
    let (encoder, mlm) = Pretrained::from_dir(&setup.model).unwrap().load(true, 0, device).unwrap();
    let head = ClassificationHead::new(32, 4, 0.0, 0, device);
    set_dropout(TartanModel::new(encoder, head, mlm), false).with_precision(precision)
}

/// Eight training texts of the synthetic task, padded (some padding, so the mask matters).
fn batch(setup: &TinySetup, device: &Device) -> (EncoderInput, Vec<usize>) {
    let p = Pretrained::from_dir(&setup.model).unwrap();
    let rows = tartan::data::read_jsonl(&setup.path("train.jsonl")).unwrap();
    let texts: Vec<&str> = rows.iter().take(8).map(|r| r.text.as_str()).collect();
    let ids = p.tokenizer.encode_batch(&texts, 32).unwrap();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    (EncoderInput::pad(&seqs, p.tokenizer.pad_id, device), (0..8).map(|i| i % 4).collect())
}

#[test]
fn bf16_logits_are_near_f32_and_not_equal_to_them() {
    let setup = tiny_setup(81);
    let device = Device::flex();
    let (input, _) = batch(&setup, &device);
    let logits = |p: Precision| {
        let m = model(&setup, p, &device);
        let out = m.classifier.forward(m.encoder.forward(&input));
        assert_eq!(out.dtype(), DType::F32, "{p:?}: logits reach the loss in f32");
        values(&out)
    };
    let (full, half) = (logits(Precision::F32), logits(Precision::Bf16));
    let rel = rel_l2(&half, &full);
    // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 2e-3 per operation).
    assert!(rel < 2e-2, "bf16 logits differ from f32 by {rel:.2e} (relative L2)");
    assert!(rel > 1e-5, "bf16 logits equal f32's to {rel:.2e}: bf16 is not in effect");
}

/// Classification plus masked-LM loss, so both heads' paths through the encoder count.
fn loss(m: &TartanModel, input: &EncoderInput, labels: &[usize], device: &Device) -> Tensor<1> {
    let class = cross_entropy(m.classifier.forward(m.encoder.forward(input)), labels_tensor(labels, device));
    let mlm = m.mlm.as_ref().unwrap();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2, 35, 70], [4]), device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8], [4]), device);
    let word = m.encoder.embeddings.word_embeddings.weight.val();
    let mlm_loss =
        cross_entropy(mlm.forward_at(m.encoder.forward(input), positions, word, m.encoder.precision()), targets);
    class + mlm_loss
}

/// Every parameter that got a gradient: whether it and its gradient are f32.
struct Dtypes<'a> {
    grads: &'a Gradients,
    seen: usize,
    not_f32: Vec<String>,
}

impl ModuleVisitor for Dtypes<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = param.val().grad(self.grads) else { return };
        self.seen += 1;
        if param.val().dtype() != DType::F32 || g.dtype() != DType::F32 {
            self.not_f32.push(format!("{:?}: param {:?}, grad {:?}", param.id, param.val().dtype(), g.dtype()));
        }
    }
}

#[test]
fn bf16_gradients_are_f32_and_agree_with_f32_layer_by_layer() {
    let setup = tiny_setup(82);
    let device = Device::flex().autodiff();
    let (input, labels) = batch(&setup, &device);
    let grads = |p: Precision| {
        let m = model(&setup, p, &device);
        let grads = loss(&m, &input, &labels, &device).backward();
        let mut check = Dtypes { grads: &grads, seen: 0, not_f32: vec![] };
        m.visit(&mut check);
        assert!(check.seen > 30, "{p:?}: only {} parameters got a gradient", check.seen);
        assert!(check.not_f32.is_empty(), "{p:?}: not f32: {:?}", check.not_f32);
        hf_grads(&m.encoder, &grads)
    };
    let cosines = layer_cosines(&grads(Precision::F32), &grads(Precision::Bf16));
    assert_eq!(cosines.len(), 3, "embeddings and two layers: {cosines:?}");
    for (group, cos) in cosines {
        assert!(cos > 0.99, "{group}: cosine of bf16 and f32 gradients {cos:.5}");
    }
}

/// Cosine of two gradients per encoder layer and for the embeddings, each part's tensors
/// concatenated.
fn layer_cosines(full: &TensorMap, half: &TensorMap) -> BTreeMap<String, f64> {
    assert_eq!(full.keys().collect::<Vec<_>>(), half.keys().collect::<Vec<_>>());
    let mut dots: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for (key, (_, f)) in full {
        let parts = if key.starts_with("encoder.layer.") { 3 } else { 1 };
        let acc = dots.entry(key.split('.').take(parts).collect::<Vec<_>>().join(".")).or_default();
        for (a, b) in f.iter().zip(&half[key].1) {
            let (a, b) = (*a as f64, *b as f64);
            *acc = (acc.0 + a * b, acc.1 + a * a, acc.2 + b * b);
        }
    }
    dots.into_iter().map(|(group, (ab, aa, bb))| (group, ab / (aa.sqrt() * bb.sqrt()))).collect()
}

#[test]
fn minilm_in_bf16_stays_near_f32_in_logits_and_gradients() {
    let Some(shared) = shared_dir() else { return };
    let p = Pretrained::from_dir(&shared.join("models/all-MiniLM-L6-v2")).unwrap();
    let rows = tartan::data::read_jsonl(&shared.join("datasets/chemprot/train.jsonl")).unwrap();
    let texts: Vec<&str> = rows.iter().take(8).map(|r| r.text.as_str()).collect();
    let ids = p.tokenizer.encode_batch(&texts, 64).unwrap();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let device = Device::flex().autodiff();
    let head = ClassificationHead::new(p.config.hidden_size, 13, 0.0, 0, &device);
    let input = EncoderInput::pad(&seqs, p.tokenizer.pad_id, &device);
    let labels: Vec<usize> = (0..8).collect();
    let run = |precision: Precision| {
        let encoder = set_dropout(p.load(false, 0, &device).unwrap().0, false).with_precision(precision);
        let logits = head.forward(encoder.forward(&input));
        let grads = cross_entropy(logits.clone(), labels_tensor(&labels, &device)).backward();
        (values(&logits), hf_grads(&encoder, &grads))
    };
    let ((full_logits, full), (half_logits, half)) = (run(Precision::F32), run(Precision::Bf16));
    let rel = rel_l2(&half_logits, &full_logits);
    // Measured 5.0e-3 on a 16 x 128 ChemProt batch (`tartan bench parity --precision bf16`).
    assert!((1e-4..2e-2).contains(&rel), "bf16 logits differ from f32 by {rel:.2e} (relative L2)");
    let cosines = layer_cosines(&full, &half);
    assert_eq!(cosines.len(), 7, "embeddings and six layers: {cosines:?}");
    for (group, cos) in cosines {
        assert!(cos > 0.99, "{group}: cosine of bf16 and f32 gradients {cos:.5}");
    }
}

#[test]
fn a_bf16_optimizer_step_keeps_the_master_weights_f32() {
    let setup = tiny_setup(83);
    let device = Device::flex().autodiff();
    let (input, labels) = batch(&setup, &device);
    let m = model(&setup, Precision::Bf16, &device);
    let before = values(&m.encoder.encoder.layer[0].attention.self_.query.weight.val());
    let groups = ParamGroups::new(&m, |_| 0);
    let mut opt = AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        groups: vec![Group { lr: 1e-3, weight_decay: 0.01 }],
    });
    let mut buf = GradBuffer::default();
    buf.add(&m, &loss(&m, &input, &labels, &device).backward());
    let m = opt.step(m, buf, 1.0, &groups);
    assert_eq!(m.encoder.precision(), Precision::Bf16, "the step kept the model's precision");
    // A second forward and backward after the step: every parameter and gradient still f32.
    let grads = loss(&m, &input, &labels, &device).backward();
    let mut check = Dtypes { grads: &grads, seen: 0, not_f32: vec![] };
    m.visit(&mut check);
    assert!(check.seen > 30 && check.not_f32.is_empty(), "after the step: {:?}", check.not_f32);
    let after = values(&m.encoder.encoder.layer[0].attention.self_.query.weight.val());
    // An update of 1e-3 is below bf16's resolution for most weights; f32 keeps it.
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(moved > before.len() * 9 / 10, "only {moved} of {} weights moved", before.len());
}

/// Every tensor's dtype in a safetensors file.
fn safetensors_dtypes(path: &std::path::Path) -> Vec<(String, safetensors::Dtype)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(name, view)| (name, view.dtype())).collect()
}

#[test]
fn bf16_training_learns_as_f32_does_and_saves_an_f32_model() {
    let setup = tiny_setup(84);
    let train = |precision: &str| {
        let run = setup.path(precision);
        let sets = ["train.max_steps=100", "eval.every_steps=50", &format!("train.precision={precision}")];
        let result = strategy::run(&tiny_config(&setup, &run, &sets), Start::Fresh).unwrap();
        (run, result.test.unwrap().accuracy)
    };
    let (_, f32_acc) = train("f32");
    let (run, bf16_acc) = train("bf16");
    assert!(f32_acc > 0.5, "the f32 run did not learn: test accuracy {f32_acc}");
    assert!((bf16_acc - f32_acc).abs() <= 0.05, "test accuracy bf16 {bf16_acc} vs f32 {f32_acc}");
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("precision = \"bf16\""), "config.toml does not record it:\n{resolved}");
    let fingerprint = std::fs::read_to_string(run.join("fingerprint.json")).unwrap();
    assert!(fingerprint.contains("\"precision\": \"bf16\""), "{fingerprint}");
    let saved = safetensors_dtypes(&run.join("best/model.safetensors"));
    assert!(saved.len() > 30, "{} tensors in best/model.safetensors", saved.len());
    let not_f32: Vec<_> = saved.iter().filter(|(_, d)| *d != safetensors::Dtype::F32).collect();
    assert!(not_f32.is_empty(), "best/model.safetensors holds non-f32 tensors: {not_f32:?}");
}

#[test]
fn the_fused_ops_widen_a_bf16_input_to_f32() {
    use burn::tensor::{Distribution, FloatDType};
    use tartan::model::kernels::{self, LayerNorm};
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 2, 3, 8], Distribution::Normal(0.0, 3.0), &device);
    let bias = Tensor::<4>::zeros([2, 1, 1, 8], &device);
    let half = x.clone().cast(FloatDType::BF16);
    // The bf16 values, exactly, in f32: what each op must compute on.
    let widened = half.clone().cast(FloatDType::F32);
    let norm = LayerNorm::new(8, 1e-12, &device);
    let pairs = [
        (kernels::gelu(half.clone()), kernels::gelu(widened.clone())),
        (
            kernels::attention_softmax(half.clone(), bias.clone(), 0.5),
            kernels::attention_softmax(widened.clone(), bias, 0.5),
        ),
        (norm.forward(half), norm.forward(widened)),
    ];
    for (i, (got, want)) in pairs.into_iter().enumerate() {
        assert_eq!(got.dtype(), DType::F32, "op {i} returned {:?}", got.dtype());
        assert_eq!(values(&got), values(&want), "op {i} on bf16 input is not the f32 op on its values");
    }
}

//! Helpers for tests that read `../shared` (or `$TARTAN_SHARED`).
#![allow(dead_code)]

pub mod bin;
pub mod tiny;

use std::collections::HashMap;
use std::path::PathBuf;

/// The shared folder, or `None` (test skipped) when it is absent and not required.
/// `.ci/run` sets `TARTAN_REQUIRE_SHARED=1` so a missing folder fails there instead.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TARTAN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("reference").is_dir() {
        return Some(dir);
    }
    if std::env::var("TARTAN_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!("shared data not found at {} (set TARTAN_SHARED)", dir.display());
    }
    eprintln!("skipping: shared data not found at {}", dir.display());
    None
}

/// A tensor of a reference file: shape and values as f64 (ints converted).
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub struct Reference {
    pub tensors: HashMap<String, RefTensor>,
    pub metadata: HashMap<String, String>,
}

impl Reference {
    pub fn open(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let d = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    d.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                safetensors::Dtype::I64 => {
                    d.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            tensors.insert(name, RefTensor { shape: view.shape().to_vec(), values });
        }
        Self { tensors, metadata }
    }

    pub fn get(&self, key: &str) -> &RefTensor {
        self.tensors.get(key).unwrap_or_else(|| panic!("reference has no `{key}`"))
    }

    pub fn ints(&self, key: &str) -> Vec<i64> {
        self.get(key).values.iter().map(|&v| v as i64).collect()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

pub fn rel_l2<B: Copy + Into<f64>>(a: &[f32], b: &[B]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - (*y).into()).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y).into().powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// A float tensor's values as f32, whatever its dtype.
pub fn values<const D: usize>(t: &burn::tensor::Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Standard-normal values of `shape` on `device`.
pub fn random<const D: usize>(shape: [usize; D], device: &burn::tensor::Device) -> burn::tensor::Tensor<D> {
    burn::tensor::Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device)
}

/// The latest `checkpoint-<step>/` folder of a run.
pub fn latest_checkpoint(run: &std::path::Path) -> Option<PathBuf> {
    tartan::train::checkpoints::checkpoints(run).unwrap().pop().map(|(_, dir)| dir)
}

//! Reading and writing encoder weights in the Hugging Face layout.
//!
//! Hand-written over the `safetensors` crate rather than burn-store's adapters: we need HF's
//! own rules (optional `bert.`/`roberta.` prefix, sharded `*.index.json`, legacy
//! `gamma`/`beta` names, the decoder tied and not stored) and an error that lists every
//! missing, unexpected and wrongly-shaped key at once, and the same table serves saving.
//! Pickled `pytorch_model.bin` files only need their tensors read; burn-store's PyTorch
//! reader does that without running the pickle, and they then fill the same table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::store::pytorch_reader::{DType, PickleValue, PytorchReader};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use super::bert::Bert;
use super::config::{Family, ModelConfig};
use super::heads::{ClassificationHead, MlmHead};
use crate::params::PathTracker;

pub use crate::params::TensorMap;

/// A checkpoint's tensors by normalised key (no family prefix, `weight`/`bias` for LayerNorm),
/// converted to f32.
pub struct StateDict {
    tensors: TensorMap,
}

/// Keys a checkpoint may hold that no part of tartan uses: the pooler, NSP head, buffers,
/// the tied decoder and task heads of other fine-tunes.
fn ignorable(key: &str) -> bool {
    key.starts_with("pooler.")
        || key.starts_with("cls.seq_relationship.")
        || key.starts_with("cls.predictions.decoder.")
        || key.starts_with("lm_head.decoder.")
        || key.starts_with("classifier.")
        || key.ends_with("position_ids")
}

impl StateDict {
    /// Reads the first of `WEIGHT_FILES` that `dir` holds, with every shard an index lists.
    pub fn from_dir(dir: &Path, family: Family) -> Result<Self> {
        let Some(name) = WEIGHT_FILES.into_iter().find(|f| dir.join(f).exists()) else {
            bail!("no weights in {}: expected one of {}", dir.display(), WEIGHT_FILES.join(", "));
        };
        let first = dir.join(name);
        let files = if name.ends_with(".index.json") { shard_files(&first)? } else { vec![first] };
        let mut tensors = BTreeMap::new();
        for file in files {
            if name.starts_with("pytorch_model.") {
                read_pickle(&file, family, &mut tensors)?;
            } else {
                read_safetensors(&file, Some(family), &mut tensors)?;
            }
        }
        Ok(Self { tensors })
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }
}

/// Weight files of a Hugging Face model folder, most preferred first: safetensors before
/// pickles, a single file before a sharded index of the same format.
pub const WEIGHT_FILES: [&str; 4] =
    ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

/// The shard file names a `*.index.json` lists in its `weight_map`, each once.
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).with_context(|| format!("cannot read {}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{} has no `weight_map` object", index.display()))?;
    let names: BTreeSet<String> = map.values().filter_map(|v| v.as_str()).map(String::from).collect();
    Ok(names.into_iter().collect())
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(shard_names(index)?.into_iter().map(|f| dir.join(f)).collect())
}

fn normalise_key(key: &str, family: Family) -> String {
    let key = key.strip_prefix(family.prefix()).unwrap_or(key);
    match key.rsplit_once('.') {
        Some((head, "gamma")) => format!("{head}.weight"),
        Some((head, "beta")) => format!("{head}.bias"),
        _ => key.to_string(),
    }
}

fn read_safetensors(file: &Path, family: Option<Family>, out: &mut TensorMap) -> Result<()> {
    let normalise = |name: &str| match family {
        Some(f) => normalise_key(name, f),
        None => name.to_string(),
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read weights {}", file.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", file.display()))?;
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            // Integer buffers (position_ids) are never parameters.
            _ if ignorable(&normalise(&name)) => continue,
            other => bail!("{}: tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16", file.display()),
        };
        out.insert(normalise(&name), (view.shape().to_vec(), values));
    }
    Ok(())
}

/// Reads a pickled PyTorch state dict (ZIP or pre-1.6 container) without running its pickle.
///
/// burn-store's reader interprets the pickle opcodes itself: it never imports a module or
/// calls a function, rebuilding tensors from the calls `torch.save` writes and keeping any
/// other call as an inert placeholder. A state dict holds only tensors and plain data, so a
/// placeholder means the file asks Python to run something on load (`os.system`, `exec`);
/// such a file is refused rather than read around.
fn read_pickle(file: &Path, family: Family, out: &mut TensorMap) -> Result<()> {
    let unreadable = |e| anyhow!("{} is not a PyTorch checkpoint tartan can read: {e}", file.display());
    let pickle = PytorchReader::read_pickle_data(file, None).map_err(unreadable)?;
    // Opened before the objects are listed so that tensors, which that listing sees by type
    // name only, are told from a forged `torch.Tensor` call; its error (a root that is not a
    // dict, say) waits until the listing has had its say.
    let reader = PytorchReader::new(file);
    let rebuilt = |path: &str| reader.as_ref().is_ok_and(|r| r.get(path).is_some());
    let mut objects = vec![];
    python_objects(&pickle, &mut vec![], &rebuilt, &mut objects);
    if !objects.is_empty() {
        objects.sort();
        let found: Vec<String> = objects.iter().map(|(path, ty)| format!("`{ty}` at `{path}`")).collect();
        bail!(
            "{} refused: its pickle holds Python objects that are not tensors ({}). A checkpoint has no use for \
             them, and unpickling the file in Python would call them; tartan ran nothing. If you trust the file, \
             convert it once in Python: `from transformers import AutoModel; AutoModel.from_pretrained(DIR).save_pretrained(DIR)`",
            file.display(),
            found.join(", ")
        );
    }
    // A view may repeat its storage (stride 0), so a few bytes of pickle can claim gigabytes.
    // Stored tensors fit in the file, twice over with the copy of the tied decoder.
    let budget = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len() * 2;
    let mut claimed = 0;
    for (name, tensor) in reader.map_err(unreadable)?.into_tensors() {
        let key = normalise_key(&name, family);
        // The reader hands back native byte order.
        let decode: fn(&[u8]) -> f32 = match tensor.dtype() {
            DType::F32 => |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            DType::F16 => |b| half::f16::from_ne_bytes([b[0], b[1]]).to_f32(),
            DType::BF16 => |b| half::bf16::from_ne_bytes([b[0], b[1]]).to_f32(),
            _ if ignorable(&key) => continue,
            other => bail!("{}: tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16", file.display()),
        };
        claimed += tensor.byte_len() as u64;
        if claimed > budget {
            bail!(
                "{}: its tensors claim more than twice the file's {} bytes (`{name}` is {:?}); the file is malformed",
                file.display(),
                budget / 2,
                tensor.shape()
            );
        }
        let bytes = tensor.read().with_context(|| format!("cannot read weights {}", file.display()))?;
        let values = bytes.chunks_exact(tensor.dtype().size()).map(decode).collect();
        out.insert(key, (tensor.shape().to_vec(), values));
    }
    Ok(())
}

/// How many foreign objects an error names; a crafted file can hold millions.
const OBJECTS_LISTED: usize = 10;

/// Collects `(path, type)` of values in a pickle that are neither plain data nor tensors the
/// reader rebuilt, with paths dotted as the reader names tensors (dict keys, list indices).
fn python_objects(
    value: &PickleValue,
    path: &mut Vec<String>,
    rebuilt: &dyn Fn(&str) -> bool,
    out: &mut Vec<(String, String)>,
) {
    if out.len() == OBJECTS_LISTED {
        return;
    }
    let mut visit = |part: String, value| {
        path.push(part);
        python_objects(value, path, rebuilt, out);
        path.pop();
    };
    match value {
        PickleValue::Dict(items) => items.iter().for_each(|(k, v)| visit(k.clone(), v)),
        PickleValue::List(items) => items.iter().enumerate().for_each(|(i, v)| visit(i.to_string(), v)),
        PickleValue::Unsupported(ty) => {
            let at = path.join(".");
            if !(ty == "torch.Tensor" && rebuilt(&at)) {
                out.push((if at.is_empty() { "the root".into() } else { at }, ty.clone()));
            }
        }
        _ => {}
    }
}

/// Maps a burn parameter path (`encoder.layer.0.attention.self_.query.weight`) to its HF key,
/// and says whether the tensor is stored transposed (PyTorch `Linear` is `[out, in]`).
fn hf_key(path: &str, rank: usize) -> (String, bool) {
    let key = path.replace(".self_.", ".self.");
    let key = match key.rsplit_once('.') {
        Some((head, "gamma")) => format!("{head}.weight"),
        Some((head, "beta")) => format!("{head}.bias"),
        _ => key,
    };
    let transposed = rank == 2 && !key.contains("embeddings.");
    (key, transposed)
}

/// HF key of an MLM-head parameter path (`dense.weight`, `layer_norm.weight`, `bias`).
fn mlm_key(path: &str, family: Family) -> String {
    let path = match path.rsplit_once('.') {
        Some((head, "gamma")) => format!("{head}.weight"),
        Some((head, "beta")) => format!("{head}.bias"),
        _ => path.to_string(),
    };
    let path = path.as_str();
    let (head, norm) = match family {
        Family::Bert => ("cls.predictions", "cls.predictions.transform.LayerNorm"),
        Family::Roberta => ("lm_head", "lm_head.layer_norm"),
    };
    if let Some(rest) = path.strip_prefix("layer_norm.") {
        format!("{norm}.{rest}")
    } else if let Some(rest) = path.strip_prefix("dense.") {
        match family {
            Family::Bert => format!("{head}.transform.dense.{rest}"),
            Family::Roberta => format!("{head}.dense.{rest}"),
        }
    } else {
        format!("{head}.{path}")
    }
}

/// Writes checkpoint tensors into a module's parameters, recording what did not fit.
struct Loader<'a> {
    state: &'a StateDict,
    key_of: &'a dyn Fn(&str, usize) -> (String, bool),
    path: PathTracker,
    used: BTreeSet<String>,
    missing: Vec<String>,
    mismatched: Vec<String>,
}

impl<'a> Loader<'a> {
    fn new(state: &'a StateDict, key_of: &'a dyn Fn(&str, usize) -> (String, bool)) -> Self {
        Self { state, key_of, path: PathTracker::default(), used: BTreeSet::new(), missing: vec![], mismatched: vec![] }
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (key, transposed) = (self.key_of)(&self.path.path(), D);
        let Some((shape, values)) = self.state.tensors.get(&key) else {
            self.missing.push(key);
            return param;
        };
        self.used.insert(key.clone());
        let (id, old, mapper) = param.consume();
        let mut expected = old.dims().to_vec();
        if transposed {
            expected.reverse();
        }
        if *shape != expected {
            self.mismatched.push(format!("{key}: checkpoint {shape:?}, model {expected:?}"));
            return Param::from_mapped_value(id, old, mapper);
        }
        // Transposed on the host, not as a view: a strided weight is copied again by every
        // matmul that reshapes it (burn's batched `linear`), i.e. each forward.
        let data = if transposed {
            TensorData::new(transpose_2d(values, shape[0], shape[1]), vec![shape[1], shape[0]])
        } else {
            TensorData::new(values.clone(), shape.clone())
        };
        let mut tensor = Tensor::<D>::from_data(data, &old.device());
        if old.is_require_grad() {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
fn transpose_2d(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// What loading a checkpoint found, for the log and for errors.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub unexpected: Vec<String>,
    /// The checkpoint had no MLM head; it was freshly initialised.
    pub mlm_head_initialised: bool,
}

/// Loads the encoder and, when asked, the MLM head from `dir`; a checkpoint without an MLM head
/// gets a fresh one drawn from `seed`.
/// Missing or wrongly-shaped encoder keys are an error listing all of them.
pub fn load_pretrained(
    dir: &Path,
    config: &ModelConfig,
    with_mlm: bool,
    seed: u64,
    device: &Device,
) -> Result<(Bert, Option<MlmHead>, LoadReport)> {
    let state = StateDict::from_dir(dir, config.family)?;
    let mut loader = Loader::new(&state, &hf_key);
    let encoder = Bert::placeholder(config, device).map(&mut loader);
    if !loader.missing.is_empty() || !loader.mismatched.is_empty() {
        let mut msg =
            format!("the weights in {} do not fit a {:?} encoder with this config.json:", dir.display(), config.family);
        if !loader.missing.is_empty() {
            msg += &format!("\n  missing keys: {}", loader.missing.join(", "));
        }
        if !loader.mismatched.is_empty() {
            msg += &format!("\n  wrongly shaped: {}", loader.mismatched.join("; "));
        }
        let unexpected: Vec<_> = state.keys().filter(|k| !loader.used.contains(*k) && !ignorable(k)).cloned().collect();
        if !unexpected.is_empty() {
            msg += &format!("\n  unexpected keys: {}", unexpected.join(", "));
        }
        msg += "\n  check that config.json belongs to these weights (hidden_size, num_hidden_layers, vocab_size)";
        bail!(msg);
    }
    let mut used = std::mem::take(&mut loader.used);
    let mut report = LoadReport::default();
    let mlm = if with_mlm {
        let family = config.family;
        let key_of = move |path: &str, rank: usize| (mlm_key(path, family), rank == 2);
        let mut head_loader = Loader::new(&state, &key_of);
        let head = MlmHead::new(config, seed, device).map(&mut head_loader);
        if !head_loader.mismatched.is_empty() {
            bail!("MLM head in {} has wrongly shaped keys: {}", dir.display(), head_loader.mismatched.join("; "));
        }
        if head_loader.used.is_empty() {
            report.mlm_head_initialised = true;
            tracing::info!("{} has no MLM head; it is initialised fresh", dir.display());
        } else if !head_loader.missing.is_empty() {
            bail!("MLM head in {} is incomplete: missing {}", dir.display(), head_loader.missing.join(", "));
        }
        used.extend(head_loader.used);
        Some(head)
    } else {
        None
    };
    report.unexpected = state
        .keys()
        .filter(|k| !(used.contains(*k) || ignorable(k) || k.starts_with("cls.") || k.starts_with("lm_head.")))
        .cloned()
        .collect();
    if !report.unexpected.is_empty() {
        tracing::warn!("unused keys in {}: {}", dir.display(), report.unexpected.join(", "));
    }
    Ok((encoder, mlm, report))
}

/// Collects `(key, shape, values)` of a module's parameters, or of their gradients when
/// `grads` is given (parameters without a gradient are skipped then).
struct Collector<'a> {
    key_of: &'a dyn Fn(&str, usize) -> (String, bool),
    grads: Option<&'a Gradients>,
    path: PathTracker,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (key, transposed) = (self.key_of)(&self.path.path(), D);
        let mut t = match self.grads {
            None => param.val(),
            Some(grads) => match param.val().grad(grads) {
                Some(g) => g,
                None => return,
            },
        };
        if transposed {
            t = t.transpose();
        }
        let shape = t.dims().to_vec();
        let values = t.into_data().try_to_vec::<f32>().expect("parameters are f32");
        self.out.push((key, shape, values));
    }
}

/// All tensors of a module in HF layout; `prefix` goes before every key.
pub fn hf_tensors<M: Module>(
    module: &M,
    prefix: &str,
    mlm_family: Option<Family>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mlm_of = |path: &str, rank: usize| (mlm_key(path, mlm_family.unwrap_or(Family::Bert)), rank == 2);
    let key_of: &dyn Fn(&str, usize) -> (String, bool) = if mlm_family.is_some() { &mlm_of } else { &hf_key };
    let mut c = Collector { key_of, grads: None, path: PathTracker::default(), out: vec![] };
    module.visit(&mut c);
    c.out.into_iter().map(|(k, s, v)| (format!("{prefix}{k}"), s, v)).collect()
}

/// Serialises named f32 tensors to safetensors bytes (`format: pt`, as HF writes them).
pub fn to_safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, s, v)| (k.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| Ok((k.clone(), safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Reads a flat `name -> tensor` safetensors file written by `to_safetensors_bytes`.
pub fn read_plain(file: &Path) -> Result<TensorMap> {
    let mut out = BTreeMap::new();
    read_safetensors(file, None, &mut out)?;
    Ok(out)
}

/// Loads parameters of `module` from a flat safetensors map keyed by burn paths (heads, resume).
pub fn load_plain<M: Module>(module: M, tensors: TensorMap, what: &str) -> Result<M> {
    let state = StateDict { tensors };
    let mut loader = Loader::new(&state, &plain_key);
    let module = module.map(&mut loader);
    if !loader.missing.is_empty() || !loader.mismatched.is_empty() {
        bail!("{what}: missing {:?}, wrongly shaped {:?}", loader.missing, loader.mismatched);
    }
    Ok(module)
}

/// Files written by tartan itself (heads, resume checkpoints) key tensors by burn path, as stored.
fn plain_key(path: &str, _rank: usize) -> (String, bool) {
    (path.to_string(), false)
}

/// A module's parameters keyed by burn path, the inverse of `load_plain`.
pub fn plain_tensors<M: Module>(module: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut c = Collector { key_of: &plain_key, grads: None, path: PathTracker::default(), out: vec![] };
    module.visit(&mut c);
    c.out
}

/// Gradients of an encoder's parameters keyed by HF name, in HF layout (parity tests, debugging).
pub fn hf_grads(encoder: &Bert, grads: &Gradients) -> TensorMap {
    let mut c = Collector { key_of: &hf_key, grads: Some(grads), path: PathTracker::default(), out: vec![] };
    encoder.visit(&mut c);
    c.out.into_iter().map(|(k, s, v)| (k, (s, v))).collect()
}

/// Key of a classification-head parameter (`dense.weight`, `out_proj.bias`) in a
/// `*ForSequenceClassification` checkpoint, before the family prefix. RoBERTa's
/// `classifier.{dense,out_proj}` is this head; in BERT the pooler (dense + tanh on CLS) then
/// `classifier` compute the same function once dropout is off.
fn seq_cls_key(path: &str, family: Family) -> String {
    match (family, path.split_once('.')) {
        (Family::Bert, Some(("dense", rest))) => format!("pooler.dense.{rest}"),
        (Family::Bert, Some(("out_proj", rest))) => format!("classifier.{rest}"),
        _ => format!("classifier.{path}"),
    }
}

/// The head's tensors under the names `*ForSequenceClassification` gives them (BERT's pooler
/// sits inside the base model, so it takes the `bert.` prefix).
pub fn hf_head_tensors(head: &ClassificationHead, family: Family) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let key_of = |path: &str, rank: usize| (seq_cls_key(path, family), rank == 2);
    let mut c = Collector { key_of: &key_of, grads: None, path: PathTracker::default(), out: vec![] };
    head.visit(&mut c);
    let prefixed = |k: String| if k.starts_with("pooler.") { format!("{}{k}", family.prefix()) } else { k };
    c.out.into_iter().map(|(k, s, v)| (prefixed(k), s, v)).collect()
}

/// Loads `head` from the `*ForSequenceClassification` weights in `dir`, the mirror of
/// `hf_head_tensors`.
pub fn load_hf_head(dir: &Path, family: Family, head: ClassificationHead) -> Result<ClassificationHead> {
    let state = StateDict::from_dir(dir, family)?;
    let key_of = |path: &str, rank: usize| (seq_cls_key(path, family), rank == 2);
    let mut loader = Loader::new(&state, &key_of);
    let head = head.map(&mut loader);
    if !loader.missing.is_empty() || !loader.mismatched.is_empty() {
        let mut msg = format!("{} holds no complete classification head:", dir.display());
        if !loader.missing.is_empty() {
            msg += &format!(" missing {};", loader.missing.join(", "));
        }
        if !loader.mismatched.is_empty() {
            msg += &format!(" wrongly shaped {};", loader.mismatched.join("; "));
        }
        msg += " tartan keeps it there (older folders: in head.safetensors); check that tartan.json's labels belong to these weights";
        bail!(msg);
    }
    Ok(head)
}

/// Sets `head.dense` from the checkpoint's pretrained pooler (`pooler.dense`, CLS -> Linear +
/// tanh, the layer `BertForSequenceClassification` starts from). Returns whether it had one.
pub fn init_head_from_pooler(
    dir: &Path,
    family: Family,
    head: ClassificationHead,
) -> Result<(ClassificationHead, bool)> {
    let state = StateDict::from_dir(dir, family)?;
    if !state.tensors.contains_key("pooler.dense.weight") {
        return Ok((head, false));
    }
    let key_of = |path: &str, rank: usize| (path.replace("dense.", "pooler.dense."), rank == 2);
    let mut loader = Loader::new(&state, &key_of);
    let head = head.map(&mut loader);
    if !loader.mismatched.is_empty() {
        bail!("the pooler in {} does not fit the head: {}", dir.display(), loader.mismatched.join("; "));
    }
    Ok((head, true))
}

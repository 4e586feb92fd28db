//! A saved model is a complete Hugging Face `*ForSequenceClassification` checkpoint (keys,
//! shapes, config and tokenizer files), older `best/` folders still load, and `tartan export`
//! writes the current layout.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::tiny::tiny_setup;
use burn::module::Module;
use burn::tensor::Device;
use tartan::data::synthetic::{vocabulary, word_level_tokenizer};
use tartan::model::export::write_encoder;
use tartan::model::weights::{TensorMap, hf_tensors, plain_tensors, read_plain, to_safetensors_bytes};
use tartan::model::{Bert, ClassificationHead, MlmHead, ModelConfig, TartanModel};
use tartan::train::evaluate::predict_probs;
use tartan::train::pretrained::Pretrained;
use tartan::train::saved_model::{HeadInfo, load_model, save_model, save_pretrained};

const LABELS: [&str; 3] = ["alpha", "beta", "gamma"];

fn info() -> HeadInfo {
    HeadInfo { labels: LABELS.iter().map(|l| l.to_string()).collect(), max_length: 32, head_dropout: 0.2 }
}

/// The checkpoint's encoder and MLM head with a fresh three-label head.
fn model_of(source: &Pretrained, device: &Device) -> TartanModel {
    let (encoder, mlm) = source.load(true, 0, device).unwrap();
    let head = ClassificationHead::new(source.config.hidden_size, LABELS.len(), 0.2, 0, device);
    TartanModel::new(encoder, head, mlm)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shapes(tensors: &TensorMap) -> BTreeMap<&str, &[usize]> {
    tensors.iter().map(|(k, (s, _))| (k.as_str(), s.as_slice())).collect()
}

/// Probabilities of a few texts, so two models can be compared as functions.
fn probs(model: &TartanModel, source: &Pretrained) -> Vec<Vec<f32>> {
    let texts = ["alpha beta gamma", "delta", "one two three four five six"];
    let ids = source.tokenizer.encode_batch(&texts, 32).unwrap();
    predict_probs(&model.valid(), &ids, 2, source.tokenizer.pad_id, &Device::flex())
}

/// Loading may lay a weight out transposed in memory, which changes the summation order of a
/// product: equal to float rounding.
fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-6, "{a:?}\n{b:?}");
    }
}

/// `burn` Linear weights are `[in, out]`; PyTorch's are `[out, in]`.
fn assert_transposed(hf: &(Vec<usize>, Vec<f32>), ours: &(Vec<usize>, Vec<f32>)) {
    let (rows, cols) = (hf.0[0], hf.0[1]);
    assert_eq!(ours.0, vec![cols, rows]);
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(hf.1[r * cols + c], ours.1[c * rows + r]);
        }
    }
}

#[test]
fn bert_model_is_saved_as_bert_for_sequence_classification() {
    let setup = tiny_setup(61);
    let source = Pretrained::from_dir(&setup.model).unwrap();
    let device = Device::flex();
    let model = model_of(&source, &device);
    let dir = setup.path("best");
    save_model(&dir, &model, &source, &info()).unwrap();

    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(!dir.join("head.safetensors").exists(), "the head belongs in model.safetensors");
    let config = json(&dir.join("config.json"));
    assert_eq!(config["architectures"], serde_json::json!(["BertForSequenceClassification"]));
    assert_eq!(config["id2label"], serde_json::json!({"0": "alpha", "1": "beta", "2": "gamma"}));
    assert_eq!(config["label2id"], serde_json::json!({"alpha": 0, "beta": 1, "gamma": 2}));
    assert_eq!(config["problem_type"], "single_label_classification");
    assert_eq!(config["classifier_dropout"], 0.2);
    assert_eq!(config["hidden_size"], 32, "the encoder's own fields are kept");

    let saved = read_plain(&dir.join("model.safetensors")).unwrap();
    let h = source.config.hidden_size;
    let mut expected: Vec<String> = hf_tensors(&model.encoder, "bert.", None).into_iter().map(|t| t.0).collect();
    expected.extend(
        ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
            .map(String::from),
    );
    expected.sort();
    assert_eq!(saved.keys().cloned().collect::<Vec<_>>(), expected, "exactly the encoder, pooler and classifier");
    let s = shapes(&saved);
    assert_eq!(s["bert.pooler.dense.weight"], [h, h]);
    assert_eq!(s["bert.pooler.dense.bias"], [h]);
    assert_eq!(s["classifier.weight"], [LABELS.len(), h]);
    assert_eq!(s["classifier.bias"], [LABELS.len()]);
    let head: TensorMap = plain_tensors(&model.classifier).into_iter().map(|(k, s, v)| (k, (s, v))).collect();
    assert_transposed(&saved["bert.pooler.dense.weight"], &head["dense.weight"]);
    assert_transposed(&saved["classifier.weight"], &head["out_proj.weight"]);
    assert_eq!(saved["classifier.bias"], head["out_proj.bias"]);

    let tokenizer_config = json(&dir.join("tokenizer_config.json"));
    assert_eq!(tokenizer_config["tokenizer_class"], "PreTrainedTokenizerFast");
    assert_eq!(tokenizer_config["model_max_length"], 32);
    assert_eq!(tokenizer_config["cls_token"], "[CLS]");
    let specials = json(&dir.join("special_tokens_map.json"));
    assert_eq!(
        specials,
        serde_json::json!({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"})
    );

    let loaded = load_model(&dir, &device).unwrap();
    assert_eq!(loaded.labels.labels, info().labels);
    assert!(loaded.model.mlm.is_none());
    assert_close(&probs(&loaded.model, &loaded.pretrained), &probs(&model, &source));
}

#[test]
fn roberta_model_is_saved_as_roberta_for_sequence_classification() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = word_level_tokenizer(&vocabulary()).unwrap();
    let mut raw = ModelConfig::tiny_bert(tokenizer.vocab_size(), 32, 1, 4, 64).raw;
    raw["model_type"] = "roberta".into();
    raw["pad_token_id"] = 1.into();
    raw["max_position_embeddings"] = 66.into();
    let config = ModelConfig::from_json(&raw.to_string()).unwrap();
    let device = Device::flex();
    let source_dir = dir.path().join("source");
    let (encoder, mlm) = (Bert::new(&config, 0, &device), MlmHead::new(&config, 0, &device));
    save_pretrained(&source_dir, &encoder, Some(&mlm), &config, &tokenizer, None).unwrap();
    let source = Pretrained::from_dir(&source_dir).unwrap();
    let model = model_of(&source, &device);
    let best = dir.path().join("best");
    save_model(&best, &model, &source, &info()).unwrap();

    assert_eq!(
        json(&best.join("config.json"))["architectures"],
        serde_json::json!(["RobertaForSequenceClassification"])
    );
    let saved = read_plain(&best.join("model.safetensors")).unwrap();
    let head: Vec<&str> = saved.keys().map(String::as_str).filter(|k| !k.starts_with("roberta.")).collect();
    assert_eq!(
        head,
        ["classifier.dense.bias", "classifier.dense.weight", "classifier.out_proj.bias", "classifier.out_proj.weight"]
    );
    assert!(saved.keys().all(|k| !k.contains("pooler") && !k.starts_with("lm_head")), "{:?}", saved.keys());
    assert_eq!(shapes(&saved)["classifier.out_proj.weight"], [LABELS.len(), 32]);
    let loaded = load_model(&best, &device).unwrap();
    assert_close(&probs(&loaded.model, &loaded.pretrained), &probs(&model, &source));
}

/// The source checkpoint's tokenizer files carry over; the run's max length replaces theirs.
#[test]
fn tokenizer_files_of_the_source_checkpoint_are_kept() {
    let setup = tiny_setup(62);
    let source_config =
        serde_json::json!({"tokenizer_class": "BertTokenizer", "do_lower_case": true, "model_max_length": 512});
    std::fs::write(setup.model.join("tokenizer_config.json"), source_config.to_string()).unwrap();
    std::fs::write(setup.model.join("special_tokens_map.json"), r#"{"cls_token": "[CLS]"}"#).unwrap();
    let source = Pretrained::from_dir(&setup.model).unwrap();
    let dir = setup.path("best");
    save_model(&dir, &model_of(&source, &Device::flex()), &source, &info()).unwrap();
    assert_eq!(
        json(&dir.join("tokenizer_config.json")),
        serde_json::json!({"tokenizer_class": "BertTokenizer", "do_lower_case": true, "model_max_length": 32})
    );
    assert_eq!(json(&dir.join("special_tokens_map.json")), serde_json::json!({"cls_token": "[CLS]"}));
}

/// Writes `best/` as tartan did before the head moved into `model.safetensors`: a TARTAN
/// run's encoder and MLM head (`BertForMaskedLM` keys), `head.safetensors` keyed by burn path.
fn write_old_layout(dir: &Path, model: &TartanModel, source: &Pretrained) {
    std::fs::create_dir_all(dir).unwrap();
    write_encoder(dir, &model.encoder, model.mlm.as_ref(), &source.config).unwrap();
    source.tokenizer.save(&dir.join("tokenizer.json")).unwrap();
    std::fs::write(dir.join("head.safetensors"), to_safetensors_bytes(&plain_tensors(&model.classifier)).unwrap())
        .unwrap();
    std::fs::write(dir.join("tartan.json"), serde_json::to_string(&info()).unwrap()).unwrap();
}

#[test]
fn older_best_folders_load_and_export_to_the_current_layout() {
    let setup = tiny_setup(63);
    let source = Pretrained::from_dir(&setup.model).unwrap();
    let device = Device::flex();
    let model = model_of(&source, &device);
    let run = setup.path("run");
    write_old_layout(&run.join("best"), &model, &source);
    let old = load_model(&run.join("best"), &device).unwrap();
    assert_eq!(plain_tensors(&old.model.classifier), plain_tensors(&model.classifier));
    assert_close(&probs(&old.model, &old.pretrained), &probs(&model, &source));

    let tartan = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_tartan")).args(args).output().unwrap();
    let exported = setup.path("exported");
    let out = tartan(&["export", run.to_str().unwrap(), exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!exported.join("head.safetensors").exists());
    assert!(read_plain(&exported.join("model.safetensors")).unwrap().contains_key("classifier.weight"));
    let new = load_model(&exported, &device).unwrap();
    assert_close(&probs(&new.model, &new.pretrained), &probs(&model, &source));

    let input = setup.path("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"alpha beta\"}\n{\"text\": \"gamma\"}\n").unwrap();
    // `tartan predict`'s labels and probabilities, in label order.
    let predict = |dir: &Path| -> Vec<Vec<f32>> {
        let out = tartan(&["predict", "--model", dir.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        let lines: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));
        let probs = |l: &serde_json::Value| LABELS.map(|k| l["probabilities"][k].as_f64().unwrap() as f32).to_vec();
        lines.iter().map(probs).collect()
    };
    assert_close(&predict(&exported), &predict(&run.join("best")));

    // An export replaces an earlier export, never another folder.
    assert!(tartan(&["export", run.to_str().unwrap(), exported.to_str().unwrap()]).status.success());
    let err = tartan(&["export", run.to_str().unwrap(), setup.model.to_str().unwrap()]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("is not a model saved by tartan; choose a new folder"));
    let err = tartan(&["export", setup.path("nothing").to_str().unwrap(), setup.path("x").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("neither a run folder with a best/ model nor a saved model"));
}

//! Bad input gets an error that names the file, the line and the fix.

use std::path::Path;

use crate::common::tiny::{tiny_config, tiny_setup};
use tartan::data::{LabelMap, read_jsonl};
use tartan::train::plan::Phase;
use tartan::train::pretrained::Pretrained;
use tartan::train::trainer::Trainer;

fn jsonl_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data.jsonl");
    std::fs::write(&p, bytes).unwrap();
    read_jsonl(&p).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn malformed_jsonl_names_file_line_and_value() {
    let ok = b"{\"text\": \"a\", \"label\": \"x\"}\n";
    let cases: [(&[u8], &str); 8] = [
        (b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": }\n", "data.jsonl:2: not valid JSON"),
        (b"{\"label\": \"x\"}\n", "data.jsonl:1: missing field `text`"),
        (b"{\"text\": \"a\"}\n", "data.jsonl:1: missing field `label`"),
        (b"{\"text\": 5, \"label\": \"x\"}\n", "data.jsonl:1: `text` must be a string, got `5`"),
        (b"{\"text\": \"  \", \"label\": \"x\"}\n", "data.jsonl:1: `text` is empty"),
        (b"[1, 2]\n", "data.jsonl:1: expected a JSON object"),
        (b"{\"text\": \"a\xff\", \"label\": \"x\"}\n", "data.jsonl:1: invalid UTF-8"),
        (b"\n  \n", "holds no examples"),
    ];
    for (bytes, expected) in cases {
        let err = jsonl_error(bytes);
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }
    assert!(jsonl_error(ok).is_empty());
}

#[test]
fn bom_crlf_numeric_labels_and_long_lines_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    let long = "word ".repeat(2_000_000);
    let text = format!(
        "\u{feff}{{\"text\": \"a\", \"label\": 3}}\r\n\r\n{{\"text\": \"{long}\", \"label\": \"x\", \"metadata\": [1]}}\r\n"
    );
    std::fs::write(&p, text).unwrap();
    let rows = read_jsonl(&p).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].label, "3");
    assert_eq!(rows[1].line, 3);
    assert!(rows[1].text.len() >= 10_000_000);
}

#[test]
fn single_class_and_unseen_labels_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.jsonl");
    std::fs::write(&train, "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"x\"}\n").unwrap();
    let rows = read_jsonl(&train).unwrap();
    let err = LabelMap::from_train(&rows, &train).unwrap_err().to_string();
    assert!(err.contains("single label (x)"), "{err}");
    std::fs::write(&train, "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n").unwrap();
    let labels = LabelMap::from_train(&read_jsonl(&train).unwrap(), &train).unwrap();
    let dev = dir.path().join("dev.jsonl");
    std::fs::write(&dev, "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"z\"}\n").unwrap();
    let err = labels.ids(&read_jsonl(&dev).unwrap(), &dev).unwrap_err().to_string();
    assert!(err.contains("dev.jsonl:2: label `z` does not occur in the training data"), "{err}");
}

fn trainer_error(setup: &crate::common::tiny::TinySetup, sets: &[&str]) -> String {
    let cfg = tiny_config(setup, &setup.path("run"), sets);
    match Trainer::new(cfg, Phase::Main, false) {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn model_folder_problems_are_explained() {
    let setup = tiny_setup(21);
    let copy = |name: &str| {
        let dir = setup.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(setup.model.join(f), dir.join(f)).unwrap();
        }
        dir
    };
    let err = |dir: &Path| {
        Pretrained::from_dir(dir)
            .and_then(|p| p.load(false, &burn::tensor::Device::flex()).map(|_| ()))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    };

    let no_config = copy("no-config");
    std::fs::remove_file(no_config.join("config.json")).unwrap();
    assert!(err(&no_config).contains("cannot read model config"), "{}", err(&no_config));

    // Pickles are read (tests/pickle.rs); a file that only carries the name is explained.
    let misnamed = copy("misnamed");
    std::fs::rename(misnamed.join("model.safetensors"), misnamed.join("pytorch_model.bin")).unwrap();
    let e = err(&misnamed);
    let file = misnamed.join("pytorch_model.bin").display().to_string();
    assert!(e.contains(&format!("{file} is not a PyTorch checkpoint tartan can read")), "{e}");

    let no_weights = copy("no-weights");
    std::fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    assert!(err(&no_weights).contains("no weights in"), "{}", err(&no_weights));

    // A config that does not belong to the weights: every wrongly shaped key is listed.
    let wrong = copy("wrong-shape");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wrong.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!(100);
    cfg["num_hidden_layers"] = serde_json::json!(3);
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&wrong);
    assert!(
        e.contains("wrongly shaped: encoder.layer.0.intermediate.dense.weight: checkpoint [128, 32], model [100, 32]"),
        "{e}"
    );
    assert!(e.contains("missing keys: encoder.layer.2.attention.self.query.weight"), "{e}");

    let bad_type = copy("bad-type");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bad_type.join("config.json")).unwrap()).unwrap();
    cfg["model_type"] = serde_json::json!("gpt2");
    std::fs::write(bad_type.join("config.json"), cfg.to_string()).unwrap();
    assert!(err(&bad_type).contains("model_type `gpt2` is not supported"), "{}", err(&bad_type));

    let e = trainer_error(&setup, &["model.max_length=100"]);
    assert!(e.contains("model.max_length = 100 is beyond the model's 64 position embeddings"), "{e}");

    // A tokenizer without a mask token cannot do masked-LM.
    let no_mask = copy("no-mask");
    let tok = std::fs::read_to_string(no_mask.join("tokenizer.json")).unwrap().replace("[MASK]", "[MASQ]");
    std::fs::write(no_mask.join("tokenizer.json"), tok).unwrap();
    let aux = format!("aux=[{{name = \"r\", file = \"{}\"}}]", setup.path("related.txt").display());
    let e = trainer_error(&setup, &[&format!("model.name={}", no_mask.display()), "strategy=\"mt-tartan\"", &aux]);
    assert!(e.contains("has no mask token"), "{e}");
}

#[test]
fn a_device_that_cannot_be_used_is_explained() {
    let setup = tiny_setup(23);
    let err = trainer_error(&setup, &["device=cuda"]);
    #[cfg(not(feature = "cuda"))]
    assert!(err.contains("built without CUDA support") && err.contains("--features cuda"), "{err}");
    #[cfg(feature = "cuda")]
    {
        // SAFETY: only tries to dlopen libcuda.
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            // A machine with a driver: a usable GPU, or an error from the probe, never a panic.
            assert!(err.is_empty() || err.contains("device \"cuda\": "), "{err}");
        } else {
            assert!(err.contains("no NVIDIA driver (libcuda.so could not be loaded)"), "{err}");
        }
    }
    assert!(err.is_empty() || err.contains("--device cpu"), "{err}");
}

#[test]
fn impossible_configurations_are_refused() {
    let setup = tiny_setup(22);
    let cases: [(&[&str], &str); 5] = [
        (&["strategy=\"meta-tartan\"", "task.dev=\"\""], "needs at least one [[aux]] corpus"),
        (&["strategy=\"mt-tartan\""], "needs at least one [[aux]] corpus"),
        (&["train.warmup_ratio=1.5"], "train.warmup_ratio must be in [0, 1)"),
        (&["eval.batch_size=0"], "eval.batch_size must be at least 1"),
        (&["aux=[{name = \"a\", file = \"x\"}, {name = \"a\", file = \"y\"}]"], "used twice"),
    ];
    for (sets, expected) in cases {
        let mut all = vec![
            format!("model.name={}", setup.model.display()),
            format!("task.train={}", setup.path("train.jsonl").display()),
        ];
        all.extend(sets.iter().map(|s| s.to_string()));
        let err = tartan::config::RunConfig::load(None, &all).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(expected), "{sets:?}: expected `{expected}` in `{err}`");
    }
    let no_dev = tartan::config::RunConfig::load(
        None,
        &[
            format!("model.name={}", setup.model.display()),
            format!("task.train={}", setup.path("train.jsonl").display()),
            "strategy=\"meta-tartan\"".into(),
            format!("aux=[{{name = \"r\", file = \"{}\"}}]", setup.path("related.txt").display()),
        ],
    );
    let err = no_dev.err().unwrap().to_string();
    assert!(err.contains("meta-tartan takes its meta-gradient from dev data: set task.dev"), "{err}");
    let err =
        tartan::config::RunConfig::load(None, &["aux=[{name = \"a\", file = \"x\", mask_probability = 0.2}]".into()])
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("unknown setting `aux.mask_probability`; did you mean `aux.mask_prob`?"), "{err}");
}

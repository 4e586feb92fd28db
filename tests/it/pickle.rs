//! Pickled `pytorch_model.bin` checkpoints: read without running them, refused when they hold
//! anything but tensors. Fixtures from bench/pickle_fixtures.py (tests/fixtures/pickle/).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tartan::model::weights::{hf_tensors, init_head_from_pooler, load_pretrained};
use tartan::model::{ClassificationHead, ModelConfig, hub};

/// The file a hostile fixture's payload creates in the working folder when Python unpickles it.
const MARKER: &str = "tartan-pickle-executed";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle").join(name)
}

/// A model folder holding the fixture's config.json and `files` as `(fixture, name in folder)`.
fn model_dir(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("config.json"), dir.join("config.json")).unwrap();
    for (from, to) in files {
        std::fs::copy(fixture(from), dir.join(to)).unwrap();
    }
    dir
}

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Encoder and MLM head tensors as loaded from `dir`, in HF layout.
fn load(dir: &Path) -> anyhow::Result<(Tensors, Tensors)> {
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let (encoder, mlm, report) = load_pretrained(dir, &config, true, 0, &Device::flex())?;
    assert!(!report.mlm_head_initialised, "{}: the MLM head was not read", dir.display());
    assert!(report.unexpected.is_empty(), "{}: unexpected {:?}", dir.display(), report.unexpected);
    let mlm = mlm.expect("asked for the MLM head");
    Ok((hf_tensors(&encoder, "", None), hf_tensors(&mlm, "", Some(config.family))))
}

fn load_error(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn pickled_checkpoints_load_exactly_as_their_safetensors_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = load(&model_dir(tmp.path(), "twin", &[("model.safetensors", "model.safetensors")])).unwrap();
    // The twin mixes float16, bfloat16 and float32, so a wrong conversion cannot hide.
    assert!(twin.0.iter().all(|(k, _, v)| v.iter().any(|x| *x != 0.0 && *x != 1.0) || k.contains("token_type")));

    let single = model_dir(tmp.path(), "single", &[("pytorch_model.bin", "pytorch_model.bin")]);
    let sharded = model_dir(
        tmp.path(),
        "sharded",
        &[
            ("pytorch_model.bin.index.json", "pytorch_model.bin.index.json"),
            ("pytorch_model-00001-of-00002.bin", "pytorch_model-00001-of-00002.bin"),
            ("pytorch_model-00002-of-00002.bin", "pytorch_model-00002-of-00002.bin"),
        ],
    );
    // SciBERT-style: the pre-1.6 container, float32, `gamma`/`beta`, pooler and NSP head.
    let legacy = model_dir(tmp.path(), "legacy", &[("legacy.bin", "pytorch_model.bin")]);
    for dir in [&single, &sharded, &legacy] {
        let loaded = load(dir).unwrap();
        assert!(loaded == twin, "{} differs from model.safetensors", dir.display());
    }

    let config = ModelConfig::from_file(&legacy.join("config.json")).unwrap();
    let head = ClassificationHead::new(config.hidden_size, 3, 0.0, 0, &Device::flex());
    let (_, from_pooler) = init_head_from_pooler(&legacy, config.family, head).unwrap();
    assert!(from_pooler, "the legacy checkpoint's pooler was not found");
}

#[test]
fn hostile_pickles_are_refused_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("hostile-zip.bin", "`posix.system` at `_metadata..hook`"),
        ("hostile-legacy.bin", "`posix.system` at `payload`"),
        ("hostile-plain.bin", "`__builtin__.exec` at `the root`"),
    ];
    for (name, found) in cases {
        let dir = model_dir(tmp.path(), name, &[(name, "pytorch_model.bin")]);
        let err = load_error(&dir);
        let file = dir.join("pytorch_model.bin").display().to_string();
        assert!(err.contains(&format!("{file} refused")) && err.contains(found), "{err}");
        assert!(err.contains("tartan ran nothing") && err.contains("save_pretrained(DIR)"), "{err}");

        // A hostile shard is refused like a single file.
        let index = serde_json::json!({"weight_map": {"bert.embeddings.word_embeddings.weight": name}});
        let sharded = model_dir(tmp.path(), &format!("{name}-sharded"), &[(name, name)]);
        std::fs::write(sharded.join("pytorch_model.bin.index.json"), index.to_string()).unwrap();
        let err = load_error(&sharded);
        assert!(err.contains(&format!("{} refused", sharded.join(name).display())) && err.contains(found), "{err}");

        for place in [Path::new("."), &dir, &sharded] {
            assert!(!place.join(MARKER).exists(), "{name} ran its payload in {}", place.display());
        }
    }
}

#[test]
fn forged_tensors_oversized_views_and_non_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // {"w": torch.Tensor()}: called by name rather than rebuilt from a storage, so it holds no
    // data the reader could read and only Python would construct it.
    let forged: &[u8] = b"\x80\x02}X\x01\x00\x00\x00wctorch\nTensor\n)Rs.";
    let dir = model_dir(tmp.path(), "forged", &[]);
    std::fs::write(dir.join("pytorch_model.bin"), forged).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("refused") && err.contains("`torch.Tensor` at `w`"), "{err}");

    // 256 MiB of one repeated float in a 2 KiB file: refused before anything is allocated.
    let broadcast = model_dir(tmp.path(), "broadcast", &[("broadcast.bin", "pytorch_model.bin")]);
    let err = load_error(&broadcast);
    assert!(err.contains("claim more than twice the file's") && err.contains("[67108864]"), "{err}");

    let junk = model_dir(tmp.path(), "junk", &[("config.json", "pytorch_model.bin")]);
    let err = load_error(&junk);
    let file = junk.join("pytorch_model.bin").display().to_string();
    assert!(err.contains(&format!("{file} is not a PyTorch checkpoint tartan can read")), "{err}");
}

#[test]
fn safetensors_are_preferred_then_single_files() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = load(&model_dir(tmp.path(), "twin", &[("model.safetensors", "model.safetensors")])).unwrap();
    // Were the pickle read, it would be refused, so loading at all shows it was not.
    let both = model_dir(
        tmp.path(),
        "both",
        &[("model.safetensors", "model.safetensors"), ("hostile-zip.bin", "pytorch_model.bin")],
    );
    assert!(load(&both).unwrap() == twin);
    let bin_and_index = model_dir(
        tmp.path(),
        "bin-and-index",
        &[("pytorch_model.bin", "pytorch_model.bin"), ("hostile-zip.bin", "pytorch_model-00001-of-00002.bin")],
    );
    let index = serde_json::json!({"weight_map": {"bert.embeddings.word_embeddings.weight": "pytorch_model-00001-of-00002.bin"}});
    std::fs::write(bin_and_index.join("pytorch_model.bin.index.json"), index.to_string()).unwrap();
    assert!(load(&bin_and_index).unwrap() == twin);
}

#[test]
fn a_hub_snapshot_with_only_a_pickle_resolves_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--allenai--tiny-scibert");
    let snapshot = model_dir(&repo.join("snapshots"), "0123abcd", &[("legacy.bin", "pytorch_model.bin")]);
    std::fs::write(snapshot.join("tokenizer.json"), "{}").unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
    let dir = hub::resolve_in("allenai/tiny-scibert", &cache, true).unwrap();
    assert_eq!(dir, snapshot);
    load(&dir).unwrap();
}

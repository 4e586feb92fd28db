//! Bad input gets an error that names the file, the line or the key, and the fix.

use std::path::Path;
use std::time::Duration;

use crate::common::bin::{failure, run_within, stderr, success, tartan, train};
use crate::common::tiny::{TinySetup, tiny_config, tiny_sets, tiny_setup};
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
            .and_then(|p| p.load(false, 0, &burn::tensor::Device::flex()).map(|_| ()))
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

/// Every `tartan bench` workload that computes computes where `--device` says: `meta` once ran
/// on the CPU while its report said cuda. Without the `cuda` feature each must refuse cuda.
#[cfg(not(feature = "cuda"))]
#[test]
fn every_bench_workload_uses_the_device_asked_for() {
    let setup = tiny_setup(24);
    std::fs::copy(setup.path("related.txt"), setup.path("train.txt")).unwrap();
    let (model, task) = (setup.model.display().to_string(), setup.dir.path().display().to_string());
    for workload in ["step", "forward", "parity", "epoch", "eval", "meta"] {
        let out = tartan(&["bench", workload, "--smoke", "--device", "cuda", "--model", &model, "--task", &task]);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains("built without CUDA support"), "{workload}: {err}");
    }
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

// Through the binary: a clean error (exit 1, or 2 for a bad flag) that names the key, file or
// flag, never a panic, a hang or a silently wrong run.

fn aux_set(file: &Path) -> String {
    format!("aux=[{{name = \"odd\", file = \"{}\"}}]", file.display())
}

/// A finished 2-step run of the tiny setup, for commands that need a saved model.
fn trained_run(setup: &TinySetup) -> std::path::PathBuf {
    let run = setup.path("trained");
    success(&train(&tiny_sets(setup, &run, &["train.max_steps=2", "eval.every_steps=2"]), &[]));
    run
}

#[test]
fn numeric_settings_are_checked_before_anything_runs() {
    let setup = tiny_setup(23);
    let meta = ["strategy=\"meta-tartan\"", &aux_set(&setup.path("related.txt"))].map(String::from);
    let cases: [(&str, &str); 10] = [
        ("meta.lr=inf", "meta.lr must be a number of at least 0, got inf"),
        ("meta.lr=nan", "meta.lr must be a number of at least 0, got NaN"),
        ("meta.lr=-0.1", "meta.lr must be a number of at least 0, got -0.1"),
        ("task.weight=-0.5", "task.weight must be a number of at least 0"),
        ("train.beta1=1.0", "train.beta1 must be in [0, 1), got 1"),
        ("train.beta2=1.5", "train.beta2 must be in [0, 1), got 1.5"),
        ("train.beta2=1.0", "train.beta2 must be in [0, 1), got 1"),
        ("train.eps=0.0", "train.eps must be a positive number, got 0"),
        ("train.eps=-1e-8", "train.eps must be a positive number"),
        ("train.lr=inf", "train.lr must be a positive number, got inf"),
    ];
    for (set, expected) in cases {
        let run = setup.path("run");
        let mut extra: Vec<&str> = meta.iter().map(String::as_str).collect();
        extra.extend(["train.max_steps=3", set]);
        let err = failure(&train(&tiny_sets(&setup, &run, &extra), &[]));
        assert!(err.contains(expected), "{set}: expected `{expected}` in {err}");
        assert!(!run.join("metrics.jsonl").exists(), "{set}: the run started");
    }
}

#[test]
fn zero_sizes_on_the_command_line_are_refused() {
    let setup = tiny_setup(24);
    let best = trained_run(&setup).join("best");
    let (best, data) = (best.to_str().unwrap(), setup.path("test.jsonl"));
    let data = data.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &["eval", "--model", best, "--data", data, "--batch-size", "0"],
        &["predict", "--model", best, "--input", data, "--batch-size", "0"],
        &["bench", "forward", "--smoke", "--reps", "0"],
        &["bench", "meta", "--smoke", "--aux", "0"],
        &["demo", "--model", best, "--task", data, "--steps", "0"],
    ];
    for args in cases {
        let out = tartan(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("must be at least 1"), "{args:?}: {err}");
    }
    success(&tartan(&["eval", "--model", best, "--data", data, "--batch-size", "1"]));
}

#[test]
fn a_holdout_as_large_as_the_training_set_is_an_error() {
    let setup = tiny_setup(25);
    let extra = [
        "strategy=\"meta-tartan\"",
        "meta.source=\"train-holdout\"",
        "meta.holdout=400",
        "train.max_steps=3",
        &aux_set(&setup.path("related.txt")),
    ];
    let err = failure(&train(&tiny_sets(&setup, &setup.path("run"), &extra), &[]));
    assert!(err.contains("meta.holdout = 400 would hold out all 400 training examples"), "{err}");
}

/// A FIFO would block the open and /dev/zero never ends: both must be refused at once, as
/// must a folder; an end-task file too large to read into memory is refused unread.
#[test]
fn data_and_corpora_must_be_regular_files_of_a_sane_size() {
    let setup = tiny_setup(26);
    let fifo = setup.path("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let folder = setup.path("folder");
    std::fs::create_dir_all(&folder).unwrap();
    let huge = setup.path("huge.jsonl");
    std::fs::File::create(&huge).unwrap().set_len(5 << 30).unwrap();
    let zero = Path::new("/dev/zero");
    let aux_case = |file: &Path| vec!["strategy=\"mt-tartan\"".to_string(), aux_set(file)];
    let train_case = |file: &Path| vec![format!("task.train={}", file.display())];
    let cases: [(Vec<String>, String); 6] = [
        (
            aux_case(&fifo),
            format!("auxiliary corpus `odd`: {} is a FIFO (named pipe), not a regular file", fifo.display()),
        ),
        (aux_case(zero), "auxiliary corpus `odd`: /dev/zero is a character device, not a regular file".into()),
        (aux_case(&folder), format!("auxiliary corpus `odd`: {} is a folder, not a regular file", folder.display())),
        (train_case(&fifo), format!("{} is a FIFO (named pipe), not a regular file", fifo.display())),
        (train_case(&folder), format!("{} is a folder, not a regular file", folder.display())),
        (train_case(&huge), format!("{} is 5.0 GiB, more than the 4.0 GiB allowed", huge.display())),
    ];
    for (i, (extra, expected)) in cases.into_iter().enumerate() {
        let mut all = vec!["train.max_steps=3".to_string()];
        all.extend(extra);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let args = crate::common::bin::train_args(&tiny_sets(&setup, &setup.path(&format!("run{i}")), &refs), &[]);
        let command = crate::common::bin::command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = failure(&run_within(command, Duration::from_secs(60)));
        assert!(err.contains(&expected), "expected `{expected}` in {err}");
    }
}

#[test]
fn a_corpus_without_a_maskable_token_is_an_error_naming_it() {
    let setup = tiny_setup(27);
    let emoji = setup.path("emoji.txt");
    std::fs::write(&emoji, "😀 🎉\n🙂\n\n🙃 🙃 🙃\n").unwrap();
    let extra = ["strategy=\"mt-tartan\"", "train.max_steps=3", &aux_set(&emoji)];
    let err = failure(&train(&tiny_sets(&setup, &setup.path("run"), &extra), &[]));
    let expected = format!("auxiliary corpus `odd` ({}) has no line with a token to mask", emoji.display());
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn report_into_an_existing_file_names_it() {
    let setup = tiny_setup(28);
    let run = trained_run(&setup);
    let file = setup.path("report.md");
    std::fs::write(&file, "mine").unwrap();
    let err = failure(&tartan(&["report", run.to_str().unwrap(), "--output", file.to_str().unwrap()]));
    assert!(err.contains(&format!("{} is a file", file.display())), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn boolean_labels_are_accepted_and_the_message_says_so() {
    let setup = tiny_setup(29);
    let data = setup.path("bool.jsonl");
    let rows: String = (0..40)
        .map(|i| format!("{{\"text\": \"amber{} basil{}\", \"label\": {}}}\n", i % 16, i % 7, i % 2 == 0))
        .collect();
    std::fs::write(&data, &rows).unwrap();
    let files = [format!("task.train={}", data.display()), format!("task.dev={}", data.display())];
    let extra = [files[0].as_str(), files[1].as_str(), "train.max_steps=2"];
    let sets = |run: &str| {
        let mut sets = tiny_sets(&setup, &setup.path(run), &extra);
        sets.retain(|s| !s.starts_with("task.test"));
        sets
    };
    success(&train(&sets("run"), &[]));
    let labels = std::fs::read_to_string(setup.path("run/best/tartan.json")).unwrap();
    assert!(labels.contains("\"false\"") && labels.contains("\"true\""), "{labels}");

    std::fs::write(&data, rows + "{\"text\": \"amber1\", \"label\": null}\n").unwrap();
    let err = failure(&train(&sets("again"), &[]));
    assert!(err.contains("bool.jsonl:41: `label` must be a string, a number or a boolean, got `null`"), "{err}");
}

/// A run that diverges before its first checkpoint must not claim one is kept.
#[test]
fn a_run_diverging_before_its_first_checkpoint_says_none_was_saved() {
    let setup = tiny_setup(30);
    let run = setup.path("run");
    let extra = [
        "train.max_steps=40",
        "eval.every_steps=25",
        "train.clip_norm=0",
        "train.lr=1e30",
        "train.head_lr=1e30",
        "train.warmup_ratio=0",
    ];
    let err = failure(&train(&tiny_sets(&setup, &run, &extra), &[]));
    assert!(err.contains("non-finite") && err.contains("no checkpoint was saved"), "{err}");
    assert!(!err.contains("checkpoint is kept") && !err.contains("train.lr"), "{err}");
    assert!(crate::common::latest_checkpoint(&run).is_none());
}

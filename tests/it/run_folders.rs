//! A run folder has one writer and one setup, through the real binary: a second process is
//! refused, `--resume DIR` trains in DIR wherever it was copied, a resume with another model,
//! strategy or label set is refused, and `train` does not write over a run unless told to.

use std::path::Path;
use std::time::Duration;

use crate::common::bin::{
    checkpoint_step, command, copy_tree, failure, logged_steps, run_within, signal, spawn, success, train, train_args,
    wait_for,
};
use crate::common::tiny::{TinySetup, tiny_sets, tiny_setup};
use tartan::data::synthetic::{vocabulary, word_level_tokenizer};
use tartan::model::{Bert, MlmHead, ModelConfig};
use tartan::train::saved_model::save_pretrained;

fn sets(setup: &TinySetup, run: &Path, extra: &[&str]) -> Vec<String> {
    tiny_sets(setup, run, extra)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_second_process_on_a_run_folder_is_refused_with_the_holders_pid_and_the_first_is_untouched() {
    let setup = tiny_setup(61);
    let run = setup.path("run");
    let first_sets = sets(&setup, &run, &["train.max_steps=100000", "train.log_every=1", "seed=1"]);
    let first_args = train_args(&first_sets, &[]);
    let first = spawn(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("5 steps", Duration::from_secs(120), || logged_steps(&run).len() >= 5);

    let holder = format!("pid {}", first.id());
    let second = train(&sets(&setup, &run, &["train.max_steps=30", "train.log_every=1", "seed=2"]), &[]);
    let err = failure(&second);
    assert!(err.contains("is in use by another tartan process") && err.contains(&holder), "{err}");
    let resume = train(&[], &["--resume", run.to_str().unwrap()]);
    let err = failure(&resume);
    assert!(err.contains(&holder), "{err}");

    signal(&first, libc::SIGINT);
    let out = first.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted at step"));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("seed = 1\n"), "the saved config is not the first run's:\n{config}");
    let steps = logged_steps(&run);
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "step lines of two runs are mixed");
    assert_eq!(checkpoint_step(&run), steps.len());
}

/// A run trained with relative paths from one folder, then copied: `--resume COPY` from
/// another working directory trains in the copy and leaves the original as it was.
#[test]
fn resume_trains_in_the_given_folder_wherever_it_was_copied_from() {
    let setup = tiny_setup(62);
    let relative: Vec<String> = [
        "model.name=model",
        "model.max_length=32",
        "task.train=train.jsonl",
        "task.dev=dev.jsonl",
        "output_dir=runs/original",
        "train.batch_size=16",
        "train.max_steps=20",
        "eval.every_steps=10",
        "eval.batch_size=100",
        "eval.test=false",
    ]
    .map(String::from)
    .to_vec();
    let mut first = command(&train_args(&relative, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    first.current_dir(setup.dir.path());
    success(&run_within(first, Duration::from_secs(120)));
    let original = setup.path("runs/original");
    let results = read(&original.join("results.json"));

    let copy = setup.path("elsewhere/copy");
    copy_tree(&original, &copy);
    let elsewhere = tempfile::tempdir().unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", copy.to_str().unwrap()];
        args.extend(extra);
        let mut c = command(&args);
        c.current_dir(elsewhere.path());
        run_within(c, Duration::from_secs(120))
    };
    success(&resume(&["--set", "train.max_steps=30"]));

    assert_eq!(checkpoint_step(&copy), 30);
    assert_eq!(logged_steps(&copy).last(), Some(&30));
    assert_eq!(checkpoint_step(&original), 20, "the original's checkpoint changed");
    assert_eq!(read(&original.join("results.json")), results, "the original's results.json changed");
    assert!(!elsewhere.path().join("runs").exists(), "a run folder was made in the working directory");
    let err = failure(&resume(&["--set", "output_dir=other"]));
    assert!(err.contains("--resume") && err.contains("output_dir cannot be set"), "{err}");
}

/// A 3-layer model with the tiny setup's tokenizer.
fn deeper_model(setup: &TinySetup) -> std::path::PathBuf {
    let tokenizer = word_level_tokenizer(&vocabulary()).unwrap();
    let config = ModelConfig::tiny_bert(tokenizer.vocab_size(), 32, 3, 4, 64);
    let device = burn::tensor::Device::flex();
    let dir = setup.path("deeper");
    save_pretrained(
        &dir,
        &Bert::new(&config, 0, &device),
        Some(&MlmHead::new(&config, 0, &device)),
        &config,
        &tokenizer,
        None,
    )
    .unwrap();
    dir
}

#[test]
fn resume_refuses_a_changed_model_strategy_precision_label_set_or_corpus_and_says_what_changed() {
    let setup = tiny_setup(63);
    let run = setup.path("run");
    let aux = |file: &str| format!("aux=[{{name = \"related\", file = \"{}\"}}]", setup.path(file).display());
    let base = ["train.max_steps=6", "eval.every_steps=3", "strategy=\"mt-tartan\"", &aux("related.txt")];
    success(&train(&sets(&setup, &run, &base), &[]));
    let before = (read(&run.join("metrics.jsonl")), read(&run.join("results.json")));

    let more_labels = setup.path("more-labels.jsonl");
    let mut text = std::fs::read_to_string(setup.path("train.jsonl")).unwrap();
    text += "{\"text\": \"amber1 basil1\", \"label\": \"mixed\"}\n";
    std::fs::write(&more_labels, text).unwrap();
    std::fs::write(setup.path("other.txt"), "amber1 amber2 amber3\nbasil1 basil2\n").unwrap();
    let deeper = deeper_model(&setup);
    let cases: [(String, &str); 6] = [
        ("strategy=\"meta-tartan\"".into(), "strategy: mt-tartan -> meta-tartan"),
        ("train.precision=\"bf16\"".into(), "train.precision: f32 -> bf16"),
        (format!("task.train={}", more_labels.display()), "labels:"),
        (format!("model.name={}", deeper.display()), "num_hidden_layers 2 -> 3"),
        (aux("other.txt"), "corpus `related`: its text changed"),
        (
            format!(
                "aux=[{{name = \"related\", file = \"{}\"}}, {{name = \"noise\", file = \"{}\"}}]",
                setup.path("related.txt").display(),
                setup.path("noise.txt").display()
            ),
            "corpora: related -> related, noise",
        ),
    ];
    for (set, expected) in cases {
        let args = ["--resume", run.to_str().unwrap(), "--set", &set, "--set", "train.max_steps=9"];
        let err = failure(&train(&[], &args));
        assert!(err.contains(expected) && err.contains("fingerprint.json"), "{set}: expected `{expected}` in {err}");
        let after = (read(&run.join("metrics.jsonl")), read(&run.join("results.json")));
        assert!(after == before, "{set}: the refused resume changed the run");
    }
    // The same setup resumes.
    success(&train(&[], &["--resume", run.to_str().unwrap(), "--set", "train.max_steps=9"]));
    assert_eq!(checkpoint_step(&run), 9);
}

#[test]
fn train_refuses_a_folder_holding_a_run_unless_told_to_resume_or_overwrite() {
    let setup = tiny_setup(64);
    let run = setup.path("run");
    let run_sets = sets(&setup, &run, &["train.max_steps=6", "eval.every_steps=3", "train.log_every=1"]);
    success(&train(&run_sets, &[]));
    let finished = (read(&run.join("metrics.jsonl")), read(&run.join("results.json")));

    let err = failure(&train(&run_sets, &[]));
    assert!(err.contains("holds a finished run") && err.contains("--overwrite"), "{err}");
    assert!((read(&run.join("metrics.jsonl")), read(&run.join("results.json"))) == finished, "the run was changed");

    let unfinished = setup.path("unfinished");
    copy_tree(&run, &unfinished);
    std::fs::remove_file(unfinished.join("results.json")).unwrap();
    let err = failure(&train(&sets(&setup, &unfinished, &["train.max_steps=6"]), &[]));
    assert!(err.contains("holds an unfinished run") && err.contains("--resume"), "{err}");

    // --overwrite starts afresh and removes only what tartan wrote.
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(run.join("mine/checkpoint-1")).unwrap();
    success(&train(&run_sets, &["--overwrite"]));
    assert_eq!(logged_steps(&run), (1..=6).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(run.join("notes.txt")).unwrap(), "mine");
    assert!(run.join("mine/checkpoint-1").is_dir());

    let out = train(&run_sets, &["--overwrite", "--resume", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "--overwrite with --resume is a usage error");
}

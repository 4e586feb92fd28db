//! Replays the fuzz seeds and every input that once crashed a fuzz target
//! (`fuzz/regressions/<target>/`), through the same checks as the fuzzer (`fuzz/checks.rs`).

#[path = "../../fuzz/checks.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|f| f.to_string_lossy().starts_with('.')) {
                continue;
            }
            eprintln!("{}", path.display());
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no inputs for fuzz target {target}");
}

#[test]
fn jsonl_inputs() {
    replay("jsonl", checks::jsonl);
}

#[test]
fn run_config_inputs() {
    replay("run_config", checks::run_config);
}

#[test]
fn model_files_inputs() {
    replay("model_files", checks::model_files);
}

#[test]
fn pickle_file_inputs() {
    replay("pickle_file", checks::pickle_file);
}

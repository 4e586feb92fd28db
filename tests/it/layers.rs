//! The layering of docs/ARCHITECTURE.md holds: no module imports one of a higher layer, and
//! the modules of one layer do not import each other (`config` sits with `train`).

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of `src/` and its layer, bottom (0) to top.
const LAYERS: &[(&str, usize)] = &[
    ("device", 0),
    ("fsutil", 0),
    ("loss", 0),
    ("optim", 0),
    ("params", 0),
    ("plot", 0),
    ("runlock", 0),
    ("simd", 0),
    ("validate", 0),
    ("data", 1),
    ("model", 1),
    ("objectives", 2),
    ("weighting", 2),
    ("train", 3),
    ("config", 3),
    ("report", 4),
    ("cli", 5),
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_upward_or_across_its_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(own) = layer(&module) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let used: String = text[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            let Some(theirs) = layer(&used) else { continue };
            let same_pair = matches!((module.as_str(), used.as_str()), ("train", "config") | ("config", "train"));
            let across = theirs == own && used != module && own > 0 && !same_pair;
            if theirs > own || across {
                violations.insert(format!("{} ({module}, layer {own}) uses {used} (layer {theirs})", rel.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// A module missing from the table would escape the check.
#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string();
        if name != "lib" && name != "main" {
            assert!(layer(&name).is_some(), "src/{name} has no layer in tests/it/layers.rs and docs/ARCHITECTURE.md");
        }
    }
}

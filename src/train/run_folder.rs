//! What in a run folder is tartan's: whether a folder already holds a run (so that a new one
//! does not write over it), and clearing a run for `--overwrite` without touching anything
//! else that lives there.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Files a run (or one of its phases) writes, also as `<name>.tmp` while being replaced.
const FILES: [&str; 10] = [
    "config.toml",
    "fingerprint.json",
    "metrics.jsonl",
    "results.json",
    "losses.png",
    "losses.svg",
    "weights.png",
    "weights.svg",
    "mlm-warmup.png",
    "mlm-warmup.svg",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// `results.json` is there.
    Finished,
    Unfinished,
}

/// Whether `dir` holds a run: finished (it has `results.json`) or not.
pub fn held_run(dir: &Path) -> Result<Option<Held>> {
    if dir.join("results.json").is_file() {
        return Ok(Some(Held::Finished));
    }
    Ok((!tartans_entries(dir, false)?.is_empty()).then_some(Held::Unfinished))
}

/// Refuses to start a new run in a folder that holds one.
pub fn refuse_held_run(dir: &Path) -> Result<()> {
    let d = dir.display();
    match held_run(dir)? {
        None => Ok(()),
        Some(Held::Finished) => bail!(
            "{d} holds a finished run (results.json), which a new run would overwrite. Give another output_dir, \
             `--overwrite` to discard it, or `--resume {d}` with a larger train.max_steps to extend it"
        ),
        Some(Held::Unfinished) => bail!(
            "{d} holds an unfinished run, which a new run would overwrite. Continue it with `tartan train --resume {d}`, \
             give another output_dir, or `--overwrite` to discard it"
        ),
    }
}

/// Removes the run in `dir`: tartan's files and folders there and in its phases' folders.
/// Anything else (your files, the corpus cache, the lock) stays.
pub fn clear_run(dir: &Path) -> Result<()> {
    for (path, kind) in tartans_entries(dir, false)? {
        let removed = match kind {
            Entry::File => std::fs::remove_file(&path),
            Entry::Folder => std::fs::remove_dir_all(&path),
            Entry::Phase => {
                clear_phase(&path)?;
                Ok(())
            }
        };
        removed.with_context(|| format!("cannot remove {} (--overwrite)", path.display()))?;
    }
    Ok(())
}

fn clear_phase(dir: &Path) -> Result<()> {
    for (path, kind) in tartans_entries(dir, true)? {
        match kind {
            Entry::File => std::fs::remove_file(&path),
            Entry::Folder | Entry::Phase => std::fs::remove_dir_all(&path),
        }
        .with_context(|| format!("cannot remove {} (--overwrite)", path.display()))?;
    }
    // Left in place if something that is not tartan's is inside.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File,
    /// Written whole by tartan (`best/`, `checkpoint-<step>/`, a phase's `model/`).
    Folder,
    /// A phase's own run folder (`pretrain-<corpus>/`, `final-finetune/`).
    Phase,
}

/// The entries of `dir` that tartan wrote; `phase` for a phase's folder, which also holds
/// the phase's `model/`.
fn tartans_entries(dir: &Path, phase: bool) -> Result<Vec<(std::path::PathBuf, Entry)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_dir = entry.file_type().with_context(|| format!("cannot list {}", dir.display()))?.is_dir();
        if let Some(kind) = classify(&name, is_dir, phase, &entry.path()) {
            out.push((entry.path(), kind));
        }
    }
    Ok(out)
}

fn classify(name: &str, is_dir: bool, phase: bool, path: &Path) -> Option<Entry> {
    let base = [".tmp", ".old", ".staged"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
    let checkpoint =
        base.strip_prefix("checkpoint-").is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match (is_dir, base) {
        (false, f) if FILES.contains(&f) => Some(Entry::File),
        (true, "best") => Some(Entry::Folder),
        (true, "model") if phase => Some(Entry::Folder),
        (true, _) if checkpoint => Some(Entry::Folder),
        (true, p)
            if !phase
                && (p.starts_with("pretrain-") || p == "final-finetune")
                && path.join("config.toml").is_file() =>
        {
            Some(Entry::Phase)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_removes_only_what_tartan_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(held_run(d).unwrap(), None);
        for f in ["config.toml", "metrics.jsonl", "metrics.jsonl.tmp", "losses.png", "notes.txt", ".lock"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        for folder in
            ["best", "checkpoint-20", "checkpoint-30.staged", "checkpoint-x", "model", "cache", "pretrain-tapt/model"]
        {
            std::fs::create_dir_all(d.join(folder)).unwrap();
        }
        std::fs::write(d.join("pretrain-tapt/config.toml"), "x").unwrap();
        std::fs::write(d.join("pretrain-tapt/mine.txt"), "x").unwrap();
        std::fs::create_dir_all(d.join("pretrain-notes")).unwrap();
        assert_eq!(held_run(d).unwrap(), Some(Held::Unfinished));
        clear_run(d).unwrap();
        let mut left: Vec<String> = walk(d);
        left.sort();
        assert_eq!(
            left,
            [
                ".lock",
                "cache",
                "checkpoint-x",
                "model",
                "notes.txt",
                "pretrain-notes",
                "pretrain-tapt",
                "pretrain-tapt/mine.txt"
            ]
        );
        assert_eq!(held_run(d).unwrap(), None);
        std::fs::write(d.join("results.json"), "{}").unwrap();
        assert_eq!(held_run(d).unwrap(), Some(Held::Finished));
    }

    fn walk(d: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() {
                out.extend(walk(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
            }
            out.push(name);
        }
        out
    }
}

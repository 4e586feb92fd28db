//! Writing files and folders so that a crash or a full disk never leaves a half-written one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, "tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {} (is the disk full?); the previous version is kept", path.display()))
}

/// Replaces the folder `dest` by `staged` (a complete folder beside it): `dest` moves aside to
/// `dest.old`, `staged` takes its name, the old one is removed. At every moment one complete
/// folder exists under `dest` or `dest.old`; `recover_dir` puts it back after a crash.
pub fn replace_dir(staged: &Path, dest: &Path) -> Result<()> {
    let old = sibling(dest, "old");
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    if dest.exists() {
        fs::rename(dest, &old).with_context(|| format!("cannot move {} aside", dest.display()))?;
    }
    fs::rename(staged, dest).with_context(|| format!("cannot rename {} to {}", staged.display(), dest.display()))?;
    sync_dir(dest)?;
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}

/// After a crash inside `replace_dir`, restores `dest` from `dest.old` and drops staged leftovers.
pub fn recover_dir(dest: &Path) -> Result<()> {
    let old = sibling(dest, "old");
    if !dest.exists() && old.exists() {
        fs::rename(&old, dest).with_context(|| format!("cannot restore {}", dest.display()))?;
    }
    let staged = sibling(dest, "staged");
    if staged.exists() {
        fs::remove_dir_all(&staged)?;
    }
    Ok(())
}

/// A fresh, empty staging folder for a later `replace_dir(staged, dest)`.
pub fn staging_dir(dest: &Path) -> Result<PathBuf> {
    let staged = sibling(dest, "staged");
    if staged.exists() {
        fs::remove_dir_all(&staged)?;
    }
    fs::create_dir_all(&staged).with_context(|| format!("cannot create {}", staged.display()))?;
    Ok(staged)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("best");
        for round in 0..2 {
            let staged = staging_dir(&dest).unwrap();
            write_atomic(&staged.join("x"), format!("{round}").as_bytes()).unwrap();
            replace_dir(&staged, &dest).unwrap();
            assert_eq!(fs::read_to_string(dest.join("x")).unwrap(), format!("{round}"));
        }
        // A crash between the two renames leaves only best.old: recovery restores it.
        fs::rename(&dest, dir.path().join("best.old")).unwrap();
        recover_dir(&dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("x")).unwrap(), "1");
    }
}

//! Writing files and folders so that a crash or a full disk never leaves a half-written one;
//! opening input files so that a FIFO, a device or a huge file is an error, not a hang.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Opens `path` for reading if it is a regular file of at most `max_bytes`. A FIFO, a device,
/// a socket or a folder is refused at once: the open itself does not wait (`O_NONBLOCK`, which
/// a FIFO without a writer would otherwise block on) and the type is checked on the opened
/// file, so nothing is read from a stream that may never end (`/dev/zero`). `kind` names the
/// input in the size error (`end-task data`).
pub fn open_regular(path: &Path, max_bytes: u64, kind: &str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot inspect {}", path.display()))?;
    let t = meta.file_type();
    let what = if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        ""
    };
    if !what.is_empty() {
        bail!("{} is {what}, not a regular file; give a regular file for {kind}", path.display());
    }
    if meta.len() > max_bytes {
        bail!(
            "{} is {}, more than the {} allowed for {kind}; is it the right file?",
            path.display(),
            gib(meta.len()),
            gib(max_bytes)
        );
    }
    Ok(file)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// SHA-256 of everything `reader` yields, in hex as `sha256sum` prints it.
pub fn sha256_hex(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

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
    fn only_regular_files_within_the_limit_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        fs::write(&file, "abc").unwrap();
        assert!(open_regular(&file, 3, "test").is_ok());
        let err = open_regular(&file, 2, "test data").unwrap_err().to_string();
        assert!(err.contains("is 0.0 GiB, more than the 0.0 GiB allowed for test data"), "{err}");
        let err = open_regular(dir.path(), 3, "test").unwrap_err().to_string();
        assert!(err.contains("is a folder, not a regular file"), "{err}");
        let err = open_regular(Path::new("/dev/zero"), 3, "test").unwrap_err().to_string();
        assert!(err.contains("/dev/zero is a character device"), "{err}");
        assert_eq!(
            sha256_hex(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

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

//! One writer per run folder: an advisory lock (`flock`) on `<run>/.lock`, held for the life of
//! the process. The file names its holder (PID, host, start time) so that a refusal says who
//! holds it; the kernel drops the lock when the holder dies, however it dies, so a lock left
//! by a killed process is noticed (its text is still there) and taken over with a note.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Held while a process writes a run folder; released (and its text cleared) on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// The run folder is being written by another process.
#[derive(Debug)]
pub struct RunFolderInUse {
    pub dir: PathBuf,
    pub holder: String,
}

impl std::fmt::Display for RunFolderInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is in use by another tartan process ({}); one process writes a run folder. Wait for it to finish, or stop it (Ctrl-C saves a checkpoint) and resume",
            self.dir.display(),
            if self.holder.is_empty() { "holder unknown" } else { self.holder.trim() }
        )
    }
}

impl std::error::Error for RunFolderInUse {}

impl RunLock {
    /// Takes the lock of `dir` (created if missing), or fails with [`RunFolderInUse`].
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create run folder {}", dir.display()))?;
        let path = dir.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        // SAFETY: flock on a file descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(RunFolderInUse { dir: dir.to_path_buf(), holder }.into());
            }
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        if !previous.trim().is_empty() {
            tracing::warn!(
                "{} was left locked by a process that ended without releasing it ({}); taking it over",
                dir.display(),
                previous.trim()
            );
        }
        let holder = format!(
            "pid {} on host {}, since {}\n",
            std::process::id(),
            hostname(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        );
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(holder.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { file, path })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty lock file means "released cleanly"; the kernel releases the flock itself.
        if self.file.set_len(0).is_err() {
            tracing::warn!("could not clear {}", self.path.display());
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_ones_pid_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        let in_use = err.downcast_ref::<RunFolderInUse>().expect("typed error");
        assert!(in_use.holder.contains(&format!("pid {}", std::process::id())), "{}", in_use.holder);
        assert!(err.to_string().contains("is in use by another tartan process"), "{err}");
        drop(first);
        assert_eq!(std::fs::read_to_string(dir.path().join(".lock")).unwrap(), "");
        RunLock::acquire(dir.path()).unwrap();
    }
}

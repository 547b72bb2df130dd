//! Paths a command is writing (staging directories, temporary files), removed if the process is
//! stopped by a signal before they are renamed into place: a binary's signal handler calls
//! [`remove_all`] before it exits. Each path is registered while it exists ([`Pending`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path being written; unregistered when dropped (the owner has renamed or removed it).
#[derive(Debug)]
pub struct Pending(PathBuf);

impl Pending {
    /// Registers `path` (a file or a directory, existing now or soon).
    pub fn new(path: &Path) -> Self {
        pending().push(path.to_path_buf());
        Pending(path.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut list = pending();
        if let Some(i) = list.iter().rposition(|p| *p == self.0) {
            list.swap_remove(i);
        }
    }
}

/// Removes every registered path (best effort); for a signal handler about to exit.
pub fn remove_all() {
    for path in pending().drain(..) {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether the process `pid` is gone (so that its leftovers can be removed). Unknown (not Unix,
/// or no permission to ask) counts as alive.
pub fn process_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        !alive && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_removed_until_dropped() {
        let dir = std::env::temp_dir().join(format!("chronos2-cleanup-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let kept = dir.join("kept");
        std::fs::write(&kept, b"x").unwrap();
        let done = Pending::new(&kept);
        drop(done); // renamed into place: no longer ours to remove
        let _pending = Pending::new(&dir.join("sub"));
        remove_all();
        assert!(!dir.join("sub").exists() && kept.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_is_alive() {
        assert!(!process_gone(std::process::id()));
    }
}

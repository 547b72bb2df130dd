//! Ctrl-C (SIGINT) and SIGTERM: the outputs being written (staging directories, temporary files,
//! registered with `chronos2_core::cleanup`) are removed before the process exits with
//! 128 + the signal number, so an interrupted command leaves nothing behind.

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started after it) and starts
/// a thread that waits for them. Call first in `main`, before any other thread exists.
#[cfg(unix)]
pub fn install() {
    // SAFETY: `sigemptyset` / `sigaddset` initialise and fill a local set; `pthread_sigmask` changes
    // only the calling thread's mask (threads spawned afterwards inherit it), with a valid set and
    // a null old-set pointer, which it accepts.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set blocked in every thread, and `signal` a
        // valid place for the number of the signal taken.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return;
        }
        chronos2::chronos2_core::cleanup::remove_all();
        std::process::exit(128 + signal);
    });
}

/// Elsewhere the default handling stays.
#[cfg(not(unix))]
pub fn install() {}

//! Ctrl-C during a long native call: the call runs with the GIL released, and between its
//! batches (training steps for `fit`) the facade asks [`chronos2_core::interrupt::check`], which
//! here takes the GIL and runs Python's pending signal handlers. When one raises (Ctrl-C's
//! `KeyboardInterrupt`), the call stops at that point and the exception is raised from it; the
//! model is left as it was, ready for the next call. Python runs signal handlers in the main
//! thread only, so calls from other threads (thread pools, Ray actors' worker threads) run
//! without the check and never wait for the GIL between batches.

use std::sync::{Arc, Mutex};

use chronos2::chronos2_core::interrupt::with_check;
use pyo3::prelude::*;
use pyo3::Python;

use crate::errors::guarded;

/// Runs `f` with the GIL released, stoppable by a signal between its batches (see the module).
pub fn interruptible<T: Send>(py: Python<'_>, f: impl FnOnce() -> chronos2::Result<T> + Send) -> PyResult<T> {
    if !on_main_thread(py)? {
        return py.allow_threads(|| guarded(f));
    }
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&raised);
    let result = py.allow_threads(move || {
        let check = move || {
            Python::with_gil(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(e);
                    }
                    true
                }
            })
        };
        with_check(check, || guarded(f))
    });
    let pending = raised.lock().ok().and_then(|mut s| s.take());
    match (result, pending) {
        (Err(_), Some(signal_error)) => Err(signal_error),
        (result, _) => result,
    }
}

/// Whether this is the main thread, the one Python runs signal handlers in.
fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    let main = threading.call_method0("main_thread")?.getattr("ident")?;
    let current = threading.call_method0("get_ident")?;
    main.eq(current)
}

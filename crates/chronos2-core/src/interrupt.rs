//! Stopping a long call between its units of work (forecast and embedding batches, training
//! steps): the caller installs a check for the duration of the call ([`with_check`]), and the
//! loops call [`check`], which returns [`Error::Interrupted`] once the check says so. The check
//! belongs to the calling thread (the loops run there), so concurrent calls on other threads
//! are not affected. The Python package installs one that looks for Ctrl-C.

use std::cell::RefCell;

use crate::error::{Error, Result};

type Check = Box<dyn Fn() -> bool>;

thread_local! {
    static CHECK: RefCell<Option<Check>> = const { RefCell::new(None) };
}

/// Puts the previous check back when dropped (also when `f` unwinds).
struct Restore(Option<Check>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CHECK.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `interrupted` as this thread's check: [`check`] calls it, and returns
/// [`Error::Interrupted`] when it returns true.
pub fn with_check<T>(interrupted: impl Fn() -> bool + 'static, f: impl FnOnce() -> T) -> T {
    let previous = CHECK.with(|c| c.borrow_mut().replace(Box::new(interrupted)));
    let _restore = Restore(previous);
    f()
}

/// `Err(Error::Interrupted)` when this thread's check (if any) says to stop.
pub fn check() -> Result<()> {
    let stop = CHECK.with(|c| c.borrow().as_ref().is_some_and(|interrupted| interrupted()));
    if stop {
        return Err(Error::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn stops_only_inside_with_check_and_restores() {
        assert!(check().is_ok());
        let calls = Rc::new(Cell::new(0));
        let counted = calls.clone();
        let result = with_check(
            move || {
                counted.set(counted.get() + 1);
                counted.get() >= 2
            },
            || (check().is_ok(), check().is_err()),
        );
        assert_eq!(result, (true, true));
        assert_eq!(calls.get(), 2);
        assert!(check().is_ok(), "the check is removed after the call");
    }
}

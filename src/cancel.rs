//! Stopping a call's work once its client has gone or its deadline has
//! passed. The async side holds a `CancellationToken`; blocking file work
//! runs with a `Stop` installed for its thread and calls `check()` in its
//! loops, so it ends within one step of the token being cancelled.

use crate::error::{Reason, ToolError, ToolResult};
use std::cell::RefCell;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How much earlier than our clock the client's deadline may fall.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// Why a call's work should end.
#[derive(Debug, Clone)]
pub struct Stop {
    pub token: CancellationToken,
    pub deadline: Option<Instant>,
}

impl Stop {
    pub fn never() -> Stop {
        Stop {
            token: CancellationToken::new(),
            deadline: None,
        }
    }

    /// Why the work must end now, if it must. A call dropped just before
    /// its deadline by our clock was dropped for it: tonic and the client
    /// time the deadline from the request's arrival, a little earlier.
    pub fn reason(&self) -> Option<Reason> {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            Some(Reason::DeadlineExceeded)
        } else if self.token.is_cancelled() {
            if self.deadline.is_some_and(|d| now + DEADLINE_SLACK >= d) {
                Some(Reason::DeadlineExceeded)
            } else {
                Some(Reason::Cancelled)
            }
        } else {
            None
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Stop>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with `stop` in force for `check()`.
pub fn with_stop<T>(stop: Stop, work: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(stop));
    let _reset = Reset;
    work()
}

/// The stop in force on this thread, to install on the threads a call's
/// work is spread over.
pub fn current() -> Option<Stop> {
    CURRENT.with(|c| c.borrow().clone())
}

/// An error when the current call must stop (its client cancelled, or its
/// deadline passed); the work ends there and its record says so.
pub fn check() -> ToolResult<()> {
    let reason = CURRENT.with(|c| c.borrow().as_ref().and_then(Stop::reason));
    match reason {
        None => Ok(()),
        Some(reason) => Err(stopped(reason)),
    }
}

/// The error for a call stopped before its work began.
pub fn stopped_before_work(reason: Reason) -> ToolError {
    let mut e = stopped(reason);
    e.message = format!("{} (it had not started: nothing was done)", e.message);
    e
}

pub fn stopped(reason: Reason) -> ToolError {
    let why = if reason == Reason::DeadlineExceeded {
        "the call's deadline passed"
    } else {
        "the client cancelled the call"
    };
    ToolError::new(
        reason,
        format!("{why}, so the work was stopped; what was done before is in the audit record"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_passes_without_a_stop_and_fails_once_cancelled() {
        assert!(check().is_ok());
        let stop = Stop::never();
        let token = stop.token.clone();
        with_stop(stop, || {
            assert!(check().is_ok());
            token.cancel();
            let err = check().unwrap_err();
            assert_eq!(err.reason, Reason::Cancelled);
        });
        assert!(check().is_ok(), "the stop ends with its scope");
    }

    #[test]
    fn a_passed_deadline_is_named_as_such() {
        let stop = Stop {
            token: CancellationToken::new(),
            deadline: Some(Instant::now()),
        };
        with_stop(stop, || {
            assert_eq!(check().unwrap_err().reason, Reason::DeadlineExceeded)
        });
    }
}

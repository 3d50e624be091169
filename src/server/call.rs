//! Each call's work runs on a task of its own, so that it finishes (or is
//! stopped) and is recorded even when tonic drops the handler: the client
//! cancelled, its connection went, or its deadline passed. Dropping the
//! handler cancels the call's token; the work sees it through its `Stop`.

use crate::cancel::Stop;
use crate::error::ToolError;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Status};

/// gRPC allows at most 8 digits of timeout; longer values are capped to the
/// largest 8-digit one (tonic itself ignores them), never wrapped.
const MAX_TIMEOUT_DIGITS: usize = 8;

/// The client's gRPC deadline (`grpc-timeout`), if it sent one.
pub fn deadline<T>(req: &Request<T>) -> Option<Duration> {
    let value = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(value)
}

fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = if digits.len() > MAX_TIMEOUT_DIGITS {
        99_999_999
    } else {
        digits.parse().ok()?
    };
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `work` on its own task and answers with its result. If the handler
/// is dropped first, the task goes on with its `Stop` cancelled.
pub async fn detached<T, F>(
    (calls, stopping): (&TaskTracker, &CancellationToken),
    deadline: Option<Duration>,
    work: impl FnOnce(Stop) -> F,
) -> Result<T, Status>
where
    F: Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let stop = Stop {
        // Also cancelled when the daemon stops past its grace period.
        token: stopping.child_token(),
        deadline: deadline.and_then(|d| Instant::now().checked_add(d)),
    };
    let guard = stop.token.clone().drop_guard();
    let joined = calls.spawn(work(stop)).await;
    guard.disarm();
    joined.unwrap_or_else(|e| {
        tracing::error!(panic = e.is_panic(), "a call's task failed");
        Err(ToolError::internal(
            "the call failed unexpectedly inside the daemon; the daemon is still serving",
        )
        .to_status())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_huge_ones_are_capped_not_wrapped() {
        assert_eq!(parse_timeout("40m"), Some(Duration::from_millis(40)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        let huge = parse_timeout("1152921504606846976H").unwrap();
        assert_eq!(huge, Duration::from_secs(99_999_999 * 3600));
        assert_eq!(parse_timeout("x"), None);
        assert_eq!(parse_timeout("-5S"), None);
        assert_eq!(parse_timeout("5"), None);
    }

    #[tokio::test]
    async fn work_goes_on_when_the_handler_is_dropped() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (calls, stopping) = (TaskTracker::new(), CancellationToken::new());
        let handler = detached((&calls, &stopping), None, move |stop| async move {
            stop.token.cancelled().await;
            let _ = tx.send(stop.reason());
            Ok(())
        });
        // Poll once so the task starts, then drop the handler.
        let _ = tokio::time::timeout(Duration::from_millis(20), handler).await;
        let seen = rx.await.expect("the work ran to its end");
        assert_eq!(seen, Some(crate::error::Reason::Cancelled));
    }
}

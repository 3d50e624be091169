"""When a failed call is tried again, and after how long.

A call is retried only where the daemon says a retry is safe:

- the status carries reason ``UNAVAILABLE`` (the daemon refused before doing
  anything: the audit log cannot be written, a file was replaced during the
  call, no space left, ...), for every call;
- the daemon refused before doing anything because the agent is at a
  concurrency cap or over its call rate (reasons ``TOO_MANY_CONCURRENT_CALLS``,
  ``RATE_LIMITED``: RESOURCE_EXHAUSTED with a RetryInfo delay), for every call;
- a budget of the window is used up (``QUOTA_EXCEEDED``: RESOURCE_EXHAUSTED
  with a RetryInfo delay until the window frees enough) only when that delay
  is at most ``max_quota_wait`` seconds (default 5): a budget that frees in
  minutes is the caller's to plan for, so the :class:`QuotaExceeded` is
  raised at once, carrying ``retry_delay``;
- a transport ``UNAVAILABLE`` without a reason (the daemon is starting, has
  gone, or drains for a restart) only for calls that change nothing
  (``whoami``, reads, listings, searches, ``stat``, a process's output,
  state or exit): a mutating call may have
  reached the daemon before the connection broke.

Nothing else is retried: a refusal by the policy, a missing file or a stale
hash answers the same way the second time.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

import grpc

from .errors import AgentjailError, Cancelled, DeadlineExceeded

#: Called before each retry with (attempt number just failed, error, delay s).
OnRetry = Callable[[int, AgentjailError, float], None]

#: Reasons of refusals made before any work, whose status says when to retry.
REFUSED_BEFORE_WORK_AND_RETRYABLE = frozenset({"TOO_MANY_CONCURRENT_CALLS", "RATE_LIMITED"})

READ_ONLY_METHODS = frozenset(
    {
        "WhoAmI",
        "ReadFile",
        "ListDir",
        "Glob",
        "Grep",
        "Stat",
        "ListSessions",
        "ListProcesses",
        "ReadOutput",
        "WaitProcess",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and the call's deadline.

    A ``google.rpc.RetryInfo`` in the status replaces the computed delay.
    ``RetryPolicy(max_attempts=1)`` (or :data:`NO_RETRY`) turns retries off.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    on_retry: Optional[OnRetry] = None
    #: Longest RetryInfo delay of a QUOTA_EXCEEDED that is waited out (s).
    max_quota_wait: float = 5.0

    def should_retry(self, method: str, error: AgentjailError, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) that failed with ``error`` is tried again."""
        if attempt >= self.max_attempts:
            return False
        if error.reason in REFUSED_BEFORE_WORK_AND_RETRYABLE:
            return True
        if error.reason == "QUOTA_EXCEEDED":
            delay = error.retry_delay
            return delay is not None and delay.total_seconds() <= self.max_quota_wait
        if error.code != grpc.StatusCode.UNAVAILABLE:
            return False
        if error.reason == "UNAVAILABLE":
            return True
        return error.reason is None and method in READ_ONLY_METHODS

    def delay(self, error: AgentjailError, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if error.retry_delay is not None:
            return max(0.0, error.retry_delay.total_seconds())
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(0, cap)


NO_RETRY = RetryPolicy(max_attempts=1)


class Deadline:
    """One call's overall deadline, shared by its attempts."""

    def __init__(self, timeout: Optional[float]) -> None:
        # None or infinity: no deadline.
        self.end = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        """Seconds left (never negative), ``None`` without a deadline."""
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())

    def allows(self, delay: float) -> bool:
        """True if sleeping ``delay`` still leaves time for another attempt."""
        left = self.remaining()
        return left is None or delay < left


def deadline_or(err: AgentjailError, deadline: Deadline) -> AgentjailError:
    """grpcio reports a deadline that passed before the call got going as
    CANCELLED ("Timeout expired"): when this call's deadline has passed and
    nobody cancelled it, it is a :class:`DeadlineExceeded`."""
    if isinstance(err, Cancelled) and deadline.remaining() == 0.0:
        return DeadlineExceeded(
            f"the call's deadline passed ({err.message})",
            reason=None,
            code=grpc.StatusCode.DEADLINE_EXCEEDED,
            request_id=err.request_id,
        )
    return err

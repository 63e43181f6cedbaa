"""The one retry policy for model calls: how a failure is classified and how long to wait.

Providers raise :class:`RetryableError` or :class:`PermanentError` (built with
:func:`http_error` from an HTTP status); :func:`call_with_retries` repeats an attempt with
exponential backoff and jitter (or the server's ``Retry-After``), bounded by
``workflow.retry_attempts`` tries and ``workflow.retry_max_seconds``; tenacity drives it.
SDK retries are off, so this is the only policy (the Gemini SDK's ignores ``Retry-After``).
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

import tenacity

log = logging.getLogger("video_reasoning")

T = TypeVar("T")

#: Longest wait for one ``Retry-After`` (s) and for one backoff step (s).
MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 60.0


class ModelCallError(RuntimeError):
    """A model call that failed for good (permanent error, or retries exhausted)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class BlockedError(ModelCallError):
    """The backend refused to answer (safety block); recorded, not retried."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class RetryableError(RuntimeError):
    """A failed attempt worth repeating.

    Attributes:
        retry_after: seconds the server asked to wait, if it said so.
        reask: the validation problem to send back with the previous answer, for an
            answer that arrived but was invalid (re-asked at once, no backoff).
    """

    def __init__(self, message: str, retry_after: float | None = None, reask: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.reask = reask


class PermanentError(RuntimeError):
    """A failed attempt not worth repeating (400, 401/403, 404). ``upload_gone``: the
    Files API no longer has the upload the call referred to (re-upload, then retry once)."""

    def __init__(self, message: str, upload_gone: bool = False):
        super().__init__(message)
        self.upload_gone = upload_gone


def retry_after(headers) -> float | None:
    """Seconds from a ``Retry-After`` (RFC 9110 §10.2.3: seconds or an HTTP date) or
    ``retry-after-ms`` header, if any."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds()) if when else None


def http_error(code: int, message: str, headers=None, *, key_hint: str, model_hint: str) -> Exception:
    """Classify an HTTP error of a model endpoint.

    408, 409, 429 and 5xx are retryable (with ``Retry-After``); 401/403 are permanent and
    name ``key_hint`` (where the key comes from); 404 is permanent and names ``model_hint``
    (which setting names the model); anything else is permanent as is.
    """
    if code in (408, 409, 429) or code >= 500:
        return RetryableError(message, retry_after=retry_after(headers))
    if code in (401, 403):
        return PermanentError(f"{message}. The API key was refused: check {key_hint}.")
    if code == 404:
        return PermanentError(f"{message}. {model_hint}")
    return PermanentError(message)


def backoff_s(attempt: int, error: BaseException | None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): the server's ``Retry-After``
    (at most 120 s), none before re-asking an invalid answer, else ``0.5 * 2**(attempt-1)``
    s (at most 60 s) times a jitter factor in [0.5, 1.5)."""
    if isinstance(error, RetryableError) and error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_AFTER_S)
    if isinstance(error, RetryableError) and error.reask is not None:
        return 0.0
    return min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())


def call_with_retries(attempt: Callable[[int], T], attempts: int, max_seconds: float,
                      describe: Callable[[int, BaseException], str]) -> tuple[T, int]:
    """Run ``attempt(n)`` (n = 1, 2, ...) until it returns, retrying on :class:`RetryableError`.

    Returns ``(result, tries)``.

    Raises:
        RetryableError: the last error, when ``attempts`` tries or ``max_seconds`` are used up.
        PermanentError, BlockedError: at once.
    """
    tries = {"n": 0}
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(max_seconds),
        wait=lambda s: backoff_s(s.attempt_number, s.outcome.exception() if s.outcome else None),
        reraise=True,
        before_sleep=lambda s: log.warning("%s", describe(s.attempt_number, s.outcome.exception())),
    )
    for trial in retrying:
        with trial:
            tries["n"] += 1
            return attempt(tries["n"]), tries["n"]
    raise AssertionError("unreachable")  # tenacity either returns or reraises

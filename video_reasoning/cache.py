"""The response cache: every validated answer, keyed by what determines it.

A request's key is the SHA-256 of its backend fingerprint (backend, model, temperature,
output limit, resolution or endpoint), the video it is about (two videos never share an
answer), prompt, answer schema, media identity (content hash and window) and frame
sampling; never the API key or timeouts. Reruns, resumed runs and
prompt edits pay only for requests whose key is new. Entries live in
``<results_dir>/.cache/responses/<2 hex>/<key>.json``, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from video_reasoning.store import atomic_write_json, read_json


def request_key(material: dict) -> str:
    """SHA-256 (hex) of ``material`` as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Answers on disk under ``folder``, one JSON file per request key."""

    def __init__(self, folder: str):
        self.folder = folder

    def path(self, key: str) -> str:
        """Where the answer of ``key`` is kept."""
        return os.path.join(self.folder, key[:2], key + ".json")

    def get(self, key: str) -> Optional[dict]:
        """The stored answer of ``key``, or None."""
        return read_json(self.path(key))

    def put(self, key: str, value: dict) -> None:
        """Store ``value`` as the answer of ``key`` (atomically)."""
        atomic_write_json(self.path(key), value)

    def __contains__(self, key: str) -> bool:
        return os.path.exists(self.path(key))

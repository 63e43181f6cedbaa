"""API keys: where each role's key comes from, kept out of Snakemake's ``config``, and
scrubbed from any text the workflow writes.

The Snakefile moves every ``api_key`` of the spec into a private variable
(:data:`ROLE_KEY_ENV`) before anything else reads the config, so neither Snakemake's
metadata nor the pickled script preambles under ``.snakemake/`` can hold one; job
processes inherit the variables.
"""

from __future__ import annotations

import os

from video_reasoning.config import BackendSettings, Settings

#: Private variables the Snakefile moves spec keys into, so no key stays in ``config``
#: (Snakemake pickles ``config`` into every script job's preamble).
ROLE_KEY_ENV = {"vlm": "VRA_VLM_API_KEY", "llm": "VRA_LLM_API_KEY"}


def api_key_for(role: str, block: BackendSettings) -> str:
    """The API key for the ``vlm`` or ``llm`` role: spec value, else the backend's variable.

    Returns an empty string when none is set. The Snakefile moves spec keys into
    :data:`ROLE_KEY_ENV` variables, which are read first.
    """
    p = block.provider
    return os.environ.get(ROLE_KEY_ENV[role]) or p.api_key or os.environ.get(p.key_env, "")


def scrub_api_keys(config: dict) -> None:
    """Move every ``api_key`` of the spec into a private environment variable, in place.

    After this, ``config`` holds no secret, so neither Snakemake's metadata nor the
    pickled script preambles under ``.snakemake/`` can leak one. Child processes (the
    script jobs) inherit the variables.
    """
    vra = config.get("video_reasoning_annotation")
    for role in ("vlm", "llm"):
        block = vra.get(role) if isinstance(vra, dict) else None
        if not isinstance(block, dict):
            continue
        chosen = block.get("backend", "gemini")
        for name in ("gemini", "openai"):
            sub = block.get(name)
            if not isinstance(sub, dict) or "api_key" not in sub:
                continue
            key = sub.get("api_key")
            if key and isinstance(key, str) and name == chosen:
                os.environ[ROLE_KEY_ENV[role]] = key
            sub["api_key"] = ""


def secrets_in_use(settings: Settings) -> list[str]:
    """Every non-empty API key the run may use (for scrubbing them from text)."""
    keys = {api_key_for(role, getattr(settings, role)) for role in ("vlm", "llm")}
    return sorted(k for k in keys if k and k != "EMPTY")


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text

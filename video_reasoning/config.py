"""Typed view of the merged, schema-validated TAO spec, and the checks a schema cannot express.

The spec keys and their defaults follow the TAO "Video Reasoning Annotation" page
(``config/defaults.yaml`` holds them; ``schemas/config.schema.yaml`` validates them). The
Snakefile merges the user's spec over the defaults, validates the result with Snakemake's
``validate()``, then calls :func:`check_config` here before any job is scheduled.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import socket
from typing import Literal, Optional
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

QA_TYPES = (
    "mcq",
    "bcq",
    "open_qa",
    "causal_linkage",
    "temporal_localization",
    "temporal_event_desc",
    "scene_description",
    "event_summary",
)
STEPS = ("0", "1a", "1b", "1c", "2", "3", "4")

#: Environment variable each backend reads its key from when the spec leaves ``api_key`` empty.
KEY_ENV = {"gemini": "GOOGLE_API_KEY", "openai": "OPENAI_API_KEY"}
#: Private variables the Snakefile moves spec keys into, so no key stays in ``config``
#: (Snakemake pickles ``config`` into every script job's preamble).
ROLE_KEY_ENV = {"vlm": "VRA_VLM_API_KEY", "llm": "VRA_LLM_API_KEY"}


class ConfigError(ValueError):
    """A spec mistake, with a message naming the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeminiSettings(_Strict):
    api_key: str = ""
    model: str = "gemini-3.1-flash-lite-preview"
    media_resolution: str = "MEDIA_RESOLUTION_LOW"
    temperature: float = 0.3
    max_output_tokens: int = 8192
    timeout: float = 120


class OpenAISettings(_Strict):
    api_key: str = ""
    base_url: str = ""
    model_name: str = ""
    temperature: float = 0.7
    max_tokens: int = 4096
    timeout: float = 60


class BackendSettings(_Strict):
    backend: Literal["gemini", "openai"] = "gemini"
    gemini: GeminiSettings = GeminiSettings()
    openai: OpenAISettings = OpenAISettings()

    @property
    def model(self) -> str:
        """The model name the chosen backend calls."""
        return self.gemini.model if self.backend == "gemini" else self.openai.model_name

    def fingerprint(self) -> dict:
        """What, when changed, must rerun the work this backend produced.

        Backend, model, temperature, output-token limit, media resolution and endpoint;
        never the API key (this dict goes into Snakemake ``params``, stored in
        ``.snakemake/``) and not timeouts (they do not change answers).
        """
        if self.backend == "gemini":
            g = self.gemini
            return {
                "backend": "gemini",
                "model": g.model,
                "temperature": g.temperature,
                "max_output_tokens": g.max_output_tokens,
                "media_resolution": g.media_resolution,
            }
        o = self.openai
        return {
            "backend": "openai",
            "model": o.model_name,
            "temperature": o.temperature,
            "max_tokens": o.max_tokens,
            "base_url": o.base_url,
        }


class WorkflowSettings(_Strict):
    steps: tuple[str, ...] = STEPS
    mode: Literal["auto", "anomaly", "normal"] = "auto"
    max_workers: int = 4
    max_video_length_sec: float = 300
    chunk_duration_options: tuple[float, ...] = (5, 10, 15, 20, 30)
    max_chunks: int = 10
    highlight_before_sec: float = 3.0
    highlight_after_sec: float = 3.0
    long_video_threshold_sec: float = 60
    long_video_sample_fps: float = 0.5
    long_video_max_frames: int = 60
    qa_types: tuple[str, ...] = QA_TYPES
    retry_attempts: int = 6
    retry_max_seconds: float = 600

    def effective_steps(self) -> tuple[str, ...]:
        """Steps that run, in pipeline order.

        As the TAO page says: in ``auto`` mode step 0 always runs (it classifies each
        video), and step 1c runs after 1b (it captures the anomaly highlight).
        """
        steps = set(self.steps)
        if self.mode == "auto":
            steps.add("0")
            if "1b" in steps:
                steps.add("1c")
        return tuple(s for s in STEPS if s in steps)


class DataSettings(_Strict):
    video_root: Optional[str] = ""
    input_jsonl_files: tuple[str, ...] = ()
    filter_field: Optional[str] = None


class Settings(_Strict):
    """The ``video_reasoning_annotation`` block of a TAO spec."""

    vlm: BackendSettings = BackendSettings()
    llm: BackendSettings = BackendSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    data: DataSettings = DataSettings()
    license: Optional[str] = ""
    description_extra: Optional[str] = ""
    prompts_module: Optional[str] = ""
    prompts: dict[str, str] = Field(default_factory=dict)


def settings_from_config(config: dict) -> Settings:
    """Build :class:`Settings` from the Snakemake ``config`` dict (already schema-validated)."""
    return Settings.model_validate(config["video_reasoning_annotation"])


def api_key_for(role: str, block: BackendSettings) -> str:
    """The API key for the ``vlm`` or ``llm`` role: spec value, else the backend's variable.

    Returns an empty string when none is set. The Snakefile moves spec keys into
    :data:`ROLE_KEY_ENV` variables, which are read first.
    """
    spec_key = block.gemini.api_key if block.backend == "gemini" else block.openai.api_key
    return os.environ.get(ROLE_KEY_ENV[role]) or spec_key or os.environ.get(KEY_ENV[block.backend], "")


def unknown_keys(config: dict, defaults: dict, where: str = "") -> list[str]:
    """Keys of ``config`` that ``defaults`` lacks, each with a close known key when there is one.

    Free-form mappings (``prompts``) are not walked. Returns messages like
    ``video_reasoning_annotation.worklfow (did you mean 'workflow'?)``.
    """
    out = []
    for key, value in config.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in defaults:
            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1)
            out.append(path + (f" (did you mean {close[0]!r}?)" if close else ""))
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and key != "prompts":
            out += unknown_keys(value, defaults[key], path)
    return out


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


def check_config(settings: Settings) -> None:
    """Check what the JSON schema cannot: inputs given, keys present, models named.

    Raises:
        ConfigError: naming the offending key and how to fix it.
    """
    data = settings.data
    if not (data.video_root or data.input_jsonl_files):
        raise ConfigError(
            "video_reasoning_annotation.data: give data.video_root (a folder of videos) "
            "or data.input_jsonl_files (JSONL files with a video_path per line), or both."
        )
    if data.video_root and not os.path.isdir(data.video_root):
        raise ConfigError(
            f"video_reasoning_annotation.data.video_root: {data.video_root!r} is not a folder. "
            "Point it at the folder holding your videos."
        )
    for path in data.input_jsonl_files:
        if not os.path.isfile(path):
            raise ConfigError(
                f"video_reasoning_annotation.data.input_jsonl_files: {path!r} does not exist. "
                "Fix the path or remove it from the list."
            )
    steps = settings.workflow.effective_steps()
    used_roles = set()
    if {"0", "1a", "1b", "1c"} & set(steps):
        used_roles.add("vlm")
    if {"1c", "2", "3"} & set(steps):
        used_roles.add("llm")
    for role in sorted(used_roles):
        block: BackendSettings = getattr(settings, role)
        where = f"video_reasoning_annotation.{role}"
        if block.backend == "openai" and not block.openai.model_name:
            raise ConfigError(f"{where}.openai.model_name is empty: name the model your server serves.")
        local_server = block.backend == "openai" and block.openai.base_url
        if not api_key_for(role, block) and not local_server:  # vLLM and Ollama usually need no key
            raise ConfigError(
                f"{where}: no API key for the {block.backend} backend. Set the "
                f"{KEY_ENV[block.backend]} environment variable or {where}.{block.backend}.api_key."
            )
        if local_server:
            check_reachable(block.openai.base_url, f"{where}.openai.base_url")


def check_reachable(url: str, key: str, timeout_s: float = 5.0) -> None:
    """Open (and close) a TCP connection to ``url``'s host and port.

    Raises:
        ConfigError: when the URL is malformed or nothing accepts connections there,
            so a wrong ``base_url`` stops the run before any job, not after an hour.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{key}: {url!r} is not an http(s) URL, e.g. http://localhost:8000/v1")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot connect to {parsed.hostname}:{port} ({exc.strerror or exc}). "
            "Start the server or fix the URL."
        ) from None


def short_hash(obj) -> str:
    """First 16 hex digits of the SHA-256 of ``obj`` as canonical JSON (or of a str)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]

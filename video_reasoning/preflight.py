"""Checks before any job: the spec's offline checks (:func:`check_config`, at parse time:
what the JSON schema cannot check, no key or network), then, before the first model job
of a run, the backends (:func:`preflight`): is each backend in use there, does it speak its
protocol, accept the key and know the model? One cheap authenticated request per backend,
made by the Snakefile's ``onstart`` handler (so ``-n``, ``--report``, ``--unlock``,
``--summary`` and friends, which run no job, need neither a key nor a server).

- Gemini: the model's metadata (``models.get``, the Gemini API's ``GET models/<model>``).
- OpenAI-compatible: the model list (``GET /models``), which must name ``model_name``; a
  server without that route gets a one-token completion instead.

Every failure is a :class:`~video_reasoning.config.ConfigError` naming the setting or
variable to fix; nothing is retried, each request times out after :data:`TIMEOUT_S`.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from video_reasoning.config import BackendSettings, ConfigError, Settings
from video_reasoning.costs import prices
from video_reasoning.keys import api_key_for
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.steps import roles_in_use

#: Seconds each preflight request may take.
TIMEOUT_S = 10.0


def preflight(settings: Settings, roles: list[str]) -> None:
    """Check the backends of ``roles`` (``vlm``, ``llm``); a backend serving both is
    checked once.

    Raises:
        ConfigError: no key, endpoint unreachable or not speaking the protocol, key
            refused, model unknown (the message names the key or variable to fix).
    """
    seen = set()
    for role in roles:
        block: BackendSettings = getattr(settings, role)
        ident = (block.backend, api_key_for(role, block), repr(block.provider.fingerprint()))
        if ident in seen:
            continue
        seen.add(ident)
        (_gemini if block.backend == "gemini" else _openai)(role, block)


def _gemini(role: str, block: BackendSettings) -> None:
    from google import genai
    from google.genai import errors, types

    where = f"video_reasoning_annotation.{role}"
    key = api_key_for(role, block)
    if not key:
        raise ConfigError(f"{where}: no API key for the gemini backend. Set the GOOGLE_API_KEY environment "
                          f"variable or {where}.gemini.api_key.")
    url = os.environ.get("GOOGLE_GEMINI_BASE_URL") or "https://generativelanguage.googleapis.com"
    client = genai.Client(api_key=key, http_options=types.HttpOptions(timeout=int(TIMEOUT_S * 1000)))
    model = block.gemini.model
    try:
        client.models.get(model=model)
    except errors.APIError as exc:
        raise ConfigError(_refused(exc.code, f"{exc.status or ''} {exc.message or ''}".strip(), url, where,
                                   f"GOOGLE_API_KEY (or {where}.gemini.api_key)", f"{where}.gemini.model",
                                   model, "Gemini")) from None
    except Exception as exc:  # transport errors come from the SDK's own httpx fork; any is fatal here
        raise ConfigError(f"{where}: cannot reach the Gemini API at {url} ({type(exc).__name__}: {exc}). "
                          "Check GOOGLE_GEMINI_BASE_URL and the network.") from None


def _openai(role: str, block: BackendSettings) -> None:
    import openai

    where = f"video_reasoning_annotation.{role}"
    s = block.openai
    key = api_key_for(role, block)
    if not key and not s.base_url:
        raise ConfigError(f"{where}: no API key for the openai backend. Set the OPENAI_API_KEY environment "
                          f"variable or {where}.openai.api_key.")
    url = s.base_url or "https://api.openai.com/v1"
    if s.base_url:
        check_reachable(s.base_url, f"{where}.openai.base_url")
    client = openai.OpenAI(api_key=key or "EMPTY", base_url=url, timeout=TIMEOUT_S, max_retries=0)
    key_hint = f"OPENAI_API_KEY (or {where}.openai.api_key)"
    try:
        try:
            served = [m.id for m in client.models.list()]
        except openai.NotFoundError:  # no model list on this server: ask for one token instead
            client.chat.completions.create(model=s.model_name, max_tokens=1,
                                           messages=[{"role": "user", "content": "Say OK."}])
            return
    except openai.APIStatusError as exc:
        raise ConfigError(_refused(exc.status_code, str(exc.message), url, where, key_hint,
                                   f"{where}.openai.model_name", s.model_name, "OpenAI")) from None
    except openai.APIConnectionError as exc:
        raise ConfigError(f"{where}.openai.base_url: cannot reach {url} ({exc}). Start the server or fix the "
                          "URL.") from None
    except (ValueError, TypeError) as exc:  # a 200 that is not an OpenAI model list
        raise ConfigError(f"{where}.openai.base_url: {url} does not answer like an OpenAI-compatible server "
                          f"({exc}). Point base_url at the server's /v1.") from None
    if s.model_name not in served:
        raise ConfigError(f"{where}.openai.model_name: {s.model_name!r} is not served at {url} (it serves "
                          f"{', '.join(served[:10]) or 'no model'}). Set model_name to one of them.")


def _refused(code: int | None, message: str, url: str, where: str, key_hint: str, model_key: str, model: str,
             protocol: str) -> str:
    """The message for an HTTP error of a preflight request."""
    if code in (401, 403) or "API KEY" in message.upper().replace("_", " "):
        return f"{where}: the API key was refused by {url} ({code} {message}). Check {key_hint}."
    if code == 404:
        return (f"{model_key}: model {model!r} is unknown at {url} (HTTP 404: {message[:200]}). Name a model the "
                "endpoint serves, and check that the URL is the API's base URL.")
    return (f"{where}: {url} does not answer like the {protocol} API (HTTP {code}: {message[:200]}). Check the "
            "endpoint URL.")


def check_config(settings: Settings) -> None:
    """Check what the JSON schema cannot, without a key or a network: inputs given,
    models named, checks compatible. Keys and endpoints are checked by
    :func:`video_reasoning.preflight.preflight` when model jobs are about to run.

    Raises:
        ConfigError: naming the offending key and how to fix it.
    """
    ver = settings.verification
    if ver.judge and not ver.grounded_reanswer:
        raise ConfigError("video_reasoning_annotation.verification.judge needs verification.grounded_reanswer "
                          "(the judge compares each answer with what the VLM saw): turn both on, or judge off.")
    wf = settings.workflow
    long_only = [q for q in wf.qa_types if QA_TYPES[q].long_only]
    if long_only and not settings.long_path():
        raise ConfigError(
            f"video_reasoning_annotation.workflow.qa_types: {', '.join(long_only)} is written only for videos longer "
            f"than long_video's threshold ({settings.long_video.threshold(wf):g} s), which "
            f"workflow.max_video_length_sec ({wf.max_video_length_sec:g} s) rejects: raise max_video_length_sec "
            "(e.g. 7200) or lower long_video.threshold_sec, or remove it from qa_types.")
    if settings.workflow.max_cost_usd is not None:
        table = prices(settings)
        for role in roles_in_use(settings):
            model = getattr(settings, role).model
            if model not in table:
                raise ConfigError(f"video_reasoning_annotation.workflow.max_cost_usd needs the price of the {role} "
                                  f"model {model!r}: add video_reasoning_annotation.pricing.{model} with input, "
                                  "cached_input and output (USD per 1M tokens), e.g. all 0 for your own server.")
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
    for role in roles_in_use(settings):
        block: BackendSettings = getattr(settings, role)
        if block.backend == "openai" and not block.openai.model_name:
            raise ConfigError(f"video_reasoning_annotation.{role}.openai.model_name is empty: name the model your "
                              "server serves.")


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

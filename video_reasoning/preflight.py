"""Before the first model job of a run: is each backend in use there, does it speak its
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

from video_reasoning.config import BackendSettings, ConfigError, Settings, api_key_for, check_reachable

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

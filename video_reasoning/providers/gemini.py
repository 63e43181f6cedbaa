"""Gemini Developer API through google-genai (endpoint overridable with the SDK's
``GOOGLE_GEMINI_BASE_URL`` variable).

Each video is uploaded once through the Files API and the upload is shared by every call,
job and run on it until it expires (record in ``<cache>/uploads/<sha256>.json``); chunks
and the highlight are that upload with ``video_metadata`` start/end offsets, long media is
sampled by the API at ``fps``. The answer schema is pydantic's own JSON schema of the
answer model, sent as ``response_json_schema`` (which accepts JSON Schema with ``$defs``
and ``$ref``): no rewriting is needed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from video_reasoning.config import GeminiSettings
from video_reasoning.keys import ROLE_KEY_ENV
from video_reasoning.media import MediaRef, Probe
from video_reasoning.providers.base import Endpoint, Finish, ProviderReply, Request, Turn
from video_reasoning.retry import PermanentError, RetryableError, http_error
from video_reasoning.store import atomic_write_json, read_json

try:  # the SDK ships a fork of httpx under this name
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDK releases
    import httpx

#: Seconds before a Files API upload's expiry at which it is re-uploaded instead of reused.
UPLOAD_EXPIRY_MARGIN_S = 600
#: Longest wait for an uploaded video to become ACTIVE (s).
UPLOAD_ACTIVE_TIMEOUT_S = 600
#: Lifetime assumed for an upload whose record gives none: the Files API keeps files 48 h.
UPLOAD_DEFAULT_TTL = timedelta(hours=47)
#: Finish reasons that mean a safety refusal (google-genai ``FinishReason``).
_BLOCKED = ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY")


#: The SDK builds its pydantic types on first use, which is not thread-safe (googleapis/
#: python-genai#2991: concurrent first use fails with "type object 'Part' has no attribute
#: '__pydantic_core_schema__'"). The first request of a process runs alone; the rest do not wait.
_FIRST_USE = threading.RLock()
_warm = False


def _first_alone(fn):
    """``fn()``, alone in this process if no request has completed yet."""
    global _warm
    if _warm:
        return fn()
    with _FIRST_USE:
        result = fn()
        _warm = True
        return result


def _usage(usage) -> dict:
    """Token counts of ``usage_metadata``: prompt (cached part included), cached, and output
    (candidates plus thinking, which Gemini bills as output)."""
    if usage is None:
        return {}
    return {"input_tokens": usage.prompt_token_count or 0,
            "cached_input_tokens": usage.cached_content_token_count or 0,
            "output_tokens": (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)}


class GeminiProvider:
    """google-genai ``Client`` for one role."""

    def __init__(self, settings: GeminiSettings, endpoint: Endpoint):
        from google import genai
        from google.genai import errors, types

        self.settings = settings
        self.endpoint = endpoint
        self.types = types
        self.errors = errors
        with _FIRST_USE:  # builds SDK types (see _FIRST_USE)
            self.client = genai.Client(api_key=endpoint.api_key,
                                       http_options=types.HttpOptions(timeout=int(settings.timeout * 1000)))
        self._upload_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    # -- uploads --------------------------------------------------------
    def _record_path(self, probe: Probe) -> str:
        return os.path.join(self.endpoint.cache_dir, "uploads", probe.sha256 + ".json")

    def forget_upload(self, media: MediaRef | None) -> None:
        """Drop the upload record of ``media``'s video (the server no longer has the file)."""
        if media is not None:
            try:
                os.remove(self._record_path(media.probe))
            except FileNotFoundError:
                pass

    def uploaded(self, probe: Probe) -> dict:
        """The Files API record of ``probe``'s video (name, uri, mime type, expiry),
        uploading it when no valid one is recorded."""
        path = self._record_path(probe)
        with self._guard:
            lock = self._upload_locks[probe.sha256]
        with lock:  # one upload per video at a time; other videos are not held up
            rec = read_json(path)
            now = datetime.now(timezone.utc)
            if rec and datetime.fromisoformat(rec["expires"]) > now + timedelta(seconds=UPLOAD_EXPIRY_MARGIN_S):
                return rec
            try:
                # A file object, not a path: the SDK would send the file name in an HTTP
                # header, which fails for non-ASCII names.
                with open(probe.path, "rb") as fh:
                    f = self.client.files.upload(file=fh, config={"mime_type": probe.mime_type,
                                                                  "display_name": probe.sha256[:16]})
                deadline = time.monotonic() + UPLOAD_ACTIVE_TIMEOUT_S
                while f.state is not None and str(getattr(f.state, "value", f.state)) == "PROCESSING":
                    if time.monotonic() > deadline:
                        raise RetryableError(f"upload {f.name} still PROCESSING after {UPLOAD_ACTIVE_TIMEOUT_S} s")
                    time.sleep(1.0)
                    f = self.client.files.get(name=f.name)
            except Exception as exc:  # SDK and transport errors are classified here
                raise self._classify(exc) from None
            if str(getattr(f.state, "value", f.state)) == "FAILED":
                raise PermanentError(f"the Files API could not process {probe.path}: {f.error}")
            expires = f.expiration_time or (now + UPLOAD_DEFAULT_TTL)
            rec = {"name": f.name, "uri": f.uri, "mime_type": f.mime_type or probe.mime_type,
                   "expires": expires.isoformat(), "size_bytes": probe.size_bytes}
            atomic_write_json(path, rec)
            return rec

    # -- calls ----------------------------------------------------------
    def _media_part(self, media: MediaRef):
        t = self.types
        rec = self.uploaded(media.probe)
        meta = {}
        if media.start is not None or media.end is not None:
            s, e = media.window
            meta.update(start_offset=f"{s:.3f}s", end_offset=f"{e:.3f}s")
        sampling = self.endpoint.media.sampling(media)
        if sampling:
            meta["fps"] = sampling["fps"]
        return t.Part(file_data=t.FileData(file_uri=rec["uri"], mime_type=rec["mime_type"]),
                      video_metadata=t.VideoMetadata(**meta) if meta else None)

    def send(self, request: Request, reasks: list[Turn]) -> ProviderReply:
        """One ``generate_content`` call: media part, prompt, earlier invalid answers (the
        first of the process alone: see :data:`_FIRST_USE`)."""
        return _first_alone(lambda: self._send(request, reasks))

    def _send(self, request: Request, reasks: list[Turn]) -> ProviderReply:
        t = self.types
        cfg = {"temperature": self.settings.temperature, "max_output_tokens": self.settings.max_output_tokens}
        parts = []
        if request.media is not None:
            parts.append(self._media_part(request.media))
            if self.settings.media_resolution:
                cfg["media_resolution"] = self.settings.media_resolution
        parts.append(t.Part(text=request.prompt))
        contents = [t.Content(role="user", parts=parts)]
        for turn in reasks:
            contents.append(t.Content(role="model", parts=[t.Part(text=turn.answer)]))
            contents.append(t.Content(role="user", parts=[t.Part(text=turn.follow_up())]))
        if not request.tao_format:
            cfg["response_mime_type"] = "application/json"
            cfg["response_json_schema"] = request.answer_model.model_json_schema()
        try:
            resp = self.client.models.generate_content(model=self.settings.model, contents=contents,
                                                       config=t.GenerateContentConfig(**cfg))
        except Exception as exc:  # SDK and transport errors are classified here
            raise self._classify(exc, uploaded=request.media is not None) from None
        tokens = _usage(resp.usage_metadata)
        feedback = resp.prompt_feedback
        if feedback is not None and feedback.block_reason:
            return ProviderReply(str(feedback.block_reason), finish=Finish.BLOCKED, **tokens)
        if not resp.candidates:
            return ProviderReply("", **tokens)
        cand = resp.candidates[0]
        reason = str(getattr(cand.finish_reason, "value", cand.finish_reason) or "STOP")
        text = "".join(p.text or "" for p in (cand.content.parts if cand.content and cand.content.parts else [])
                       if not getattr(p, "thought", False))
        if reason in _BLOCKED:
            return ProviderReply(reason, finish=Finish.BLOCKED, **tokens)
        return ProviderReply(text, finish=Finish.LENGTH if reason == "MAX_TOKENS" else Finish.STOP, **tokens)

    def _classify(self, exc: Exception, uploaded: bool = False) -> Exception:
        if isinstance(exc, (RetryableError, PermanentError)):
            return exc
        if isinstance(exc, self.errors.APIError):
            code = exc.code or 0
            msg = f"HTTP {code} {exc.status or ''}: {exc.message or ''}".strip()
            file_problem = uploaded and "file" in (exc.message or "").lower()
            if uploaded and (code == 404 or (code == 403 and file_problem)):
                return PermanentError(msg, upload_gone=True)
            role = self.endpoint.role
            return http_error(
                code, msg, getattr(getattr(exc, "response", None), "headers", None),
                key_hint=(f"GOOGLE_API_KEY or video_reasoning_annotation.{role}.gemini.api_key "
                          f"({ROLE_KEY_ENV[role]} when set by the workflow)"),
                model_hint=(f"Model {self.settings.model!r} not found: check "
                            f"video_reasoning_annotation.{role}.gemini.model."))
        if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)):  # timeouts, dropped connections
            return RetryableError(f"{type(exc).__name__}: {exc or 'timed out'}")
        return exc

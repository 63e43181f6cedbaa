"""Model backends (Gemini through google-genai, OpenAI-compatible through openai).

One entry point, :meth:`ModelClient.ask`, which for one :class:`Request`:

1. answers from the response cache when the same request (backend fingerprint, prompt,
   media identity, answer schema) was answered before: reruns and resumed runs pay nothing;
2. sends the media the backend's way (Gemini: one Files API upload per video, reused by
   every call and run while valid, clipped with ``video_metadata`` offsets and ``fps``;
   OpenAI-compatible: a ``video_url`` data URL of the video or cut clip, or ``image_url``
   frames for media longer than ``long_video_threshold_sec``);
3. requests schema-bound JSON and validates it with the answer model; an invalid, empty or
   truncated answer is re-asked (with the validation error), a rate limit (honouring
   ``Retry-After``), 5xx, timeout or dropped connection is retried with exponential backoff
   and jitter, bounded by ``retry_attempts`` and ``retry_max_seconds``;
4. raises :class:`ModelCallError` naming video, step, backend/model and the last error
   when retries run out or the error is permanent (400, 401/403, 404), and
   :class:`BlockedError` for a safety block.

SDK retries are switched off so this is the one retry policy (the Gemini SDK's ignores
``Retry-After``); tenacity drives it.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import tenacity
from pydantic import ValidationError

from video_reasoning import media as mediamod
from video_reasoning.config import BackendSettings, WorkflowSettings, short_hash
from video_reasoning.models import Answer, parse_tao, strict_schema
from video_reasoning.store import atomic_write_json, read_json

try:  # the SDKs ship a fork of httpx under this name
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDK releases
    import httpx

log = logging.getLogger("video_reasoning")

#: Seconds before a Files API upload's expiry at which it is re-uploaded instead of reused.
UPLOAD_EXPIRY_MARGIN_S = 600
#: Longest wait for an uploaded video to become ACTIVE (s).
UPLOAD_ACTIVE_TIMEOUT_S = 600


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
    """A failed attempt worth repeating; ``retry_after`` (s) when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None, reask: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.reask = reask


class _Permanent(RuntimeError):
    def __init__(self, message: str, upload_gone: bool = False):
        super().__init__(message)
        self.upload_gone = upload_gone


@dataclass(frozen=True)
class MediaRef:
    """A video, or a window of it, to show the VLM.

    Attributes:
        probe: the source video's step-0 probe (path, SHA-256, duration, ...).
        start, end: window in seconds of the source; None means the whole video.
        clip_path: a local file already holding exactly that window (OpenAI backend sends
            it instead of cutting again); not part of the request's identity.
    """

    probe: mediamod.Probe
    start: float | None = None
    end: float | None = None
    clip_path: str | None = None

    @property
    def window(self) -> tuple[float, float]:
        return (self.start or 0.0, self.probe.duration if self.end is None else self.end)

    @property
    def length(self) -> float:
        s, e = self.window
        return e - s

    def identity(self) -> dict:
        return {"sha256": self.probe.sha256, "start": self.start, "end": self.end}


@dataclass
class Request:
    """One question to a model.

    ``check`` may raise ValueError on a parsed answer that is well-formed but wrong for
    this video (e.g. a time past its end); the message is sent back when re-asking.
    """

    prompt_key: str
    prompt: str
    answer_model: type[Answer]
    tao_format: bool = False
    media: MediaRef | None = None
    check: Optional[Callable[[Answer], None]] = None


@dataclass
class Reply:
    """A validated answer and what produced it (stored in step files and the cache)."""

    prompt_key: str
    prompt_sha: str
    backend: str
    model: str
    answer: dict
    raw: str
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 1

    def record(self) -> dict:
        """The provenance record written into step files."""
        return {"prompt_key": self.prompt_key, "prompt_sha": self.prompt_sha, "backend": self.backend,
                "model": self.model, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "attempts": self.attempts, "raw": self.raw}


class CallSlots:
    """A counting semaphore over processes: at most ``n`` holders at once, machine-wide.

    One lock file per slot under ``folder``, taken with ``fcntl.flock`` (released by the
    kernel if the holder dies, so a killed job never leaks a slot). Every job of a run
    shares the folder, so ``max_workers`` bounds the calls of all running jobs together
    while each job fires its independent calls side by side. Snakemake resources
    (``vlm_calls``/``llm_calls``) additionally bound how many model jobs run at once,
    which is what holds the cap on a cluster whose filesystem ignores locks.
    """

    def __init__(self, folder: str, n: int, poll_s: float = 0.02):
        os.makedirs(folder, exist_ok=True)
        self.paths = [os.path.join(folder, f"slot-{i}.lock") for i in range(max(1, n))]
        self.poll_s = poll_s

    @contextlib.contextmanager
    def hold(self):
        """Wait for a free slot and hold it for the ``with`` block."""
        while True:
            for path in random.sample(self.paths, len(self.paths)):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            time.sleep(self.poll_s * (0.5 + random.random()))


class _ThreadSlots:
    """In-process stand-in for :class:`CallSlots` (one call at a time)."""

    def __init__(self):
        self._sem = threading.Semaphore(1)

    @contextlib.contextmanager
    def hold(self):
        with self._sem:
            yield


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _retry_after(headers) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, if any (RFC 9110 §10.2.3)."""
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


class ModelClient:
    """Asks one backend (the ``vlm`` or the ``llm`` role) with caching and retries.

    Args:
        role: ``"vlm"`` or ``"llm"`` (names the API-key variable in errors).
        block: the role's backend settings.
        workflow: retry bounds and long-video sampling settings.
        api_key: the key (never written anywhere).
        cache_dir: ``<results_dir>/.cache``; answers go to ``responses/``, Gemini uploads
            to ``uploads/``.
        context: video id and step, used in error messages.
        slots: a slot is held during each request sent, so the calls of every client
            sharing the slots stay within ``max_workers``; cached answers take none. Default:
            one call at a time.
    """

    def __init__(self, role: str, block: BackendSettings, workflow: WorkflowSettings, api_key: str,
                 cache_dir: str, context: str = "", slots: CallSlots | None = None):
        self.role = role
        self.block = block
        self.workflow = workflow
        self.secrets = [api_key] if api_key else []
        self.cache_dir = cache_dir
        self.context = context
        self.fingerprint = block.fingerprint()
        self._lock = threading.Lock()
        self._slots = slots or _ThreadSlots()
        self.scratch = tempfile.mkdtemp(prefix="vra-")
        self._api_key = api_key
        self._sdk = None

    @property
    def _impl(self):
        """The SDK client, built on the first request the cache cannot answer (the SDK
        imports cost about half a second of CPU, which cached reruns need not pay)."""
        with self._lock:
            if self._sdk is None:
                self._sdk = (_Gemini if self.block.backend == "gemini" else _OpenAI)(self, self._api_key)
            return self._sdk

    def close(self) -> None:
        """Remove the scratch folder of cut clips and frames."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    # ------------------------------------------------------------------ public

    def ask(self, req: Request) -> Reply:
        """Answer ``req``, from the cache or the backend.

        Raises:
            ModelCallError: permanent error or retries exhausted (message names video, step,
                backend/model and the last error; it never contains the API key).
            BlockedError: the backend refused on safety grounds.
        """
        path = self._cache_path(req)
        cached = read_json(path)
        if cached is not None:  # fields of other versions of this record are ignored
            return Reply(**{k: v for k, v in cached.items() if k in Reply.__dataclass_fields__})
        reply = self._ask_with_retries(req)
        atomic_write_json(path, reply.__dict__)
        return reply

    def cache_key(self, req: Request) -> str:
        """SHA-256 (hex) of everything that determines the answer to ``req``: backend
        fingerprint, prompt, answer schema, media identity (content hash and window) and
        frame sampling. Not the API key, not timeouts."""
        material = {
            "backend": self.fingerprint,
            "prompt": req.prompt,
            "answer": req.answer_model.__name__,
            "format": "tao" if req.tao_format else strict_schema(req.answer_model),
            "media": req.media.identity() if req.media else None,
            "sampling": self._sampling(req.media) if req.media else None,
        }
        canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _cache_path(self, req: Request) -> str:
        key = self.cache_key(req)
        return os.path.join(self.cache_dir, "responses", key[:2], key + ".json")

    def is_cached(self, req: Request) -> bool:
        """True when ``req`` would be answered from the cache (no model call)."""
        return os.path.exists(self._cache_path(req))

    # ------------------------------------------------------------------ internals

    def _sampling(self, media: MediaRef) -> dict | None:
        wf = self.workflow
        if media.length <= wf.long_video_threshold_sec:
            return None
        return {"fps": mediamod.sample_fps(media.length, wf.long_video_sample_fps, wf.long_video_max_frames)}

    def _fail(self, req: Request, message: str, permanent: bool) -> ModelCallError:
        text = (f"{self.context}: {self.role} {self.block.backend}/{self.block.model} "
                f"prompt {req.prompt_key}: {message}")
        return ModelCallError(scrub(text, self.secrets), permanent=permanent)

    def _ask_with_retries(self, req: Request) -> Reply:
        wf = self.workflow
        reasks: list[tuple[str, str]] = []
        attempts = {"n": 0}

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryableError) and exc.retry_after is not None:
                return min(exc.retry_after, 120.0)
            if isinstance(exc, RetryableError) and exc.reask is not None:
                return 0.0
            return min(60.0, 0.5 * 2 ** (state.attempt_number - 1)) * (0.5 + random.random())

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            stop=tenacity.stop_after_attempt(wf.retry_attempts) | tenacity.stop_after_delay(wf.retry_max_seconds),
            wait=wait,
            reraise=True,
            before_sleep=lambda s: log.warning("%s: %s attempt %d failed (%s); retrying", self.context,
                                               req.prompt_key, s.attempt_number,
                                               scrub(str(s.outcome.exception()), self.secrets)),
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts["n"] += 1
                    return self._attempt(req, reasks, attempts["n"])
        except RetryableError as exc:
            raise self._fail(req, f"gave up after {attempts['n']} attempts; last error: {exc}", False) from None
        except BlockedError as exc:
            raise BlockedError(scrub(f"{self.context}: {req.prompt_key}: {exc}", self.secrets)) from None
        except _Permanent as exc:
            raise self._fail(req, str(exc), True) from None
        raise AssertionError("unreachable")

    def _attempt(self, req: Request, reasks: list[tuple[str, str]], n: int) -> Reply:
        try:
            impl = self._impl
            with self._slots.hold():
                text, usage, finish = impl.send(req, reasks)
        except _Permanent as exc:
            if exc.upload_gone and n == 1:
                self._impl.forget_upload(req.media)
                raise RetryableError(f"uploaded file is gone, re-uploading ({exc})") from None
            raise
        if finish == "blocked":
            raise BlockedError(f"the backend blocked the answer on safety grounds ({text or 'no text'})")
        if finish == "length":
            raise RetryableError("answer cut off at the output-token limit")
        if not text or not text.strip():
            raise RetryableError("empty answer")
        try:
            data = parse_tao(req.prompt_key, text) if req.tao_format else json.loads(_strip_fence(text))
            answer = req.answer_model.model_validate(data)
            if req.check:
                req.check(answer)
        except (ValueError, ValidationError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
            problem = _short_error(exc)
            if not req.tao_format:
                reasks[:] = [(text, problem)]
            raise RetryableError(f"invalid answer: {problem}", reask=problem) from None
        return Reply(prompt_key=req.prompt_key, prompt_sha=short_hash(req.prompt), backend=self.block.backend,
                     model=self.block.model, answer=answer.model_dump(mode="json"), raw=text,
                     input_tokens=usage[0], output_tokens=usage[1], attempts=n)

    # ------------------------------------------------------------------ media helpers

    def frames(self, media: MediaRef) -> list[tuple[float, str]]:
        """Sampled frames of ``media``'s window: ``(time_s, jpeg_path)`` pairs.

        Extracted once per video and window (one ffmpeg process) into
        ``<cache>/frames/<sha256>-<start>-<end>-<rate>/`` and reused by every call and job
        (step 0 and step 1a both show a long video's frames twice).
        """
        wf = self.workflow
        s, e = media.window
        rate = mediamod.sample_fps(e - s, wf.long_video_sample_fps, wf.long_video_max_frames)
        folder = os.path.join(self.cache_dir, "frames", f"{media.probe.sha256[:32]}-{s:.3f}-{e:.3f}-{rate:.6f}")
        with self._lock:
            index = read_json(os.path.join(folder, "frames.json"))
            if index is None:
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".tmp-")
                frames = mediamod.sample_frames(media.probe, s, e, wf.long_video_sample_fps,
                                                wf.long_video_max_frames, tmp)
                index = [[t, os.path.basename(path)] for t, path in frames]
                atomic_write_json(os.path.join(tmp, "frames.json"), index)
                try:
                    os.rename(tmp, folder)
                except OSError:  # another job finished the same frames first
                    shutil.rmtree(tmp, ignore_errors=True)
                    index = read_json(os.path.join(folder, "frames.json"))
            return [(t, os.path.join(folder, name)) for t, name in index]

    def clip(self, media: MediaRef) -> str:
        """A local file holding exactly ``media``'s window (cut on demand when not given)."""
        if media.clip_path:
            return media.clip_path
        if media.start is None and media.end is None:
            return media.probe.path
        with self._lock:
            out = tempfile.mkdtemp(dir=self.scratch)
        return mediamod.cut_clips(media.probe, [media.window], out)[0].path


def _strip_fence(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(x) for x in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5]]
        return "; ".join(parts)
    return str(exc)[:500]


def _reask_text(problem: str) -> str:
    return (f"Your previous answer was rejected: {problem}. Answer again with one JSON object that "
            "follows the schema exactly, and nothing else.")


# ====================================================================== Gemini


class _Gemini:
    """google-genai ``Client`` for the Gemini Developer API (endpoint overridable with the
    SDK's ``GOOGLE_GEMINI_BASE_URL`` variable)."""

    def __init__(self, owner: ModelClient, api_key: str):
        from google import genai
        from google.genai import types

        self.owner = owner
        self.types = types
        self.settings = owner.block.gemini
        timeout_ms = int(self.settings.timeout * 1000)
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(timeout=timeout_ms))

    # -- uploads --------------------------------------------------------
    def _upload_record_path(self, probe: mediamod.Probe) -> str:
        return os.path.join(self.owner.cache_dir, "uploads", probe.sha256 + ".json")

    def forget_upload(self, media: MediaRef | None) -> None:
        if media is not None:
            try:
                os.remove(self._upload_record_path(media.probe))
            except FileNotFoundError:
                pass

    def uploaded(self, probe: mediamod.Probe) -> dict:
        """The Files API record of ``probe``'s video, uploading it when none is valid.

        Records persist in ``<cache>/uploads/<sha256>.json`` (name, uri, mime type, expiry),
        so every call, job and run on the same video shares one upload until it expires.
        """
        path = self._upload_record_path(probe)
        with self.owner._lock:
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
            except Exception as exc:  # SDK and transport errors are classified below
                raise _classify_gemini(exc, self.owner) from None
            state = str(getattr(f.state, "value", f.state))
            if state == "FAILED":
                raise _Permanent(f"the Files API could not process {probe.path}: {f.error}")
            expires = f.expiration_time or (now + timedelta(hours=47))
            rec = {"name": f.name, "uri": f.uri, "mime_type": f.mime_type or probe.mime_type,
                   "expires": expires.isoformat(), "size_bytes": probe.size_bytes}
            atomic_write_json(path, rec)
            return rec

    # -- calls ----------------------------------------------------------
    def send(self, req: Request, reasks: list[tuple[str, str]]):
        t = self.types
        parts = []
        cfg = {"temperature": self.settings.temperature, "max_output_tokens": self.settings.max_output_tokens}
        if req.media is not None:
            rec = self.uploaded(req.media.probe)
            meta = {}
            if req.media.start is not None or req.media.end is not None:
                s, e = req.media.window
                meta.update(start_offset=f"{s:.3f}s", end_offset=f"{e:.3f}s")
            sampling = self.owner._sampling(req.media)
            if sampling:
                meta["fps"] = sampling["fps"]
            parts.append(t.Part(file_data=t.FileData(file_uri=rec["uri"], mime_type=rec["mime_type"]),
                                video_metadata=t.VideoMetadata(**meta) if meta else None))
            if self.settings.media_resolution:
                cfg["media_resolution"] = self.settings.media_resolution
        parts.append(t.Part(text=req.prompt))
        contents = [t.Content(role="user", parts=parts)]
        for previous, problem in reasks:
            contents.append(t.Content(role="model", parts=[t.Part(text=previous)]))
            contents.append(t.Content(role="user", parts=[t.Part(text=_reask_text(problem))]))
        if not req.tao_format:
            cfg["response_mime_type"] = "application/json"
            cfg["response_json_schema"] = strict_schema(req.answer_model)
        try:
            resp = self.client.models.generate_content(model=self.settings.model, contents=contents,
                                                       config=t.GenerateContentConfig(**cfg))
        except Exception as exc:  # SDK and transport errors are classified below
            raise _classify_gemini(exc, self.owner, uploaded=req.media is not None) from None
        usage = resp.usage_metadata
        tokens = ((usage.prompt_token_count or 0) if usage else 0, (usage.candidates_token_count or 0) if usage else 0)
        feedback = resp.prompt_feedback
        if feedback is not None and feedback.block_reason:
            return str(feedback.block_reason), tokens, "blocked"
        if not resp.candidates:
            return "", tokens, "stop"
        cand = resp.candidates[0]
        reason = str(getattr(cand.finish_reason, "value", cand.finish_reason) or "STOP")
        text = "".join(p.text or "" for p in (cand.content.parts if cand.content and cand.content.parts else [])
                       if not getattr(p, "thought", False))
        if reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"):
            return reason, tokens, "blocked"
        if reason == "MAX_TOKENS":
            return text, tokens, "length"
        return text, tokens, "stop"


def _classify_gemini(exc: Exception, owner: ModelClient, uploaded: bool = False) -> Exception:
    from google.genai import errors

    if isinstance(exc, (RetryableError, _Permanent)):
        return exc
    if isinstance(exc, errors.APIError):
        code = exc.code or 0
        headers = getattr(getattr(exc, "response", None), "headers", None)
        msg = f"HTTP {code} {exc.status or ''}: {exc.message or ''}".strip()
        if code in (408, 429) or code >= 500:
            return RetryableError(msg, retry_after=_retry_after(headers))
        if code in (401, 403) and not (uploaded and "file" in (exc.message or "").lower()):
            var = "VRA_" + owner.role.upper() + "_API_KEY"
            return _Permanent(f"{msg}. The API key was refused: check GOOGLE_API_KEY or "
                              f"video_reasoning_annotation.{owner.role}.gemini.api_key ({var} when set by the workflow).")
        if code == 404 and not uploaded:
            return _Permanent(f"{msg}. Model {owner.block.model!r} not found: check "
                              f"video_reasoning_annotation.{owner.role}.gemini.model.")
        if code in (403, 404) and uploaded:
            return _Permanent(msg, upload_gone=True)
        return _Permanent(msg)
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)):
        return RetryableError(f"{type(exc).__name__}: {exc or 'timed out'}")
    return exc


# ====================================================================== OpenAI-compatible


class _OpenAI:
    """openai ``OpenAI`` client against any OpenAI-compatible server (vLLM, NIM, Ollama)."""

    def __init__(self, owner: ModelClient, api_key: str):
        import openai

        self.owner = owner
        self.openai = openai
        self.settings = owner.block.openai
        self.client = openai.OpenAI(api_key=api_key or "EMPTY", base_url=self.settings.base_url or None,
                                    timeout=self.settings.timeout, max_retries=0)

    def forget_upload(self, media) -> None:
        return None

    def _media_content(self, media: MediaRef) -> list[dict]:
        if media.length > self.owner.workflow.long_video_threshold_sec:
            content = []
            for t_s, path in self.owner.frames(media):
                with open(path, "rb") as fh:
                    b64 = base64.b64encode(fh.read()).decode("ascii")
                content.append({"type": "text", "text": f"Frame at {t_s:.1f} s:"})
                content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}})
            return content
        path = self.owner.clip(media)
        mime = media.probe.mime_type if path == media.probe.path else "video/mp4"
        with open(path, "rb") as fh:
            b64 = base64.b64encode(fh.read()).decode("ascii")
        return [{"type": "video_url", "video_url": {"url": f"data:{mime};base64,{b64}"}}]

    def send(self, req: Request, reasks: list[tuple[str, str]]):
        content = self._media_content(req.media) if req.media is not None else []
        content.append({"type": "text", "text": req.prompt})
        messages = [{"role": "user", "content": content}]
        for previous, problem in reasks:
            messages.append({"role": "assistant", "content": previous})
            messages.append({"role": "user", "content": _reask_text(problem)})
        kwargs = {"model": self.settings.model_name, "messages": messages,
                  "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}
        if not req.tao_format:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": req.answer_model.__name__, "schema": strict_schema(req.answer_model), "strict": True}}
        o = self.openai
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except (o.APITimeoutError, o.APIConnectionError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        except o.APIStatusError as exc:
            code = exc.status_code
            msg = f"HTTP {code}: {getattr(exc, 'message', exc)}"
            if code in (408, 409, 429) or code >= 500:
                raise RetryableError(msg, retry_after=_retry_after(exc.response.headers)) from None
            if code in (401, 403):
                raise _Permanent(f"{msg}. The API key was refused: check OPENAI_API_KEY or "
                                 f"video_reasoning_annotation.{self.owner.role}.openai.api_key.") from None
            if code == 404:
                raise _Permanent(f"{msg}. Model {self.settings.model_name!r} or endpoint not found: check "
                                 f"video_reasoning_annotation.{self.owner.role}.openai.model_name and base_url.") from None
            raise _Permanent(msg) from None
        usage = resp.usage
        tokens = ((usage.prompt_tokens or 0) if usage else 0, (usage.completion_tokens or 0) if usage else 0)
        if not resp.choices:
            return "", tokens, "stop"
        choice = resp.choices[0]
        text = choice.message.content or "" if choice.message else ""
        if choice.finish_reason == "content_filter" or getattr(choice.message, "refusal", None):
            return getattr(choice.message, "refusal", None) or "content_filter", tokens, "blocked"
        if choice.finish_reason == "length":
            return text, tokens, "length"
        return text, tokens, "stop"

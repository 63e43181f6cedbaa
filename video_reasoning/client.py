"""Asking a model: one entry point, :meth:`ModelClient.ask`, which for one request

1. answers from the response cache when the same request was answered before
   (:mod:`video_reasoning.cache`): reruns and resumed runs pay nothing;
2. otherwise, unless the backend's circuit breaker is open (:mod:`video_reasoning.breaker`),
   holds one of the job's call slots of that backend (:mod:`video_reasoning.slots`) and sends it through
   the backend's adapter (:mod:`video_reasoning.providers`);
3. validates the answer with the key's answer model (and the request's ``check``): an
   invalid, empty or truncated answer is re-asked with the problem, failures are retried
   under the policy of :mod:`video_reasoning.retry`;
4. raises :class:`~video_reasoning.retry.ModelCallError` naming video, step, backend/model
   and the last error when retries run out or the error is permanent, and
   :class:`~video_reasoning.retry.BlockedError` for a safety block.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading

from pydantic import ValidationError

from video_reasoning.breaker import Breaker, CircuitOpen
from video_reasoning.cache import ResponseCache, request_key
from video_reasoning.config import BackendSettings, Price, WorkflowSettings
from video_reasoning.costs import Usage, cost_usd
from video_reasoning.keys import scrub
from video_reasoning.ledger import BudgetReached, Ledger
from video_reasoning.media import MediaPrep
from video_reasoning.models import parse_tao
from video_reasoning.providers import make_provider
from video_reasoning.providers.base import Endpoint, Finish, Provider, Request, Turn
from video_reasoning.records import CallRecord
from video_reasoning.retry import BlockedError, ModelCallError, PermanentError, RetryableError, call_with_retries
from video_reasoning.slots import JobSlots
from video_reasoning.store import short_hash

#: Re-asks a request's ``fix`` problems get before the answer is taken as it is.
FIX_REASKS = 2


class Reply(CallRecord):
    """A validated answer (the answer model's fields) with its provenance; what the cache keeps."""

    answer: dict

    def record(self) -> CallRecord:
        """The provenance written into step records."""
        return CallRecord.model_validate(self.model_dump(exclude={"answer"}))


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
    return str(exc)[:2000]


class ModelClient:
    """Asks one backend (the ``vlm`` or the ``llm`` role) with caching and retries.

    Args:
        role: ``"vlm"`` or ``"llm"`` (names the API-key settings in errors).
        block: the role's backend settings.
        workflow: retry bounds and long-video sampling settings.
        api_key: the key (never written anywhere).
        cache_dir: ``<results_dir>/.cache``: answers in ``responses/``, frames in
            ``frames/``, Gemini uploads in ``uploads/``.
        context: video id and step, used in error messages.
        slots: a slot is held during each request sent, so the calls of every client
            sharing the slots stay within ``max_workers``; cached answers take none.
            Default: one call at a time.
        step: the step the calls are for (how the cost ledger files them).
        price: the model's price (None: unknown, cost not counted in USD).

    Every attempt sent and every answer from the cache is counted in the cost ledger
    (:mod:`video_reasoning.ledger`); before each attempt, ``workflow.max_cost_usd`` is checked.
    """

    def __init__(self, role: str, block: BackendSettings, workflow: WorkflowSettings, api_key: str,
                 cache_dir: str, context: str = "", slots=None, step: str = "", price: Price | None = None):
        self.role = role
        self.step = step or role
        self.price = price
        self.ledger = Ledger(cache_dir)
        self._from_cache = 0
        self.block = block
        self.workflow = workflow
        self.secrets = [api_key] if api_key else []
        self.context = context
        self.fingerprint = block.fingerprint()
        self.cache = ResponseCache(os.path.join(cache_dir, "responses"))
        self.scratch = tempfile.mkdtemp(prefix="vra-")
        frames_only = block.backend == "openai" and block.openai.video_input == "frames"
        self.media = MediaPrep(cache_dir, self.scratch, 0.0 if frames_only else workflow.long_video_threshold_sec,
                               workflow.long_video_sample_fps, workflow.long_video_max_frames)
        self._endpoint = Endpoint(role, api_key, cache_dir, self.media)
        self._slots = slots or JobSlots()
        self.breaker = Breaker(cache_dir, role)
        self._provider: Provider | None = None
        self._provider_lock = threading.Lock()

    @property
    def provider(self) -> Provider:
        """The backend's adapter, built on the first request the cache cannot answer (the
        SDK imports cost about half a second of CPU, which cached reruns need not pay)."""
        with self._provider_lock:
            if self._provider is None:
                self._provider = make_provider(self.block.backend, self.block.provider, self._endpoint)
            return self._provider

    def close(self) -> None:
        """Count the answers served from the cache in the ledger (one update, not one per
        answer) and remove the scratch folder of cut clips."""
        if self._from_cache:
            self.ledger.record(self.step, sent=False, count=self._from_cache)
            self._from_cache = 0
        shutil.rmtree(self.scratch, ignore_errors=True)

    # ------------------------------------------------------------------ public

    def ask(self, req: Request) -> Reply:
        """Answer ``req``, from the cache or the backend.

        Raises:
            ModelCallError: permanent error or retries exhausted (message names video, step,
                backend/model and the last error; it never contains the API key).
            BlockedError: the backend refused on safety grounds.
            CircuitOpen: the backend's breaker is open (no call made).
        """
        key = self.cache_key(req)
        cached = self.cache.get(key)
        if cached is not None:  # fields of other versions of this record are ignored
            with self._provider_lock:
                self._from_cache += 1  # counted in the ledger at close()
            return Reply.model_validate({**cached, "from_cache": True})
        try:
            self.breaker.check()
        except CircuitOpen as exc:
            raise CircuitOpen(f"{self.context}: {exc}") from None
        reply = self._ask_backend(req)
        self.breaker.success()
        self.ledger.answered(self.step)
        self.cache.put(key, reply.model_dump(mode="json"))
        return reply

    def cache_key(self, req: Request) -> str:
        """SHA-256 (hex) of everything that determines the answer to ``req``: backend
        fingerprint, the video it is about, prompt, answer schema, media identity (content
        hash and window) and frame sampling. Not the API key, not timeouts."""
        return request_key({
            "backend": self.fingerprint,
            "video": req.video,
            "prompt": req.prompt,
            "answer": req.answer_model.__name__,
            "format": "tao" if req.tao_format else req.answer_model.model_json_schema(),
            "media": req.media.identity() if req.media else None,
            "sampling": self.media.sampling(req.media) if req.media else None,
        })

    def is_cached(self, req: Request) -> bool:
        """True when ``req`` would be answered from the cache (no model call)."""
        return self.cache_key(req) in self.cache

    # ------------------------------------------------------------------ internals

    def _where(self, req: Request) -> str:
        return f"{self.context}: {self.role} {self.block.backend}/{self.block.model} prompt {req.prompt_key}"

    def _ask_backend(self, req: Request) -> Reply:
        reasks: list[Turn] = []
        sent: list[str] = []  # every problem sent back, in order (kept in the reply's record)
        tries = {"n": 0}
        paid = {"usage": Usage(), "cost": 0.0 if self.price else None}  # over all attempts

        def attempt(n: int) -> Reply:
            tries["n"] = n
            return self._attempt(req, reasks, n, sent, paid)

        def describe(n: int, exc: BaseException) -> str:
            return scrub(f"{self.context}: {req.prompt_key} attempt {n} failed ({exc}); retrying", self.secrets)

        try:
            reply, _ = call_with_retries(attempt, self.workflow.retry_attempts, self.workflow.retry_max_seconds,
                                         describe)
            return reply
        except RetryableError as exc:
            message = f"{self._where(req)}: gave up after {tries['n']} attempts; last error: {exc}"
            raise ModelCallError(scrub(message, self.secrets)) from None
        except BlockedError as exc:
            raise BlockedError(scrub(f"{self.context}: {req.prompt_key}: {exc}", self.secrets)) from None
        except BudgetReached as exc:
            raise BudgetReached(f"{self.context}: {exc}") from None
        except CircuitOpen as exc:
            raise CircuitOpen(f"{self.context}: {exc}") from None
        except PermanentError as exc:
            self.breaker.failure(scrub(str(exc), self.secrets)[:200], req.video)
            raise ModelCallError(scrub(f"{self._where(req)}: {exc}", self.secrets), permanent=True) from None

    def _attempt(self, req: Request, reasks: list[Turn], n: int, sent: list[str], paid: dict) -> Reply:
        provider = self.provider
        try:
            with self._slots.hold():
                # checked with the slot held, right before sending: a call that waited for a
                # slot does not start once the breaker is open or the budget is reached
                self.breaker.check()
                self.ledger.check_budget(self.workflow.max_cost_usd)
                got = provider.send(req, reasks)
            self._pay(got, req, paid)
        except PermanentError as exc:
            if exc.upload_gone and n == 1:
                provider.forget_upload(req.media)
                raise RetryableError(f"uploaded file is gone, re-uploading ({exc})") from None
            raise
        if got.finish is Finish.BLOCKED:
            raise BlockedError(f"the backend blocked the answer on safety grounds ({got.text or 'no text'})")
        if got.finish is Finish.LENGTH:
            raise RetryableError("answer cut off at the output-token limit")
        if not got.text.strip():
            raise RetryableError("empty answer")
        try:
            if req.tao_format:
                answer = req.answer_model.model_validate(parse_tao(req.answer_model, got.text))
            else:
                answer = req.answer_model.model_validate(json.loads(_strip_fence(got.text)))
            if req.check:
                req.check(answer)
            fixes = req.fix(answer) if req.fix and len(sent) < FIX_REASKS else []
            if fixes:
                raise ValueError("; ".join(fixes))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
            problem = _short_error(exc)
            sent.append(problem)
            if not req.tao_format:
                reasks[:] = [Turn(got.text, problem)]
            raise RetryableError(f"invalid answer: {problem}", reask=problem) from None
        usage = paid["usage"]
        return Reply(prompt_key=req.prompt_key, prompt_sha=short_hash(req.prompt), backend=self.block.backend,
                     model=self.block.model, answer=answer.model_dump(mode="json"), raw=got.text,
                     input_tokens=usage.input, cached_input_tokens=usage.cached_input, output_tokens=usage.output,
                     cost_usd=paid["cost"], attempts=n, reasks=sent)

    def _pay(self, got, req: Request, paid: dict) -> None:
        """Count one answered attempt's tokens and USD in ``paid`` and in the ledger."""
        usage = Usage(got.input_tokens, got.cached_input_tokens, got.output_tokens)
        cost = cost_usd(usage, self.price)
        paid["usage"] = paid["usage"] + usage
        if paid["cost"] is not None and cost is not None:
            paid["cost"] += cost
        media = req.media.window if req.media else None
        self.ledger.record(self.step, sent=True, usage=usage, cost=cost,
                           detail={"role": self.role, "model": self.block.model, "prompt_key": req.prompt_key,
                                   "video": req.video[:16], "media_window_s": media})

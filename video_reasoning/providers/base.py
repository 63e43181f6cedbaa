"""What every provider adapter takes and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Protocol

from video_reasoning.media import MediaPrep, MediaRef
from video_reasoning.models import Answer


@dataclass
class Request:
    """One question to a model.

    ``check`` may raise ValueError on a parsed answer that is well-formed but wrong for
    this video (e.g. a time past its end); the message is sent back when re-asking, until
    the retries run out. ``fix`` returns problems worth a few re-asks but not a failure
    (e.g. a length-outlier option): they are sent back at most ``FIX_REASKS`` times, then
    the answer is taken as it is.
    ``video`` names the video the request is about (its SHA-256): part of the cache key, so
    two videos never share an answer, even when a text-only prompt is the same for both.
    """

    prompt_key: str
    prompt: str
    answer_model: type[Answer]
    tao_format: bool = False
    media: MediaRef | None = None
    check: Optional[Callable[[Answer], None]] = None
    fix: Optional[Callable[[Answer], list[str]]] = None
    video: str = ""


class Finish(str, Enum):
    """Why the model stopped: done, at its output limit, or refused (safety)."""

    STOP = "stop"
    LENGTH = "length"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class ProviderReply:
    """What one attempt returned: the text (for a block: the reason), tokens used as the
    backend reported them (``cached_input_tokens`` is part of ``input_tokens``; thinking
    tokens are part of ``output_tokens``), why it stopped."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    finish: Finish = Finish.STOP


@dataclass
class Turn:
    """A previous invalid answer and the problem found in it, sent back when re-asking."""

    answer: str
    problem: str = field(default="")

    def follow_up(self) -> str:
        """The user turn that asks again."""
        return (f"Your previous answer was rejected: {self.problem}. Answer again with one JSON object that "
                "follows the schema exactly, and nothing else.")


@dataclass(frozen=True)
class Endpoint:
    """What an adapter needs besides its own settings.

    Attributes:
        role: ``vlm`` or ``llm`` (named in error messages: which spec keys to fix).
        api_key: the key (never written anywhere).
        cache_dir: ``<results_dir>/.cache`` (Gemini keeps its upload records there).
        media: prepares frames and clips, and says how long media is sampled.
    """

    role: str
    api_key: str
    cache_dir: str
    media: MediaPrep


class Provider(Protocol):
    """One backend's adapter: sends one attempt of a request, classifies its errors.

    ``send`` raises :class:`~video_reasoning.retry.RetryableError` or
    :class:`~video_reasoning.retry.PermanentError`; it never retries by itself.
    """

    def send(self, request: Request, reasks: list[Turn]) -> ProviderReply:
        """One attempt: the request, then each earlier invalid answer and its problem."""
        ...

    def forget_upload(self, media: MediaRef | None) -> None:
        """Drop what the provider holds of ``media``'s video (the server lost it)."""
        ...

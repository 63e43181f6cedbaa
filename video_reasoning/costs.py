"""What calls cost: token usage, prices and the media-token rates the estimate uses.

Prices are USD per 1M tokens, per model: ``input`` (uncached input: text, image, video),
``cached_input`` (input the provider served from its cache) and ``output`` (answer and
thinking tokens). :data:`DEFAULT_PRICES` holds the default models' list prices; the spec's
``pricing`` table (ours) adds models or overrides them. A model without a price has cost
``None`` ("unknown"), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from video_reasoning.config import Price, Settings

#: Where :data:`DEFAULT_PRICES` come from.
PRICES_SOURCE = ("Gemini API list price for gemini-3.1-flash-lite (also served as -preview): $0.25 input "
                 "(text, image, video), $0.025 cached input, $1.50 output per 1M tokens; read 2026-11-22 from "
                 "https://ai.google.dev/gemini-api/docs/pricing as mirrored by https://vercel.com/ai-gateway/"
                 "models/gemini-3.1-flash-lite and https://docs.apiyi.com/models/gemini-3-1-flash-lite. Audio "
                 "input is billed higher ($0.50); the table does not split it out.")

#: Default prices (USD per 1M tokens) of the default models; see :data:`PRICES_SOURCE`.
DEFAULT_PRICES: dict[str, Price] = {
    "gemini-3.1-flash-lite-preview": Price(input=0.25, cached_input=0.025, output=1.50),
    "gemini-3.1-flash-lite": Price(input=0.25, cached_input=0.025, output=1.50),
}


@dataclass(frozen=True)
class Usage:
    """Tokens of one or more attempts, as the backend reported them. ``cached_input`` is
    part of ``input`` (Gemini ``cached_content_token_count`` within ``prompt_token_count``;
    OpenAI ``prompt_tokens_details.cached_tokens`` within ``prompt_tokens``); ``output``
    includes thinking tokens, which are billed as output."""

    input: int = 0
    cached_input: int = 0
    output: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.cached_input + other.cached_input, self.output + other.output)


def prices(settings: Settings) -> dict[str, Price]:
    """The price table of a run: :data:`DEFAULT_PRICES`, then the spec's ``pricing``."""
    return {**DEFAULT_PRICES, **settings.pricing}


def cost_usd(usage: Usage, price: Optional[Price]) -> Optional[float]:
    """USD of ``usage`` at ``price``; None when the price is unknown."""
    if price is None:
        return None
    uncached = max(usage.input - usage.cached_input, 0)
    return (uncached * price.input + usage.cached_input * price.cached_input + usage.output * price.output) / 1e6


# ---------------------------------------------------------------- media tokens (Gemini)

#: Gemini's default video sampling rate (frames/s) when the request sets no ``fps``.
GEMINI_DEFAULT_FPS = 1.0
#: Audio tokens per second of media with sound (all Gemini models).
GEMINI_AUDIO_TOKENS_PER_S = 32
#: Tokens per video frame by model generation and ``media_resolution``; source: Gemini API
#: docs, "Media resolution" (token counts) and "Video understanding", read 2026-11-22.
GEMINI_FRAME_TOKENS = {
    "3": {"MEDIA_RESOLUTION_LOW": 70, "MEDIA_RESOLUTION_MEDIUM": 70, "MEDIA_RESOLUTION_HIGH": 280,
          "MEDIA_RESOLUTION_UNSPECIFIED": 70},
    "2": {"MEDIA_RESOLUTION_LOW": 66, "MEDIA_RESOLUTION_MEDIUM": 258, "MEDIA_RESOLUTION_HIGH": 258,
          "MEDIA_RESOLUTION_UNSPECIFIED": 258},
}


def gemini_frame_tokens(model: str, media_resolution: str) -> int:
    """Tokens Gemini bills per video frame for ``model`` at ``media_resolution``
    (:data:`GEMINI_FRAME_TOKENS`; models other than 2.x are counted as Gemini 3)."""
    generation = "2" if model.startswith("gemini-2") else "3"
    return GEMINI_FRAME_TOKENS[generation][media_resolution]


def gemini_media_tokens(model: str, media_resolution: str, seconds: float, fps: float, audio: bool) -> int:
    """Input tokens of ``seconds`` of video sampled at ``fps`` (frames/s), plus its audio."""
    frames = max(1, round(seconds * fps))
    return frames * gemini_frame_tokens(model, media_resolution) + (
        round(seconds * GEMINI_AUDIO_TOKENS_PER_S) if audio else 0)

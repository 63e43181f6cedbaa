"""Provider adapters, one per backend, behind one protocol (:class:`base.Provider`).

:data:`PROVIDERS` maps the spec's ``backend`` value to its adapter; an adapter imports its
SDK when built, so runs answered from the response cache never pay for the import.
"""

from __future__ import annotations

from video_reasoning.providers.base import Endpoint, Provider
from video_reasoning.providers.gemini import GeminiProvider
from video_reasoning.providers.openai_compat import OpenAIProvider

PROVIDERS = {"gemini": GeminiProvider, "openai": OpenAIProvider}


def make_provider(backend: str, settings, endpoint: Endpoint) -> Provider:
    """The adapter of ``backend`` (``gemini``/``openai``) with its settings block."""
    return PROVIDERS[backend](settings, endpoint)

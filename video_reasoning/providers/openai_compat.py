"""Any OpenAI-compatible server (vLLM, NVIDIA NIM, Ollama) through openai's ``OpenAI`` client.

Media up to ``long_video_threshold_sec`` goes as a ``video_url`` data URL of the video or of
the window's clip; longer media, and all media with ``video_input: frames`` (servers that
take images only, such as Ollama), as ``image_url`` frames, each after a "Frame at t s:" line.
The answer schema is the SDK's own strict conversion of the answer model
(``openai.lib._pydantic.to_strict_json_schema``, what ``chat.completions.parse`` sends):
OpenAI's ``strict: true`` requires every property listed in ``required`` and
``additionalProperties: false`` on every object; servers that do not enforce strict mode
(vLLM, Ollama) accept the same schema.
"""

from __future__ import annotations

import base64

from video_reasoning.config import OpenAISettings
from video_reasoning.media import MediaRef
from video_reasoning.providers.base import Endpoint, Finish, ProviderReply, Request, Turn
from video_reasoning.retry import RetryableError, http_error


class OpenAIProvider:
    """openai ``OpenAI`` client for one role."""

    def __init__(self, settings: OpenAISettings, endpoint: Endpoint):
        import openai
        from openai.lib._pydantic import to_strict_json_schema

        self.openai = openai
        self.strict_schema = to_strict_json_schema
        self.settings = settings
        self.endpoint = endpoint
        self.client = openai.OpenAI(api_key=endpoint.api_key or "EMPTY", base_url=settings.base_url or None,
                                    timeout=settings.timeout, max_retries=0)

    def forget_upload(self, media: MediaRef | None) -> None:
        """Nothing to forget: media goes inline with each request."""

    def _media_content(self, media: MediaRef) -> list[dict]:
        prep = self.endpoint.media
        if prep.is_long(media):
            content = []
            for t_s, path in prep.frames(media):
                with open(path, "rb") as fh:
                    b64 = base64.b64encode(fh.read()).decode("ascii")
                content.append({"type": "text", "text": f"Frame at {t_s:.1f} s:"})
                content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}})
            return content
        path = prep.clip(media)
        mime = media.probe.mime_type if path == media.probe.path else "video/mp4"
        with open(path, "rb") as fh:
            b64 = base64.b64encode(fh.read()).decode("ascii")
        return [{"type": "video_url", "video_url": {"url": f"data:{mime};base64,{b64}"}}]

    def send(self, request: Request, reasks: list[Turn]) -> ProviderReply:
        """One ``chat.completions.create`` call: media, prompt, earlier invalid answers."""
        content = self._media_content(request.media) if request.media is not None else []
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "user", "content": content}]
        for turn in reasks:
            messages.append({"role": "assistant", "content": turn.answer})
            messages.append({"role": "user", "content": turn.follow_up()})
        kwargs = {"model": self.settings.model_name, "messages": messages,
                  "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}
        if not request.tao_format:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.answer_model.__name__, "schema": self.strict_schema(request.answer_model),
                "strict": True}}
        o = self.openai
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except (o.APITimeoutError, o.APIConnectionError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        except o.APIStatusError as exc:
            role = self.endpoint.role
            raise http_error(
                exc.status_code, f"HTTP {exc.status_code}: {getattr(exc, 'message', exc)}", exc.response.headers,
                key_hint=f"OPENAI_API_KEY or video_reasoning_annotation.{role}.openai.api_key",
                model_hint=(f"Model {self.settings.model_name!r} or endpoint not found: check "
                            f"video_reasoning_annotation.{role}.openai.model_name and base_url.")) from None
        usage = resp.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        tokens = {"input_tokens": (usage.prompt_tokens or 0) if usage else 0,
                  "cached_input_tokens": (getattr(details, "cached_tokens", None) or 0) if details else 0,
                  "output_tokens": (usage.completion_tokens or 0) if usage else 0}
        if not resp.choices:
            return ProviderReply("", **tokens)
        choice = resp.choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None) if message else None
        if choice.finish_reason == "content_filter" or refusal:
            return ProviderReply(refusal or "content_filter", finish=Finish.BLOCKED, **tokens)
        text = (message.content or "") if message else ""
        return ProviderReply(text, finish=Finish.LENGTH if choice.finish_reason == "length" else Finish.STOP, **tokens)

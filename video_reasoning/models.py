"""Answer models: what each model call must answer, and how TAO free text maps onto it.

Each prompt key has a pydantic answer model (the table is
:data:`video_reasoning.prompts.PROMPT_KEYS`). Its JSON schema is sent to the backend and
every answer is validated against it; an invalid answer is re-asked with the validation
error. With a TAO ``prompts_module`` the model answers in TAO's free-text format
(``=====`` blocks with ``Question:``/``Answer:``/``Reasoning:``), which :func:`parse_tao`
maps onto the same models: each item model says how one TAO block becomes an item.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator


class Answer(BaseModel):
    """Base of every answer model: unknown fields are invalid (and re-asked)."""

    model_config = ConfigDict(extra="forbid")


class FilterAnswer(Answer):
    """Step 0: is the video usable for annotation, and why."""

    suitable: bool
    reason: str


class ClassificationAnswer(Answer):
    """Step 0 (auto mode): what the VLM saw, its reasoning, and the anomaly/normal label."""

    observation: str
    reasoning: str
    label: Literal["anomaly", "normal"]


class CaptionAnswer(Answer):
    """A caption of the whole video, a chunk or the highlight clip."""

    caption: str = Field(min_length=1)


class TimedEvent(Answer):
    """An event with its start and end in seconds from the video's start (end >= start)."""

    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_sec < self.start_sec:
            raise ValueError(f"end_sec {self.end_sec} is before start_sec {self.start_sec}")
        return self


class DenseCaptionAnswer(Answer):
    """Step 1a: the video's events in time order."""

    events: list[TimedEvent] = Field(min_length=1)


class ScreeningAnswer(Answer):
    """Step 0 in one call (ours, auto mode): suitable or not and why, and what the VLM saw,
    its reasoning and the anomaly/normal label."""

    suitable: bool
    reason: str
    observation: str
    reasoning: str
    label: Literal["anomaly", "normal"]


class CaptionsAnswer(Answer):
    """Step 1a in one call (ours): the global caption and the video's events in time order."""

    caption: str = Field(min_length=1)
    events: list[TimedEvent] = Field(min_length=1)


class HighlightTimeAnswer(Answer):
    """Step 1c: the moment of the anomaly (s from the start) and the evidence for it."""

    evidence: str
    anomaly_time_sec: float = Field(ge=0)


class DescriptionAnswer(Answer):
    """Step 2: setting, actors, timeline, anomaly (empty for normal videos) and summary."""

    setting: str
    actors: list[str]
    timeline: list[TimedEvent] = Field(min_length=1)
    anomaly: str
    summary: str = Field(min_length=1)


# ---------------------------------------------------------------- QA items

_TIME = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?|\d+(?:\.\d+)?)"


def seconds(text: str) -> float:
    """Seconds in ``SS``, ``MM:SS`` or ``H:MM:SS`` (fractions allowed)."""
    total = 0.0
    for p in text.split(":"):
        total = total * 60 + float(p)
    return total


class OpenItem(Answer):
    """A question with its answer and reasoning (open-ended QA types)."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)

    @classmethod
    def from_tao(cls, block: dict) -> dict:
        """Fields of one item from a TAO block ``{question, answer, reasoning}``.

        Raises:
            ValueError: the block does not hold what the item needs.
        """
        return {"question": block["question"], "answer": block["answer"],
                "reasoning": block["reasoning"] or block["answer"]}


class MCQItem(Answer):
    """A multiple-choice question: four distinct options, the correct one's letter, reasoning."""

    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=4, max_length=4)
    correct_option: Literal["A", "B", "C", "D"]
    reasoning: str = Field(min_length=1)

    @field_validator("options")
    @classmethod
    def _distinct(cls, v):
        cleaned = [re.sub(r"^\s*[A-D][.)]\s+", "", o).strip() for o in v]
        if any(not o for o in cleaned) or len(set(cleaned)) != 4:
            raise ValueError("the four options must be non-empty and distinct")
        return cleaned

    @classmethod
    def from_tao(cls, block: dict) -> dict:
        """Options from ``A.``-``D.`` lines under the question; the answer's first letter."""
        q, _, rest = block["question"].partition("\nA.")
        options = re.findall(r"^[A-D]\.\s*(.+)$", "A." + rest, re.M)
        return {"question": q.strip(), "options": options, "correct_option": block["answer"].strip()[:1].upper(),
                "reasoning": block["reasoning"] or block["answer"]}


class BCQItem(Answer):
    """A yes/no question with its answer, a short explanation and the reasoning."""

    question: str = Field(min_length=1)
    answer: Literal["Yes", "No"]
    explanation: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)

    @classmethod
    def from_tao(cls, block: dict) -> dict:
        """Yes/No from the answer's first word; the whole answer as the explanation."""
        text = block["answer"].lower()
        if not text.startswith(("yes", "no")):
            raise ValueError("a yes/no answer must start with Yes or No")
        return {"question": block["question"], "answer": "Yes" if text.startswith("yes") else "No",
                "explanation": block["answer"], "reasoning": block["reasoning"] or block["answer"]}


class WindowItem(Answer):
    """A question about a time window (start/end in s) with its answer and reasoning."""

    question: str = Field(min_length=1)
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    answer: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)

    @classmethod
    def from_tao(cls, block: dict) -> dict:
        """The window from the first two times (``MM:SS`` or seconds) in the question."""
        times = re.findall(_TIME, block["question"])
        secs = sorted(seconds(t) for t in times[:2]) if len(times) >= 2 else [0.0, 0.0]
        return {"question": block["question"], "start_sec": secs[0], "end_sec": secs[1],
                "answer": block["answer"], "reasoning": block["reasoning"] or block["answer"]}


class LocalizationItem(Answer):
    """When an event happens: start and end in seconds (end > start), with the reasoning."""

    question: str = Field(min_length=1)
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    reasoning: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_sec <= self.start_sec:
            raise ValueError(f"end_sec {self.end_sec} must be after start_sec {self.start_sec}")
        return self

    @classmethod
    def from_tao(cls, block: dict) -> dict:
        """TAO's ``Start_Time: MM:SS, End_Time: MM:SS`` answer, in seconds."""
        m = re.search(rf"Start[_ ]Time\s*:\s*{_TIME}\s*,?\s*End[_ ]Time\s*:\s*{_TIME}", block["answer"], re.I)
        if not m:
            raise ValueError("temporal localization answer must read 'Start_Time: MM:SS, End_Time: MM:SS'")
        return {"question": block["question"], "start_sec": seconds(m.group(1)), "end_sec": seconds(m.group(2)),
                "reasoning": block["reasoning"] or block["answer"]}


class LongMCQItem(MCQItem):
    """(ours) A long-video multiple-choice question in the manner of LongVideo-Reason (seed
    002): one of its four reasoning kinds, and the events (two or more, with times) the
    question connects; the reasoning walks through them in time order."""

    kind: Literal["temporal", "goal", "spatial", "plot"]
    evidence: list[TimedEvent] = Field(min_length=2)


@functools.cache
def items_answer(item: type[Answer], max_items: int = 16) -> type[Answer]:
    """The answer model of a QA call: ``{"items": [item, ...]}`` with 1 to ``max_items``
    items, named after the item model (``MCQItem`` -> ``MCQAnswer``); its ``item_model``
    attribute is ``item``."""
    name = item.__name__.removesuffix("Item") + "Answer"
    model = create_model(name, __base__=Answer, items=(list[item], Field(min_length=1, max_length=max_items)))
    model.item_model = item
    return model


MCQAnswer = items_answer(MCQItem)


# ---------------------------------------------------------------- long videos (ours)


class ClipCaption(Answer):
    """The caption of one clip, by the number the prompt gives it."""

    clip: int
    caption: str = Field(min_length=1)


class ClipCaptionsAnswer(Answer):
    """Captions of consecutive clips of a long video, one per clip the prompt lists."""

    captions: list[ClipCaption] = Field(min_length=1)


class SegmentSummaryAnswer(Answer):
    """A summary of one segment (e.g. five minutes) of a long video's timeline."""

    summary: str = Field(min_length=1)


class Rewrite(Answer):
    """One reasoning trace rewritten, by the item's id in the prompt."""

    id: int
    reasoning: str = Field(min_length=1)


class ReformatAnswer(Answer):
    """The reasoning-reformat pass: every item's reasoning rewritten."""

    rewrites: list[Rewrite] = Field(min_length=1)


# ---------------------------------------------------------------- verification answers


class BlindChoice(Answer):
    """One item of a blind probe: the letter chosen for item ``id``."""

    id: int
    letter: Literal["A", "B", "C", "D", "E"]


class BlindProbeAnswer(Answer):
    """Verification, blind probe (LLM, no video): one letter per listed item."""

    answers: list[BlindChoice]


class GroundedItem(Answer):
    """One item re-answered from the video: a letter, Yes/No, ``start-end`` seconds or free text."""

    id: int
    answer: str = Field(min_length=1)


class GroundedAnswer(Answer):
    """Verification, grounded re-answer (VLM, shown the video): one answer per listed item."""

    answers: list[GroundedItem]


class Verdict(Answer):
    """The judge on one open-ended item: is the answer supported by what the VLM saw, and
    does the reasoning lead to it."""

    id: int
    supported: bool
    reasoning_leads_to_answer: bool
    note: str


class JudgeAnswer(Answer):
    """Verification, judge (LLM): one verdict per listed item."""

    verdicts: list[Verdict]


# ---------------------------------------------------------------- TAO free-text answers

_BLOCK_SPLIT = re.compile(r"\n?={5,}\n?")
_HEAD = re.compile(r"^(?:\d+\.\s*)?(Multiple-Choice Question|Open-ended Question|Question)\s*:\s*(.*)$",
                   re.IGNORECASE | re.DOTALL)


def _tao_blocks(text: str) -> list[dict]:
    parts = [p.strip() for p in _BLOCK_SPLIT.split(text.strip()) if p.strip()]
    items, cur = [], None
    for part in parts:
        head = _HEAD.match(part)
        if head:
            cur = {"question": head.group(2).strip(), "answer": "", "reasoning": ""}
            items.append(cur)
            for label in ("answer", "reasoning"):  # answer/reasoning written inside the block
                m = re.search(rf"^{label}\s*:\s*(.*?)(?=^\w+\s*:|\Z)", cur["question"], re.I | re.M | re.S)
                if m:
                    cur[label] = m.group(1).strip()
                    cur["question"] = cur["question"][: m.start()].strip()
        elif cur is not None:
            m = re.match(r"^(Answer|Reasoning)\s*:\s*(.*)$", part, re.I | re.S)
            if m:
                body = m.group(2).strip()
                if m.group(1).lower() == "answer":
                    r = re.search(r"\nReasoning\s*:\s*(.*)$", body, re.I | re.S)
                    if r:
                        cur["reasoning"] = r.group(1).strip()
                        body = body[: r.start()].strip()
                    cur["answer"] = body
                else:
                    cur["reasoning"] = body
    return [i for i in items if i["question"] and i["answer"]]


def parse_tao(model: type[Answer], text: str) -> dict:
    """Map a TAO-format free-text answer onto ``model``'s fields.

    Returns a dict for ``model.model_validate``. QA answers (``items``) are split into
    TAO's ``=====`` blocks, each mapped by the item model's ``from_tao``.

    Raises:
        ValueError: the text does not hold what the model needs (re-asked by the caller).
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("empty answer")
    if model is FilterAnswer:
        return {"suitable": text.lower().startswith("yes"), "reason": text}
    if model is ClassificationAnswer:
        last = text.splitlines()[-1].strip().strip("*.\"' ").lower()
        if last not in ("anomaly", "normal"):
            raise ValueError("the last line must be exactly 'Anomaly' or 'Normal'")
        return {"observation": text, "reasoning": text, "label": last}
    if model is CaptionAnswer:
        return {"caption": text}
    if model is DenseCaptionAnswer:
        return {"events": [{"start_sec": 0.0, "end_sec": 0.0, "description": text}]}
    if model is DescriptionAnswer:
        return {"setting": "", "actors": [], "timeline": [{"start_sec": 0.0, "end_sec": 0.0, "description": text}],
                "anomaly": "", "summary": text}
    if model is HighlightTimeAnswer:
        m = re.search(r"\d+(?:\.\d+)?", text)
        if not m:
            raise ValueError("no number of seconds in the answer")
        return {"evidence": text, "anomaly_time_sec": float(m.group(0))}
    item = getattr(model, "item_model", None)
    if item is None:
        raise ValueError(f"no TAO free-text mapping for {model.__name__}")
    blocks = _tao_blocks(text)
    if not blocks:
        raise ValueError("no 'Question: ... ===== Answer: ... ===== Reasoning: ...' block found")
    return {"items": [item.from_tao(b) for b in blocks]}

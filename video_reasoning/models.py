"""Output models: what each model call must answer, and how TAO free text maps onto it.

Each prompt key has a pydantic answer model. Its JSON schema is sent to the backend
(Gemini ``response_json_schema``, OpenAI ``response_format`` json_schema) and every answer
is validated against it; an invalid answer is re-asked with the validation error. With a
TAO ``prompts_module`` the model answers in TAO's free-text format (``=====`` blocks with
``Question:``/``Answer:``/``Reasoning:``), which :func:`parse_tao` maps onto the same models.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilterAnswer(Answer):
    suitable: bool
    reason: str


class ClassificationAnswer(Answer):
    observation: str
    reasoning: str
    label: Literal["anomaly", "normal"]


class CaptionAnswer(Answer):
    caption: str = Field(min_length=1)


class TimedEvent(Answer):
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_sec < self.start_sec:
            raise ValueError(f"end_sec {self.end_sec} is before start_sec {self.start_sec}")
        return self


class DenseCaptionAnswer(Answer):
    events: list[TimedEvent] = Field(min_length=1)


class HighlightTimeAnswer(Answer):
    evidence: str
    anomaly_time_sec: float = Field(ge=0)


class DescriptionAnswer(Answer):
    setting: str
    actors: list[str]
    timeline: list[TimedEvent] = Field(min_length=1)
    anomaly: str
    summary: str = Field(min_length=1)


class MCQItem(Answer):
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


class BCQItem(Answer):
    question: str = Field(min_length=1)
    answer: Literal["Yes", "No"]
    explanation: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)


class OpenItem(Answer):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)


class WindowItem(Answer):
    question: str = Field(min_length=1)
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    answer: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)


class LocalizationItem(Answer):
    question: str = Field(min_length=1)
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)
    reasoning: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_sec <= self.start_sec:
            raise ValueError(f"end_sec {self.end_sec} must be after start_sec {self.start_sec}")
        return self


class MCQAnswer(Answer):
    items: list[MCQItem] = Field(min_length=1, max_length=5)


class BCQAnswer(Answer):
    items: list[BCQItem] = Field(min_length=1, max_length=5)


class OpenAnswer(Answer):
    items: list[OpenItem] = Field(min_length=1, max_length=5)


class WindowAnswer(Answer):
    items: list[WindowItem] = Field(min_length=1, max_length=5)


class LocalizationAnswer(Answer):
    items: list[LocalizationItem] = Field(min_length=1, max_length=5)


#: Answer model per QA type.
QA_MODELS: dict[str, type[Answer]] = {
    "mcq": MCQAnswer,
    "bcq": BCQAnswer,
    "open_qa": OpenAnswer,
    "causal_linkage": OpenAnswer,
    "temporal_localization": LocalizationAnswer,
    "temporal_event_desc": WindowAnswer,
    "scene_description": OpenAnswer,
    "event_summary": OpenAnswer,
}


def model_for_key(prompt_key: str) -> type[Answer]:
    """The answer model of a prompt key (TAO's key names)."""
    fixed = {
        "video_filtering": FilterAnswer,
        "video_anomaly_classification": ClassificationAnswer,
        "highlight_timestamp_extraction": HighlightTimeAnswer,
        "highlight_chunk_caption": CaptionAnswer,
    }
    if prompt_key in fixed:
        return fixed[prompt_key]
    for suffix, model in (("_global_caption", CaptionAnswer), ("_chunk_caption", CaptionAnswer),
                          ("_dense_caption", DenseCaptionAnswer), ("_description", DescriptionAnswer)):
        if prompt_key.endswith(suffix) and prompt_key != "scene_description":
            return model
    for qa_type, model in QA_MODELS.items():
        if prompt_key == qa_type or prompt_key.endswith("_" + qa_type):
            return model
    raise KeyError(prompt_key)


def strict_schema(model: type[BaseModel]) -> dict:
    """JSON schema of ``model`` in the subset both backends accept for structured output.

    Inlines ``$defs`` (Gemini and OpenAI strict mode differ in ``$ref`` support), marks every
    property required and forbids extra properties (OpenAI ``strict: true`` rules), and
    drops ``title``/``default`` keys.
    """
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].split("/")[-1]])
            out = {k: walk(v) for k, v in node.items() if k not in ("title", "default")}
            if out.get("type") == "object" and "properties" in out:
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(raw)


# ---------------------------------------------------------------- TAO free-text answers

_BLOCK_SPLIT = re.compile(r"\n?={5,}\n?")
_HEAD = re.compile(r"^(?:\d+\.\s*)?(Multiple-Choice Question|Open-ended Question|Question)\s*:\s*(.*)$",
                   re.IGNORECASE | re.DOTALL)
_TIME = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?|\d+(?:\.\d+)?)"


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


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


def parse_tao(prompt_key: str, text: str) -> dict:
    """Map a TAO-format free-text answer for ``prompt_key`` onto its answer model's fields.

    Returns a dict for ``model_for_key(prompt_key).model_validate``.

    Raises:
        ValueError: the text does not hold what the key needs (re-asked by the caller).
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("empty answer")
    model = model_for_key(prompt_key)
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
    blocks = _tao_blocks(text)
    if not blocks:
        raise ValueError("no 'Question: ... ===== Answer: ... ===== Reasoning: ...' block found")
    items = []
    for b in blocks:
        if model is MCQAnswer:
            q, _, rest = b["question"].partition("\nA.")
            options = re.findall(r"^[A-D]\.\s*(.+)$", "A." + rest, re.M)
            letter = b["answer"].strip()[:1].upper()
            items.append({"question": q.strip(), "options": options, "correct_option": letter,
                          "reasoning": b["reasoning"] or b["answer"]})
        elif model is BCQAnswer:
            yes = b["answer"].lower().startswith("yes")
            if not (yes or b["answer"].lower().startswith("no")):
                raise ValueError("a yes/no answer must start with Yes or No")
            items.append({"question": b["question"], "answer": "Yes" if yes else "No",
                          "explanation": b["answer"], "reasoning": b["reasoning"] or b["answer"]})
        elif model is LocalizationAnswer:
            m = re.search(rf"Start[_ ]Time\s*:\s*{_TIME}\s*,?\s*End[_ ]Time\s*:\s*{_TIME}", b["answer"], re.I)
            if not m:
                raise ValueError("temporal localization answer must read 'Start_Time: MM:SS, End_Time: MM:SS'")
            items.append({"question": b["question"], "start_sec": _seconds(m.group(1)),
                          "end_sec": _seconds(m.group(2)), "reasoning": b["reasoning"] or b["answer"]})
        elif model is WindowAnswer:
            times = re.findall(_TIME, b["question"])
            secs = sorted(_seconds(t) for t in times[:2]) if len(times) >= 2 else [0.0, 0.0]
            items.append({"question": b["question"], "start_sec": secs[0], "end_sec": secs[1],
                          "answer": b["answer"], "reasoning": b["reasoning"] or b["answer"]})
        else:
            items.append({"question": b["question"], "answer": b["answer"], "reasoning": b["reasoning"] or b["answer"]})
    return {"items": items}

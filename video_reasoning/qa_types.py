"""The QA types: one registry entry each, holding everything about the type.

An entry names the type (as ``workflow.qa_types`` lists it), its item model, the text of
its generation prompt, the output tasks it feeds (TAO's step-4 names, with their
description and answer instruction) and how one item becomes dataset items. The prompt
set, the config schema, step 3 and step 4 all read this registry, so adding a QA type is
one :func:`register` call here (then ``python -m video_reasoning.specdoc --write`` to
regenerate the schema, defaults and README table).

Task names and the QA-type -> task mapping are TAO's (step 4 of ``nvidia-tao-ds``): mcq and
bcq each yield a short-answer and an open-ended task; temporal_event_desc is written as
``temporal_description`` and event_summary as ``video_summarization``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from video_reasoning.models import (
    Answer,
    BCQItem,
    LocalizationItem,
    LongMCQItem,
    MCQItem,
    OpenItem,
    WindowItem,
    items_answer,
)

LETTERS = "ABCD"


@dataclass(frozen=True)
class Task:
    """One tao-vl-reason-v1.0 output task: its name, metadata description and the
    instruction appended to each question (None: the question goes as written)."""

    name: str
    description: str
    instruction: str | None = None


#: ``(item, question, base) -> {task name: dataset item}``: ``item`` is one step-3 item
#: (the item model's fields), ``question`` its stripped question, ``base`` the fields every
#: dataset item has (``video_id``, ``reasoning``, ``item_index``) plus ``content``, the
#: video's SHA-256 (a seed for deterministic choices).
ToItems = Callable[[dict, str, dict], dict[str, dict]]


@dataclass(frozen=True)
class QAType:
    """One QA type.

    Attributes:
        name: the name in ``workflow.qa_types``.
        item: the item model the LLM fills (its schema is sent; answers are validated).
        tasks: output tasks, in TAO's order.
        prompt: what to write. For mode-dependent types the object of "You write ...",
            which the prompt set frames with the anomaly/normal focus; for ``mode_free``
            types the opening of the prompt. Both get the grounding rules and the captions.
        mode_free: one prompt key (``<name>``) for anomaly and normal videos, instead of
            ``anomaly_<name>`` and ``normal_<name>`` (TAO's split).
        to_items: how one item becomes dataset items (default: the first task, with the
            item's question and answer).
        verify: how the verification stage checks an item (:mod:`video_reasoning.verification`):
            ``choice`` (four options and a key letter: blind probe and grounded re-answer),
            ``yes_no`` (the same), ``window`` (start/end seconds: grounded re-answer, IoU) or
            ``open`` (free text: grounded re-answer, then the judge).
        default: in ``workflow.qa_types`` by default (TAO's eight types).
        long_only: written for videos on the long-video path only (``long_video``); a
            shorter video gets a ``not_applicable`` record at no cost.
        tao: a TAO ``prompts_module`` may provide its prompt (else ours, in JSON).
    """

    name: str
    item: type[Answer]
    tasks: tuple[Task, ...]
    prompt: str
    mode_free: bool = False
    to_items: ToItems | None = None
    verify: str = "open"
    default: bool = True
    long_only: bool = False
    tao: bool = True

    @property
    def answer_model(self) -> type[Answer]:
        """What one step-3 call answers: ``{"items": [item, ...]}``."""
        return items_answer(self.item)

    def prompt_key(self, mode: str) -> str:
        """The prompt key for a video of ``mode`` (``anomaly``/``normal``)."""
        return self.name if self.mode_free else f"{mode}_{self.name}"

    def dataset_items(self, item: dict, base: dict) -> dict[str, dict]:
        """``{task: dataset item}`` for one step-3 item (see :data:`ToItems`)."""
        q = item["question"].strip()
        if self.to_items is not None:
            return self.to_items(item, q, base)
        return {self.tasks[0].name: {**_plain(base), "question": q, "answer": item["answer"]}}


QA_TYPES: dict[str, QAType] = {}


def register(qa: QAType) -> QAType:
    """Add ``qa`` to the registry (its name and task names must be new)."""
    taken = {t.name for q in QA_TYPES.values() for t in q.tasks}
    if qa.name in QA_TYPES or taken & {t.name for t in qa.tasks}:
        raise ValueError(f"QA type {qa.name!r} or one of its tasks is registered already")
    QA_TYPES[qa.name] = qa
    return qa


def task(name: str) -> Task:
    """The output task called ``name``."""
    return next(t for q in QA_TYPES.values() for t in q.tasks if t.name == name)


def qa_type_of_task(name: str) -> QAType:
    """The QA type whose step-3 records feed task ``name``."""
    return next(q for q in QA_TYPES.values() if any(t.name == name for t in q.tasks))


def all_tasks(qa_types=None) -> list[str]:
    """Task names of ``qa_types`` (default: the default types, TAO's), in registry order."""
    return [t.name for name in (qa_types or [q for q in QA_TYPES if QA_TYPES[q].default])
            for t in QA_TYPES[name].tasks]


# ---------------------------------------------------------------- dataset items


def mmss(seconds: float) -> str:
    """``MM:SS`` (minutes may exceed 59), rounded to the second."""
    s = max(0, int(round(seconds)))
    return f"{s // 60:02d}:{s % 60:02d}"


def permute_options(options: list[str], correct: int, seed: str) -> tuple[list[str], int]:
    """Deterministically move the correct option to a seed-chosen position.

    The target position is ``SHA-256(seed) mod 4``, so correct letters spread evenly over
    A-D across items whatever position the model favoured; the wrong options keep their
    relative order. Returns ``(options, new correct index)``.
    """
    target = int(hashlib.sha256(seed.encode("utf-8")).hexdigest(), 16) % len(options)
    others = [o for i, o in enumerate(options) if i != correct]
    others.insert(target, options[correct])
    return others, target


def _plain(base: dict) -> dict:
    return {k: v for k, v in base.items() if k != "content"}


def _with(instruction_of: str, question: str) -> str:
    return f"{question}\n{task(instruction_of).instruction}"


def _mcq_items(it: dict, q: str, base: dict) -> dict[str, dict]:
    options, k = permute_options(it["options"], LETTERS.index(it["correct_option"]), f"{base['content']}\n{q}")
    body = q + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return {"mcq": {**_plain(base), "question": _with("mcq", body), "answer": LETTERS[k]},
            "mcq_openended": {**_plain(base), "question": _with("mcq_openended", body),
                              "answer": f"{LETTERS[k]}. {options[k]}"}}


def _long_items(it: dict, q: str, base: dict) -> dict[str, dict]:
    mcq = _mcq_items(it, q, base)["mcq"]
    return {"long_video_reasoning": {**mcq, "question": mcq["question"].replace(
        task("mcq").instruction, task("long_video_reasoning").instruction)}}


def _bcq_items(it: dict, q: str, base: dict) -> dict[str, dict]:
    explanation = it["explanation"].strip()
    if not explanation.lower().startswith(it["answer"].lower()):
        explanation = f"{it['answer']}. {explanation}"
    return {"bcq": {**_plain(base), "question": _with("bcq", q), "answer": it["answer"]},
            "bcq_openended": {**_plain(base), "question": _with("bcq_openended", q), "answer": explanation}}


def _localization_items(it: dict, q: str, base: dict) -> dict[str, dict]:
    answer = json.dumps({"start": mmss(it["start_sec"]), "end": mmss(it["end_sec"])})
    return {"temporal_localization": {**_plain(base), "question": _with("temporal_localization", q),
                                      "answer": answer}}


def _window_items(it: dict, q: str, base: dict) -> dict[str, dict]:
    window = f"({mmss(it['start_sec'])}-{mmss(it['end_sec'])})"
    question = q if it["end_sec"] <= 0 or mmss(it["start_sec"]) in q else f"{q} {window}"
    return {"temporal_description": {**_plain(base), "question": question, "answer": it["answer"]}}


# ---------------------------------------------------------------- the registry (TAO's eight types)

register(QAType(
    "mcq", MCQItem,
    (Task("mcq", "Multiple-choice video QA with four options; the answer is the correct option's letter.",
          "Answer with the option's letter only."),
     Task("mcq_openended", "Multiple-choice video QA; the answer is the correct option with its text.",
          "Answer with the correct option's letter and text.")),
    "multiple-choice questions. Each question has exactly four options of similar length and "
    "form; exactly one is correct, and each wrong option is clearly contradicted by the video, "
    "not merely less likely. Name the correct option by its letter in the order you wrote them. "
    "The reasoning goes step by step from what is visible to the answer and says why each wrong "
    "option fails. Write {num_items} questions that need the video to answer",
    to_items=_mcq_items, verify="choice"))
register(QAType(
    "bcq", BCQItem,
    (Task("bcq", "Yes/no video QA; the answer is Yes or No.", "Answer Yes or No."),
     Task("bcq_openended", "Yes/no video QA; the answer is Yes or No followed by a short explanation.",
          "Answer Yes or No, then explain briefly.")),
    "yes/no questions. Balance them: some answered Yes, some No. The explanation justifies the "
    "answer in one or two sentences; the reasoning goes step by step from what is visible to the "
    "answer. Write {num_items} questions that need the video to answer",
    to_items=_bcq_items, verify="yes_no"))
register(QAType(
    "open_qa", OpenItem,
    (Task("open_qa", "Open-ended video QA with free-text answers."),),
    "open-ended questions (why, how, what happens after) whose answers are a few precise "
    "sentences, each with a step-by-step reasoning grounded in visible evidence. Write {num_items}"))
register(QAType(
    "causal_linkage", OpenItem,
    (Task("causal_linkage", "Causal linkage: how an event at one time leads to the situation at another."),),
    "causal linkage items. Each question names two moments (in seconds) and asks how the event at "
    "the first leads to the situation at the second; the answer explains the chain of cause and "
    "effect, and the reasoning walks through the intermediate events. Write {num_items}"))
register(QAType(
    "temporal_localization", LocalizationItem,
    (Task("temporal_localization",
          'Temporal localization: the answer is {"start": "MM:SS", "end": "MM:SS"} of the event.',
          'Answer with the start and end time as {"start": "MM:SS", "end": "MM:SS"}.'),),
    "temporal localization items. Each asks when a specific, unambiguous event happens; the answer "
    "is its start and end in seconds inside the video. The reasoning states what the scene looks "
    "like before the start, what changes at the start, and why the event is over at the end. "
    "Write {num_items}",
    to_items=_localization_items, verify="window"))
register(QAType(
    "temporal_event_desc", WindowItem,
    (Task("temporal_description", "Temporal event description: what happens within a given time window."),),
    "temporal event description items. Each names a time window (start and end seconds inside "
    "the video) and asks what happens in it; the answer describes the events of that window in "
    "order, and the reasoning ties them to the surrounding timeline. Write {num_items}",
    to_items=_window_items))
register(QAType(
    "scene_description", OpenItem,
    (Task("scene_description", "Scene description: the place, layout, conditions, actors and objects."),),
    "You write scene-description items for a video-reasoning dataset. Each item asks to describe "
    "the scene (place, layout, lighting, weather, actors and objects and where they are) and "
    "answers with a faithful, detailed paragraph; the reasoning explains which observations "
    "support each part of the answer. Write {num_items} items, each on a different part of the scene.",
    mode_free=True))
register(QAType(
    "event_summary", OpenItem,
    (Task("video_summarization", "Video summarization: the main events in order, including any anomaly."),),
    "You write video-summarization items for a video-reasoning dataset. Each item asks to "
    "summarise the video and answers with a concise paragraph covering the main events in "
    "order and any anomaly; the reasoning explains how the events connect. Write {num_items} items, "
    "each from a different angle (the whole video, its first and its second half, the actors' goals).",
    mode_free=True))

# ---------------------------------------------------------------- ours: long videos (LongVideo-Reason, seed 002)

register(QAType(
    "long_reasoning", LongMCQItem,
    (Task("long_video_reasoning", "Long-video reasoning: multiple-choice questions whose answer connects events "
          "far apart in a long video (temporal, goal and purpose, spatial, plot and narrative); the answer is "
          "the correct option's letter.", "Answer with the option's letter only."),),
    "You write multiple-choice reasoning questions about a long video for a video-reasoning dataset. "
    "Each question needs at least two events of the timeline that lie at least {min_event_gap} s apart "
    "and cannot be answered from either alone; list them as evidence with their start and end seconds. "
    "Spread the questions over four kinds: temporal (order, duration, what changed between two moments), "
    "goal (what an actor is trying to achieve, judged from actions far apart), spatial (where things are "
    "or went, from views at different times) and plot (how the story develops, causes and consequences). "
    "Each has four options of similar length, exactly one correct and named by its letter; the reasoning "
    "goes through the evidence in time order, one short paragraph per time span, and says why the other "
    "options fail. Write {num_items} questions",
    mode_free=True, to_items=_long_items, verify="choice", default=False, long_only=True, tao=False))

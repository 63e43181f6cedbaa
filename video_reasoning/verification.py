"""Verification between steps 3 and 4: what each check asks, and how its answers are scored.

Every step-3 item of a video goes through the checks the spec turns on
(``verification:``), with all items of the video in one call per probe:

- **blind_probe** (LLM, no video, no captions): multiple-choice and yes/no items are asked
  twice from their wording alone, the key at a different position each time, with an
  explicit "cannot tell without the video" option. An item answered with its key by both
  probes is text-answerable. Bound on removing by luck an item that does need the video:
  a probe that never abstains and guesses uniformly hits the key in both probes with
  probability (1/4)^2 = 6.25 % for four options and (1/2)^2 = 25 % for yes/no; a probe
  that guesses by position (always "A", always "Yes") never does, since the key moves.
  Abstaining, as the prompt asks, lowers both.
- **grounded_reanswer** (VLM, shown the whole video): every item is answered without its
  key. A different letter or Yes/No, or a window whose IoU with the key's is below
  ``min_iou``, fails the item; open-ended answers go to the judge.
- **judge** (LLM): for open-ended items, is the answer supported by what the VLM saw, and
  does the reasoning lead to it.
- **structure** (no call): :func:`structure_problems`. The same problems are sent back to
  the LLM when step 3 writes the items (:func:`generation_fix`), so most cost a re-ask,
  not an item; what is still wrong afterwards fails here.
- **duplicates** (no call, dataset-wide): :func:`video_reasoning.selection.select`.

A QA type says which kind of item it writes (``QAType.verify``): ``choice``, ``yes_no``,
``window`` or ``open``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rapidfuzz import utils

from video_reasoning.config import VerificationSettings
from video_reasoning.models import seconds
from video_reasoning.qa_types import LETTERS, QA_TYPES
from video_reasoning.records import (
    ItemCheck,
    QARecord,
    Status,
)

#: The checks, in the order they are reported (the switches of ``verification:``).
CHECKS = VerificationSettings.CHECKS
#: The blind probes' abstention option.
CANNOT_TELL = "Cannot tell without watching the video"
#: Number of blind probes (each one LLM call per video).
BLIND_PROBES = 2
#: A correct option longer than this many times the longest wrong one is a length outlier.
LENGTH_MARGIN = 1.3
#: Seconds a time may lie past the video's end (rounding of MM:SS), here and when steps 1-2 check answers.
TIME_SLACK_S = 1.0

_CLOCK = re.compile(r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\.\d+)?(?![\d:])")
_SECONDS = re.compile(r"(?<![\w.:])(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b", re.I)
_ABOVE = re.compile(r"\b(?:all|none|both|neither) of (?:the )?(?:above|options|others|these)\b|"
                    r"\bboth [A-D] and [A-D]\b", re.I)
_META = re.compile(r"\bcaption(?:s|ed)?\b|\bchunk\s*#?\d+\b|\bchunks\b|\btimestamped events\b|"
                   r"\b(?:the|provided|given|above|structured)\s+descriptions?\b", re.I)


@dataclass(frozen=True)
class Candidate:
    """One step-3 item under verification: ``id`` (1-based, unique in the video's calls),
    its QA type, its index in the step-3 record and the item (the item model's fields)."""

    id: int
    qa_type: str
    index: int
    item: dict

    @property
    def kind(self) -> str:
        """``choice``, ``yes_no``, ``window`` or ``open`` (from the QA-type registry)."""
        return QA_TYPES[self.qa_type].verify


def candidates(records: dict[str, QARecord]) -> list[Candidate]:
    """The items of a video's ``done`` step-3 records, numbered from 1 in QA-type order."""
    items = [(q, n, it) for q in QA_TYPES if q in records and records[q].status is Status.DONE
             for n, it in enumerate(records[q].items)]
    return [Candidate(i, q, n, it) for i, (q, n, it) in enumerate(items, start=1)]


# ---------------------------------------------------------------- structure (no call)


def seconds_in(text: str) -> list[tuple[str, float]]:
    """Times written in ``text``: ``MM:SS``, ``H:MM:SS`` and ``12.5 s``/``12 seconds``, as
    ``(as written, seconds)``."""
    out = [(m.group(0), seconds(m.group(0))) for m in _CLOCK.finditer(text)]
    out += [(m.group(0), float(m.group(1))) for m in _SECONDS.finditer(text)]
    return out


def _texts(kind: str, item: dict) -> list[str]:
    texts = [item.get("question", ""), item.get("reasoning", "")]
    if kind == "choice":
        texts += item.get("options", [])
    else:
        texts += [str(item.get("answer", "")), item.get("explanation", "")]
    return [t for t in texts if t]


def key_text(kind: str, item: dict) -> str:
    """The key as text: the correct option, Yes/No, ``start-end`` seconds or the answer."""
    if kind == "choice":
        return item["options"][LETTERS.index(item["correct_option"])]
    if kind == "window":
        return f"{item['start_sec']:g}-{item['end_sec']:g}"
    return str(item["answer"])


def structure_problems(kind: str, item: dict, duration: float) -> list[str]:
    """What is wrong with one item's form, each as ``"[kind] message"``; empty when nothing.

    Kinds: ``time`` (a time past the end of the ``duration``-second video, with
    :data:`TIME_SLACK_S` of slack), ``window`` (end not after start), ``options``
    (near-identical options, "all/none of the above"), ``length`` (the correct option
    longer than :data:`LENGTH_MARGIN` times every wrong one) and ``captions`` (the text talks
    about captions, chunks or "the description" instead of the video).
    """
    out = []
    for text in _texts(kind, item):
        for written, s in seconds_in(text):
            if s > duration + TIME_SLACK_S:
                out.append(f"[time] '{written}' is past the end of the {duration:.1f} s video")
        if _META.search(text):
            out.append(f"[captions] '{_META.search(text).group(0)}': write about what the video shows, "
                       "not about captions, chunks or descriptions")
    for f in ("start_sec", "end_sec"):
        if f in item and item[f] > duration + TIME_SLACK_S:
            out.append(f"[time] {f}={item[f]:g} is past the end of the {duration:.1f} s video")
    if "start_sec" in item and (kind == "window" or item["end_sec"] > 0) and item["end_sec"] <= item["start_sec"]:
        out.append(f"[window] end_sec {item['end_sec']:g} is not after start_sec {item['start_sec']:g}")
    if kind == "choice":
        opts = item["options"]
        if len({utils.default_process(o) for o in opts}) < len(opts):
            out.append("[options] two options say the same")
        if any(_ABOVE.search(o) for o in opts):
            out.append("[options] an option refers to the others ('all/none of the above'); write four "
                       "self-contained options")
        key = LETTERS.index(item["correct_option"])
        longest_wrong = max(len(o) for i, o in enumerate(opts) if i != key)
        if len(opts[key]) > LENGTH_MARGIN * longest_wrong:
            out.append(f"[length] the correct option ({len(opts[key])} characters) is much longer than the "
                       f"others (at most {longest_wrong}); make the options similar in length and detail")
    return list(dict.fromkeys(out))


def generation_fix(qa_type: str, duration: float) -> Callable[[object], list[str]]:
    """The step-3 re-ask check: structure problems of every item of a QA answer, as
    ``"item N: [kind] message"`` (sent back to the LLM to fix, at most
    :data:`video_reasoning.client.FIX_REASKS` times)."""
    kind = QA_TYPES[qa_type].verify

    def problems(answer) -> list[str]:
        return [f"item {n + 1}: {p}" for n, it in enumerate(answer.model_dump()["items"])
                for p in structure_problems(kind, it, duration)]
    return problems


def problem_kinds(texts: Iterable[str]) -> list[str]:
    """The ``[kind]`` tags in problem texts, one per problem."""
    return [k for t in texts for k in re.findall(r"\[(\w+)\]", t)]


# ---------------------------------------------------------------- blind probe (LLM, no video)


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def blind_options(c: Candidate, probe: int) -> tuple[list[str], int]:
    """Options the blind probe ``probe`` (0 or 1) shows for a choice or yes/no item, the
    last one :data:`CANNOT_TELL`, and the index of the key among them.

    Choice: the key goes to a position chosen from the question's hash, and to another
    one in the second probe (wrong options keep their order). Yes/no: "Yes, No", then
    "No, Yes".
    """
    if c.kind == "yes_no":
        opts = ["Yes", "No"] if probe == 0 else ["No", "Yes"]
        return [*opts, CANNOT_TELL], opts.index(c.item["answer"])
    opts, key = c.item["options"], LETTERS.index(c.item["correct_option"])
    h = _seed(c.item["question"])
    first = h % 4
    target = first if probe == 0 else (first + 1 + (h // 4) % 3) % 4
    others = [o for i, o in enumerate(opts) if i != key]
    others.insert(target, opts[key])
    return [*others, CANNOT_TELL], target


def blind_items(cands: list[Candidate]) -> list[Candidate]:
    """The items the blind probes ask: choice and yes/no."""
    return [c for c in cands if c.kind in ("choice", "yes_no")]


def render_blind(cands: list[Candidate], probe: int) -> str:
    """The ``{items}`` of blind probe ``probe``: ``Q<id>. question`` and lettered options."""
    blocks = []
    for c in cands:
        opts, _ = blind_options(c, probe)
        blocks.append(f"Q{c.id}. {c.item['question'].strip()}\n" +
                      "\n".join(f"  {'ABCDE'[i]}. {o}" for i, o in enumerate(opts)))
    return "\n\n".join(blocks)


def blind_check(cands: list[Candidate]) -> Callable[[object], None]:
    """A request check: every item answered once, with one of its own letters."""
    allowed = {c.id: "ABCDE"[: len(blind_options(c, 0)[0])] for c in cands}

    def check(answer) -> None:
        got = {}
        for a in answer.answers:
            if a.id not in allowed:
                raise ValueError(f"there is no question Q{a.id}")
            if a.letter not in allowed[a.id]:
                raise ValueError(f"Q{a.id} has options {', '.join(allowed[a.id])} only")
            got[a.id] = a.letter
        _complete(allowed, got)
    return check


def _complete(expected: Iterable[int], got: dict) -> None:
    missing = [f"Q{i}" for i in expected if i not in got]
    if missing:
        raise ValueError(f"no answer for {', '.join(missing)}: answer every question, by its id")


def score_blind(c: Candidate, letters: list[str]) -> tuple[int, list[str]]:
    """``(probes that chose the key, option texts chosen)`` for one item."""
    hits, chosen = 0, []
    for probe, letter in enumerate(letters):
        opts, key = blind_options(c, probe)
        i = "ABCDE".index(letter)
        chosen.append(opts[i])
        hits += i == key
    return hits, chosen


# ---------------------------------------------------------------- grounded re-answer (VLM)

_HOW = {"choice": "letter", "yes_no": "Yes or No", "window": "start-end in seconds", "open": "one to three sentences"}


def render_grounded(cands: list[Candidate]) -> str:
    """The ``{items}`` of the grounded re-answer: each question (with its options for a
    choice item) and how to answer it; never the key."""
    blocks = []
    for c in cands:
        text = f"Q{c.id} ({_HOW[c.kind]}). {c.item['question'].strip()}"
        if c.kind == "choice":
            text += "\n" + "\n".join(f"  {LETTERS[i]}. {o}" for i, o in enumerate(c.item["options"]))
        blocks.append(text)
    return "\n\n".join(blocks)


_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*s?\s*(?:-|–|to)\s*(\d+(?:\.\d+)?)")


def parse_grounded(kind: str, text: str):
    """The VLM's answer as a value: a letter, ``Yes``/``No``, ``(start, end)`` seconds or the text.

    Raises:
        ValueError: the answer does not have the form the item needs (re-asked).
    """
    t = text.strip()
    if kind == "choice":
        m = re.match(r"^\(?([A-Da-d])\b", t)
        if not m:
            raise ValueError(f"'{t[:40]}' is not a letter A-D")
        return m.group(1).upper()
    if kind == "yes_no":
        m = re.match(r"^(yes|no)\b", t, re.I)
        if not m:
            raise ValueError(f"'{t[:40]}' is not Yes or No")
        return m.group(1).capitalize()
    if kind == "window":
        m = _WINDOW.search(t)
        if not m:
            raise ValueError(f"'{t[:40]}' is not start-end in seconds")
        return float(m.group(1)), float(m.group(2))
    return t


def grounded_check(cands: list[Candidate]) -> Callable[[object], None]:
    """A request check: every item answered once, in the form its kind needs."""
    kinds = {c.id: c.kind for c in cands}

    def check(answer) -> None:
        got = {}
        for a in answer.answers:
            if a.id not in kinds:
                raise ValueError(f"there is no question Q{a.id}")
            try:
                got[a.id] = parse_grounded(kinds[a.id], a.answer)
            except ValueError as exc:
                raise ValueError(f"Q{a.id}: {exc}") from None
        _complete(kinds, got)
    return check


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time windows (s); 0 when either is empty."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 and a[1] > a[0] and b[1] > b[0] else 0.0


def score_grounded(c: Candidate, value, min_iou: float) -> str:
    """Why the VLM's answer contradicts the key (empty when it agrees). Open items: empty
    (the judge decides)."""
    if c.kind == "choice":
        key = c.item["correct_option"]
        return "" if value == key else f"the VLM, shown the video, chose {value}, the key is {key}"
    if c.kind == "yes_no":
        key = c.item["answer"]
        return "" if value == key else f"the VLM, shown the video, answered {value}, the key is {key}"
    if c.kind == "window":
        key = (c.item["start_sec"], c.item["end_sec"])
        overlap = iou(key, value)
        return ("" if overlap >= min_iou else
                f"the VLM placed it at {value[0]:g}-{value[1]:g} s, the key at {key[0]:g}-{key[1]:g} s "
                f"(IoU {overlap:.2f} < {min_iou:g})")
    return ""


# ---------------------------------------------------------------- judge (LLM)


def render_judge(cands: list[Candidate], seen: dict[int, str]) -> str:
    """The ``{items}`` of the judge: question, proposed answer, reasoning, and what the VLM
    answered from the video."""
    return "\n\n".join(
        f"Q{c.id}. Question: {c.item['question'].strip()}\n  Proposed answer: {c.item['answer']}\n"
        f"  Reasoning: {c.item['reasoning']}\n  Answer of the model that watched the video: {seen[c.id]}"
        for c in cands)


def judge_check(cands: list[Candidate]) -> Callable[[object], None]:
    """A request check: one verdict per item."""
    ids = {c.id for c in cands}

    def check(answer) -> None:
        got = {}
        for v in answer.verdicts:
            if v.id not in ids:
                raise ValueError(f"there is no item Q{v.id}")
            got[v.id] = v
        _complete(ids, got)
    return check


# ---------------------------------------------------------------- the record


def result(c: Candidate) -> ItemCheck:
    """An empty check result of one item."""
    return ItemCheck(qa_type=c.qa_type, index=c.index, item=c.item)


def fail(check: ItemCheck, name: str, finding: str) -> None:
    """Mark ``check`` failed by the check ``name`` with what it found."""
    if name not in check.failed:
        check.failed.append(name)
    check.findings.append(f"{name}: {finding}")


# ---------------------------------------------------------------- scoring a video's replies


def score_blind_probes(blind: list[Candidate], probes: list, checks: dict[int, ItemCheck]) -> None:
    """Score the blind probes' answers (replies with ``answers: [{id, letter}]``) into
    ``checks`` (by item id): an item answered with its key by every probe fails."""
    letters = {c.id: [] for c in blind}
    for p in probes:
        for a in p.answer["answers"]:
            letters[a["id"]].append(a["letter"])
    for c in blind:
        hits, chosen = score_blind(c, letters[c.id])
        it = checks[c.id]
        it.blind_hits, it.answers["blind_probe"] = hits, chosen
        if hits == len(probes):
            fail(it, "blind_probe", f"answered '{key_text(c.kind, c.item)}' (the key) "
                                                 f"without the video in all {hits} probes")


def score_grounded_reply(grounded: list[Candidate], seen, min_iou: float,
                         checks: dict[int, ItemCheck]) -> dict[int, str]:
    """Score the VLM's grounded re-answers (a reply with ``answers: [{id, answer}]``) into
    ``checks``; returns its answers by item id (for the judge)."""
    by_id = {a["id"]: a["answer"] for a in seen.answer["answers"]}
    for c in grounded:
        it = checks[c.id]
        it.answers["grounded_reanswer"] = by_id[c.id]
        problem = score_grounded(c, parse_grounded(c.kind, by_id[c.id]), min_iou)
        if problem:
            fail(it, "grounded_reanswer", problem)
    return by_id


def score_judge_reply(judged, checks: dict[int, ItemCheck]) -> None:
    """Score the judge's verdicts (a reply with ``verdicts: [{id, supported,
    reasoning_leads_to_answer, note}]``) into ``checks``."""
    for v in judged.answer["verdicts"]:
        it = checks[v["id"]]
        it.answers["judge"] = v
        if not v["supported"]:
            fail(it, "judge", f"the answer is not supported by what the VLM saw ({v['note']})")
        elif not v["reasoning_leads_to_answer"]:
            fail(it, "judge", f"the reasoning does not lead to the answer ({v['note']})")



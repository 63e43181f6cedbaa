"""The long-video path (ours): LongVideo-Reason's recipe (seed 002, NVlabs Long-RL) inside
TAO's steps, for videos longer than ``long_video.threshold_sec``.

- step 1b: the video cut, in time, into clips of ``clip_sec`` covering all of it; the VLM
  captions ``clips_per_request`` consecutive clips per request (one window of the video,
  seen at ``sample_fps``) with one caption per clip in a structured answer;
- step 2: the clip captions merged into a timeline ("From 0 to 10, ..."); when it would take
  more than ``timeline_token_budget`` tokens, the LLM summarises each ``segment_sec``
  segment and steps 2 and 3 carry the summaries instead (so their prompts stay bounded);
- step 3: the ``long_reasoning`` QA type (multiple choice, four reasoning kinds, evidence
  events at least ``min_event_gap_sec`` apart, re-asked otherwise) beside TAO's types;
  with ``reformat``, one more LLM call per QA type rewrites the reasoning traces without
  captions or raw times.

Pure functions only; the steps that call the models are in :mod:`video_reasoning.caption_steps`
and :mod:`video_reasoning.qa_steps`.
Token estimates use 4 characters per token (OpenAI's rule of thumb for English text).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from video_reasoning import verification
from video_reasoning.config import Settings
from video_reasoning.media import plan_chunks
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import Chunk, Segment

#: Characters per token of the estimates here and in :mod:`video_reasoning.estimate`
#: (OpenAI's rule of thumb for English text).
CHARS_PER_TOKEN = 4
#: Words a reasoning trace may not use after the reformat pass (what the video shows, not how
#: it was written down).
_SOURCE_WORDS = re.compile(r"\b(?:captions?|captioned|timelines?|clips?|segments?|descriptions?)\b", re.I)


def is_long(settings: Settings, duration: float) -> bool:
    """True when a ``duration``-second video takes the long-video path."""
    return duration > settings.long_video.threshold(settings.workflow)


def tokens(text: str) -> int:
    """Estimated tokens of ``text`` (:data:`CHARS_PER_TOKEN` characters each, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def clip_windows(duration: float, clip_sec: float, per_request: int) -> list[list[tuple[float, float]]]:
    """The clips of a ``duration``-second video (``clip_sec`` each, a tail under 1 s merged
    into the last clip), grouped into requests of ``per_request`` consecutive clips."""
    clips = plan_chunks(duration, clip_sec)
    return [clips[i:i + per_request] for i in range(0, len(clips), per_request)]


def requests_for(duration: float, settings: Settings) -> dict[str, int]:
    """What the long-video path costs a ``duration``-second video, before any answer:
    ``clips``, ``clip_requests`` (VLM, step 1b), ``segment_requests`` (LLM, step 2, upper
    bound: 0 when the timeline fits its budget) and ``reformat_requests`` (LLM, one per QA
    type with ``reformat``)."""
    lv = settings.long_video
    windows = clip_windows(duration, lv.clip_sec, lv.clips_per_request)
    return {"clips": sum(len(w) for w in windows), "clip_requests": len(windows),
            "segment_requests": len(plan_chunks(duration, lv.segment_sec)),
            "reformat_requests": len(settings.workflow.qa_types) if lv.reformat else 0}


def render_clips(window: list[tuple[float, float]], first: int) -> str:
    """The clips of one request as prompt lines: ``Clip <n>: <start>-<end> s`` (n from ``first``)."""
    return "\n".join(f"Clip {first + i}: {s:g}-{e:g} s" for i, (s, e) in enumerate(window))


def clips_check(numbers: list[int]) -> Callable[[object], None]:
    """A check that a clip-captions answer has exactly one caption per clip in ``numbers``."""
    def check(answer) -> None:
        got = [c.clip for c in answer.captions]
        missing = sorted(set(numbers) - set(got))
        extra = sorted(set(got) - set(numbers))
        if missing or extra or len(got) != len(set(got)):
            raise ValueError(f"give exactly one caption for each of clips {numbers[0]}-{numbers[-1]} "
                             f"(missing: {missing or 'none'}, not asked: {extra or 'none'}, "
                             f"repeated: {sorted({n for n in got if got.count(n) > 1}) or 'none'})")
    return check


def timeline(chunks: list[Chunk]) -> str:
    """The clip captions as one timeline, a line per clip: ``From <start> to <end>, <caption>``
    (LongVideo-Reason's merged-caption form; seconds from the video's start)."""
    return "\n".join(f"From {c.start:g} to {c.end:g}, {c.caption.strip()}" for c in chunks)


def segment_windows(duration: float, segment_sec: float) -> list[tuple[float, float]]:
    """The segments (s) the summaries cover: contiguous, ``segment_sec`` each."""
    return plan_chunks(duration, segment_sec)


def segment_timeline(chunks: list[Chunk], start: float, end: float) -> str:
    """The timeline lines of the clips starting within ``[start, end)``."""
    return timeline([c for c in chunks if start - 1e-6 <= c.start < end - 1e-6])


def summary_words(budget_tokens: int, segments: int) -> int:
    """Words each of ``segments`` summaries may take so that all fit ``budget_tokens``
    (a word ~ 1.3 tokens, with room for the ``From .. to ..`` lines)."""
    return max(20, int(budget_tokens / max(segments, 1) / 1.3) - 10)


def summary_check(max_words: int) -> Callable[[object], None]:
    """A check that a segment summary has at most ``max_words`` words."""
    def check(answer) -> None:
        n = len(answer.summary.split())
        if n > max_words:
            raise ValueError(f"the summary has {n} words; shorten it to at most {max_words}")
    return check


def render_segments(segments: list[Segment]) -> str:
    """Segment summaries as prompt text: ``From <start> to <end>: <summary>`` per line."""
    return "\n".join(f"From {s.start:g} to {s.end:g}: {s.summary.strip()}" for s in segments)


def gap_problems(item: dict, duration: float, min_gap: float) -> list[str]:
    """Why a ``long_reasoning`` item does not connect events far apart: fewer than two
    evidence events, an event outside the video, or the earliest and the latest events less
    than ``min_gap`` seconds apart (from the end of the first to the start of the last).
    Each as ``"[gap] message"``; empty when it is fine."""
    ev = item.get("evidence") or []
    if len(ev) < 2:
        return ["[gap] give at least two evidence events with their times"]
    out = [f"[time] evidence event at {e['start_sec']:g}-{e['end_sec']:g} s is outside the {duration:.0f} s video"
           for e in ev if e["end_sec"] > duration + verification.TIME_SLACK_S]
    first = min(ev, key=lambda e: e["end_sec"])
    last = max(ev, key=lambda e: e["start_sec"])
    gap = last["start_sec"] - first["end_sec"]
    if gap < min_gap:
        out.append(f"[gap] the evidence events are only {max(gap, 0):g} s apart (from {first['end_sec']:g} s to "
                   f"{last['start_sec']:g} s); connect events at least {min_gap:g} s apart")
    return out


def item_problems(kind: str, item: dict, duration: float, min_gap: float, structure: bool = True) -> list[str]:
    """What is wrong with one item of a long video: its structure problems
    (:func:`video_reasoning.verification.structure_problems`, with ``structure``) and, for an
    item with evidence events (``long_reasoning``), :func:`gap_problems`."""
    out = verification.structure_problems(kind, item, duration) if structure else []
    return out + (gap_problems(item, duration, min_gap) if item.get("evidence") else [])


def generation_fix(qa_type: str, duration: float, min_gap: float, structure: bool) -> Callable[[object], list[str]]:
    """Step 3's re-ask check on a long video: :func:`item_problems` of every item of a QA
    answer, as ``"item N: [kind] message"`` (the form of
    :func:`video_reasoning.verification.generation_fix`)."""
    kind = QA_TYPES[qa_type].verify

    def problems(answer) -> list[str]:
        return [f"item {n + 1}: {p}" for n, it in enumerate(answer.model_dump()["items"])
                for p in item_problems(kind, it, duration, min_gap, structure)]
    return problems


def leaks(text: str) -> list[str]:
    """What in a rewritten reasoning trace still refers to the source rather than the video:
    words such as caption, timeline or clip, and raw times (``12.5 s``, ``03:20``)."""
    out = [f"mentions '{m.group(0)}'" for m in _SOURCE_WORDS.finditer(text)]
    out += [f"gives the raw time '{written}'" for written, _ in verification.seconds_in(text)]
    return out


def render_reformat(items: list[dict], answer_of: Callable[[dict], str]) -> str:
    """Items for the reformat prompt: ``Q<id>. Question`` / ``Answer`` / ``Reasoning`` blocks,
    ids from 1 in item order."""
    return "\n\n".join(f"Q{i}. Question: {it['question'].strip()}\nAnswer: {answer_of(it)}\n"
                       f"Reasoning: {it['reasoning'].strip()}" for i, it in enumerate(items, start=1))


def reformat_check(n: int) -> Callable[[object], None]:
    """A check that a reformat answer rewrites each of items 1..``n`` once, without
    :func:`leaks`."""
    def check(answer) -> None:
        got = sorted(r.id for r in answer.rewrites)
        if got != list(range(1, n + 1)):
            raise ValueError(f"give one rewritten reasoning for each of items 1-{n} (got ids {got})")
        problems = [f"item {r.id}: {p}" for r in answer.rewrites for p in leaks(r.reasoning)]
        if problems:
            raise ValueError("; ".join(problems[:8]) + ": say when things happen in words, and write about the video")
    return check

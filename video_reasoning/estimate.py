"""What a run will cost, before it starts: no model call, no key, no server.

:func:`estimate` probes every input video (ffprobe), applies step 0's free checks (bad
input, length limit, duplicates), and plans each accepted video's calls exactly as the
steps make them (:mod:`video_reasoning.caption_steps`, :mod:`video_reasoning.qa_steps`):
combined or TAO's separate calls, one
call per chunk of the chunk plan, the highlight for anomaly videos, one call per QA type,
the verification calls; on the long-video path (:mod:`video_reasoning.long_video`) one call
per clip window, the segment summaries when the timeline exceeds its budget, the reformat
calls and one grounded re-answer per item with evidence events. Media tokens follow
Gemini's documented rates (:mod:`video_reasoning.costs`); text input tokens are the prompt
templates at 4 characters per token (:func:`video_reasoning.long_video.tokens`) plus the
captions and items they carry, at the expected output sizes of :data:`EXPECTED_OUTPUT`
(assumptions, not measurements); the upper bound takes every
output at the configured output limit and, in auto mode, every video as an anomaly.

A video whose step-0 record is already on disk is planned from it (its label, or none when
unsuitable); otherwise, in auto mode, the expected figures assume a normal video (no step
1c) and the upper bound an anomaly video. Re-asks and retries are not planned: each adds
one call's input again.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

from video_reasoning import long_video
from video_reasoning import media as mediamod
from video_reasoning.config import Settings
from video_reasoning.costs import GEMINI_DEFAULT_FPS, Usage, cost_usd, gemini_media_tokens, prices
from video_reasoning.inputs import VideoEntry
from video_reasoning.prompts import LONG_VIDEO_KEYS, VERIFICATION_KEYS, PromptSet, combined
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import ProbeRecord, RecordError, Status, read_record
from video_reasoning.steps import VERIFY, effective_steps, step_path

#: Expected output tokens per answer (assumed sizes, ours): per call, or per item for QA
#: and verification answers.
EXPECTED_OUTPUT = {"screening": 120, "filter": 40, "classification": 120, "captions": 700, "global": 200,
                   "dense": 500, "chunk": 150, "highlight_time": 80, "highlight_caption": 250, "description": 700,
                   "qa_item": 150, "blind_item": 15, "grounded_item": 40, "judge_item": 50,
                   "clip_caption": 60, "reformat_item": 120}
#: Per-call latencies (s) the wall-time table is given for.
LATENCIES_S = (1, 5, 10, 30)


@dataclass(frozen=True)
class Planned:
    """One planned call: step, role, prompt key, text input tokens, expected output tokens,
    media shown (s), its sampling (frames/s) and whether it has sound."""

    step: str
    role: str
    key: str
    text_in: int
    out: int
    media_s: float = 0.0
    fps: float = 0.0
    audio: bool = False


def plan_video(settings: Settings, prompts: PromptSet, probe: mediamod.Probe, mode: str) -> list[Planned]:
    """The calls one accepted video makes in ``mode`` (``anomaly`` or ``normal``), in step order."""
    wf = settings.workflow
    steps = effective_steps(wf)
    dur = probe.duration
    tpl = {k: long_video.tokens(v) for k, v in prompts.templates.items()}

    def fps(seconds: float) -> float:  # Gemini's sampling of media of this length (frames/s)
        if seconds <= wf.long_video_threshold_sec:
            return GEMINI_DEFAULT_FPS
        return mediamod.sample_fps(seconds, wf.long_video_sample_fps, wf.long_video_max_frames)

    E = EXPECTED_OUTPUT
    out: list[Planned] = []

    def vlm(step, key, seconds, expected, context=0):
        out.append(Planned(step, "vlm", key, tpl[key] + context, expected, seconds, fps(seconds), probe.has_audio))

    def llm(step, key, context, expected):
        out.append(Planned(step, "llm", key, tpl[key] + context, expected))

    if "0" in steps:
        if wf.mode == "auto" and combined("0", settings):
            vlm("0", "video_screening", dur, E["screening"])
        else:
            vlm("0", "video_filtering", dur, E["filter"])
            if wf.mode == "auto":
                vlm("0", "video_anomaly_classification", dur, E["classification"])
    captions = 0
    if "1a" in steps:
        if combined("1a", settings):
            vlm("1a", f"{mode}_captions", dur, E["captions"])
        else:
            vlm("1a", f"{mode}_global_caption", dur, E["global"])
            vlm("1a", f"{mode}_dense_caption", dur, E["dense"])
        captions += E["global"] + E["dense"]
    lv = settings.long_video
    long = long_video.is_long(settings, dur)
    if "1b" in steps and long:  # clip windows at their own rate; the timeline is ~ their captions
        key = LONG_VIDEO_KEYS["clips"]
        for w in long_video.clip_windows(dur, lv.clip_sec, lv.clips_per_request):
            out.append(Planned("1b", "vlm", key, tpl[key] + 8 * len(w), len(w) * E["clip_caption"],
                               w[-1][1] - w[0][0], lv.sample_fps, probe.has_audio))
            captions += len(w) * E["clip_caption"]
    elif "1b" in steps:
        chunk_s = mediamod.select_chunk_duration(dur, wf.chunk_duration_options, wf.max_chunks)
        for s, e in mediamod.plan_chunks(dur, chunk_s):
            vlm("1b", f"{mode}_chunk_caption", e - s, E["chunk"])
            captions += E["chunk"]
    if "1c" in steps and mode == "anomaly":
        llm("1c", "highlight_timestamp_extraction", captions, E["highlight_time"])
        s, e = mediamod.highlight_window(dur / 2, dur, wf.highlight_before_sec, wf.highlight_after_sec)
        vlm("1c", "highlight_chunk_caption", e - s, E["highlight_caption"])
        captions += E["highlight_caption"]
    if "2" in steps:
        timeline = (len(long_video.clip_windows(dur, lv.clip_sec, 1)) * E["clip_caption"]) if long else 0
        if long and timeline > lv.timeline_token_budget:  # segment summaries replace the timeline
            spans = long_video.segment_windows(dur, lv.segment_sec)
            summary = math.ceil(long_video.summary_words(lv.timeline_token_budget, len(spans)) * 1.3)
            for _ in spans:
                llm("2", LONG_VIDEO_KEYS["segment"], math.ceil(timeline / len(spans)), summary)
            captions += len(spans) * summary - timeline
        llm("2", f"{mode}_description", captions, E["description"])
    n_items = _items(settings)
    qa_types = [q for q in wf.qa_types if long or not QA_TYPES[q].long_only]
    if "3" in steps:
        for q in qa_types:
            llm("3", QA_TYPES[q].prompt_key(mode), captions + E["description"], n_items * E["qa_item"])
            if long and lv.reformat:
                llm("3", LONG_VIDEO_KEYS["reformat"], n_items * E["qa_item"], n_items * E["reformat_item"])
    if VERIFY in steps:
        ver = settings.verification
        kinds = [QA_TYPES[q].verify for q in qa_types]
        choice = n_items * sum(k in ("choice", "yes_no") for k in kinds)
        opened = n_items * sum(k == "open" for k in kinds)
        if ver.blind_probe and choice:
            for _ in range(2):
                llm(VERIFY, VERIFICATION_KEYS["blind_probe"], choice * 60, choice * E["blind_item"])
        windowed = [q for q in qa_types if long and "evidence" in QA_TYPES[q].item.model_fields]
        whole = len(qa_types) - len(windowed)
        if ver.grounded_reanswer and whole:
            vlm(VERIFY, VERIFICATION_KEYS["grounded_reanswer"], dur, n_items * whole * E["grounded_item"],
                n_items * whole * 80)
        if ver.grounded_reanswer:  # one call per item with evidence, over the span of its events (about)
            span = min(dur, lv.min_event_gap_sec + 2 * lv.clip_sec + 10)
            for _ in range(n_items * len(windowed)):
                vlm(VERIFY, VERIFICATION_KEYS["grounded_reanswer"], span, E["grounded_item"], 80)
        if ver.judge and ver.grounded_reanswer and opened:
            llm(VERIFY, VERIFICATION_KEYS["judge"], opened * 200, opened * E["judge_item"])
    return out


def _items(settings: Settings) -> int:
    from video_reasoning.steps import items_to_write

    return items_to_write(settings)


def critical_path(plan: list[Planned]) -> int:
    """Calls one after another in one video's jobs (calls of a step made side by side count once)."""
    rounds = 0
    for step in dict.fromkeys(p.step for p in plan):
        calls = [p for p in plan if p.step == step]
        if step == "0":
            rounds += len(calls)
        elif step == "1c":
            rounds += 2
        elif step == VERIFY:
            rounds += 1 + any(p.key == VERIFICATION_KEYS["judge"] for p in calls)
        elif step in ("2", "3"):  # segment summaries before the description; the reformat after the items
            rounds += 1 + any(p.key in (LONG_VIDEO_KEYS["segment"], LONG_VIDEO_KEYS["reformat"]) for p in calls)
        else:
            rounds += 1
    return rounds


def _call_tokens(settings: Settings, p: Planned, upper: bool) -> tuple[Optional[int], int]:
    """``(input tokens or None when the backend documents no media rate, output tokens)``."""
    block = getattr(settings, p.role)
    out = block.gemini.max_output_tokens if block.backend == "gemini" else block.openai.max_tokens
    out = out if upper else min(p.out, out)
    if not p.media_s:
        return p.text_in, out
    if block.backend != "gemini":
        return None, out
    media = gemini_media_tokens(block.model, block.gemini.media_resolution, p.media_s, p.fps, p.audio)
    return p.text_in + media, out


def estimate(settings: Settings, prompts: PromptSet, videos: list[VideoEntry], results_dir: str,
             duplicates: dict) -> dict:
    """The estimate of a run (what ``estimate.json`` holds).

    Args:
        videos: the run's inputs (:func:`video_reasoning.inputs.discover`).
        duplicates: ``duplicates.json`` (video id -> its original, ``kind``).

    Returns:
        ``videos`` (total, accepted, rejected with reasons, duplicates), ``media`` (seconds
        and frames shown to the VLM, media passes per accepted video: seconds shown / video
        seconds), ``calls`` and ``tokens`` per step
        (``expected`` and ``upper_bound``), ``cost_usd`` (expected, upper bound; "unknown"
        without a price or a media rate), ``wall_time_s`` per latency at ``max_workers``,
        and the ``assumptions``.
    """
    wf = settings.workflow
    table = prices(settings)
    rejected, dups, accepted, seconds = [], [], 0, 0.0
    plans = {"expected": [], "upper_bound": []}
    crit = 0  # one video's calls in sequence (the longest plan's)
    for e in videos:
        problem, probe = e.problem, None
        if not problem:
            try:
                probe = mediamod.probe(e.path)
            except mediamod.MediaError as exc:
                problem = f"{e.path}: {exc}"
        if not problem and probe.duration > wf.max_video_length_sec:
            problem = f"{e.path}: {probe.duration:.1f} s is longer than workflow.max_video_length_sec"
        if problem:
            rejected.append({"path": e.path or e.source, "reason": problem})
            continue
        dup = duplicates.get(e.vid)
        if dup and (dup["kind"] == "exact" or settings.data.near_duplicates == "skip"):
            dups.append({"path": e.path, "duplicate_of": dup["path"]})
            continue
        accepted += 1
        seconds += probe.duration
        known = _step0(results_dir, e.vid)
        if known is not None and known.status is Status.UNSUITABLE:
            plan = plan_video(settings, prompts, probe, "normal")
            plans["expected"] += [p for p in plan if p.step == "0"]
            plans["upper_bound"] += [p for p in plan if p.step == "0"]
            continue
        mode = (known.mode if known is not None and known.mode else None) or (
            wf.mode if wf.mode != "auto" else None)
        plans["expected"] += plan_video(settings, prompts, probe, mode or "normal")
        upper = plan_video(settings, prompts, probe, mode or "anomaly")
        plans["upper_bound"] += upper
        crit = max(crit, critical_path(upper))
    result = {"videos": {"total": len(videos), "accepted": accepted, "rejected": len(rejected),
                         "duplicates": len(dups), "rejected_videos": rejected, "duplicate_videos": dups}}
    calls, tokens, cost = {}, {}, {}
    for bound, plan in plans.items():
        by_step: dict[str, int] = {}
        tok: dict[str, dict] = {}
        usd: Optional[float] = 0.0
        for p in plan:
            by_step[p.step] = by_step.get(p.step, 0) + 1
            t_in, t_out = _call_tokens(settings, p, bound == "upper_bound")
            row = tok.setdefault(p.step, {"input": 0, "output": 0})
            row["input"] = None if t_in is None or row["input"] is None else row["input"] + t_in
            row["output"] += t_out
            price = table.get(getattr(settings, p.role).model)
            c = cost_usd(Usage(t_in, 0, t_out), price) if t_in is not None else None
            usd = None if usd is None or c is None else usd + c
        calls[bound] = {**by_step, "total": sum(by_step.values())}
        tokens[bound] = tok
        cost[bound] = "unknown" if usd is None else round(usd, 4)
    expected = plans["expected"]
    result["calls"] = calls
    result["media"] = {"seconds": round(sum(p.media_s for p in expected), 1),
                       "frames": sum(max(1, round(p.media_s * p.fps)) for p in expected if p.media_s),
                       "passes_per_video": round(sum(p.media_s for p in expected) / seconds, 2) if seconds else 0}
    result["tokens"] = tokens
    result["cost_usd"] = cost
    models = {getattr(settings, r).model for r in ("vlm", "llm")}
    result["prices"] = {m: table[m].model_dump() if m in table else "unknown" for m in sorted(models)}
    per_role = {r: sum(1 for p in expected if p.role == r) for r in ("vlm", "llm")}
    result["wall_time_s"] = {"max_workers": wf.max_workers, "calls_per_backend": per_role,
                             "by_latency_s": {str(lat): round(max(per_role.values()) * lat / wf.max_workers
                                                              + crit * lat, 1) for lat in LATENCIES_S}}
    result["assumptions"] = [
        "text: prompt templates and the captions/items they carry at 4 characters per token; expected output "
        f"sizes per answer: {EXPECTED_OUTPUT}",
        "media: Gemini bills frames at its documented rate for the model and media_resolution, at 1 frame/s "
        "up to long_video_threshold_sec, plus 32 tokens/s of audio; OpenAI-compatible servers document no rate "
        "(input tokens and cost 'unknown' there)",
        "auto mode: a video without a step-0 record is expected normal (no step 1c), an anomaly in the upper bound",
        "no re-asks or retries (each adds one call's input again); no provider-side cache discount",
        "wall time: the busier backend's calls / max_workers x latency, plus one video's calls in sequence",
    ]
    return result


def _step0(results_dir: str, vid: str) -> Optional[ProbeRecord]:
    """The video's step-0 record when one of this schema version is on disk, else None."""
    path = step_path(results_dir, "0", vid)
    try:
        return read_record(path, ProbeRecord) if os.path.exists(path) else None
    except RecordError:  # another version: planned as if absent
        return None


def report(est: dict) -> str:
    """The estimate as a few lines of text."""
    v, c = est["videos"], est["calls"]
    steps = ", ".join(f"{k} {n}" for k, n in c["expected"].items() if k != "total")
    wall = ", ".join(f"{lat} s/call: {s / 60:.1f} min" for lat, s in est["wall_time_s"]["by_latency_s"].items())

    def usd(x):
        return x if x == "unknown" else f"${x:.4f}"

    return "\n".join([
        f"videos: {v['total']} found, {v['accepted']} accepted, {v['rejected']} rejected by the probe, "
        f"{v['duplicates']} duplicates (no call)",
        f"calls: {c['expected']['total']} expected ({steps}); at most {c['upper_bound']['total']}",
        f"media shown to the VLM: {est['media']['seconds']:.0f} s, {est['media']['frames']} frames",
        f"cost: {usd(est['cost_usd']['expected'])} expected, at most {usd(est['cost_usd']['upper_bound'])}",
        f"wall time at max_workers {est['wall_time_s']['max_workers']}: {wall}",
    ])

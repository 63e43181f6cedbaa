"""Steps 2 and 3 (the LLM writes): the structured description (on the long-video path
after segment summaries when the timeline is over its token budget) and the QA items of
each QA type, with the long-video reasoning reformat. Each takes a
:class:`~video_reasoning.context.VideoContext`; the step registry names them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from video_reasoning import long_video, verification
from video_reasoning.client import ModelClient, Reply
from video_reasoning.context import MAX_THREADS, VideoContext, blank, prompt_context, within
from video_reasoning.prompts import LONG_VIDEO_KEYS
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import ChunkRecord, DescriptionRecord, QARecord, Segment, Status
from video_reasoning.retry import BlockedError, ModelCallError
from video_reasoning.steps import items_to_write


def step2(job: VideoContext) -> DescriptionRecord:
    """The LLM's structured description of the video from all captions. On the long-video
    path, when the clip timeline exceeds ``long_video.timeline_token_budget`` tokens, first a
    summary of each ``segment_sec`` segment (LLM calls side by side), which the description
    and step 3 read instead of the timeline."""
    b = job.records.get("1b")
    llm = job.client("llm", "2")
    calls, segments, timeline_tokens = [], [], 0
    try:
        if b and b.long_video:
            timeline_tokens = long_video.tokens(long_video.timeline(b.chunks))
            if timeline_tokens > job.settings.long_video.timeline_token_budget:
                segments, calls = _segment_summaries(job, llm, b)
        ctx = prompt_context(job)
        if segments:
            ctx["chunk_captions_str"] = long_video.render_segments(segments)
        r = job.ask(llm, f"{job.mode}_description", ctx, check=within(job.probe.duration))
    finally:
        llm.close()
    return DescriptionRecord(status=Status.DONE, mode=job.mode, description=r.answer, calls=[*calls, r.record()],
                             timeline_tokens=timeline_tokens, segments=segments)


def _segment_summaries(job: VideoContext, llm: ModelClient, b: ChunkRecord) -> tuple[list[Segment], list]:
    """One summary per ``long_video.segment_sec`` segment of the timeline, each short enough
    that all fit the token budget (checked, re-asked otherwise)."""
    lv = job.settings.long_video
    spans = long_video.segment_windows(job.probe.duration, lv.segment_sec)
    words = long_video.summary_words(lv.timeline_token_budget, len(spans))

    def ask(span: tuple[float, float]) -> Reply:
        s, e = span
        values = {"start": f"{s:g}", "end": f"{e:g}", "max_words": str(words),
                  "timeline": long_video.segment_timeline(b.chunks, s, e) or "N/A"}
        return job.ask(llm, LONG_VIDEO_KEYS["segment"], values, check=long_video.summary_check(words))

    with ThreadPoolExecutor(max_workers=min(len(spans), MAX_THREADS)) as pool:  # the call slots bound the calls
        replies = list(pool.map(ask, spans))
    segments = [Segment(start=s, end=e, summary=r.answer["summary"]) for (s, e), r in zip(spans, replies)]
    return segments, [r.record() for r in replies]



def step3(job: VideoContext, qa_types: list[str]) -> dict[str, QARecord]:
    """QA items with reasoning, one LLM call per QA type, the calls side by side within the
    call slots. Structure problems (times past the end, a length-outlier key, ...) are sent
    back to the LLM to fix (:func:`video_reasoning.verification.generation_fix`).

    On the long-video path ``long_reasoning`` items whose evidence events are closer than
    ``long_video.min_event_gap_sec`` are sent back too, and with ``long_video.reformat`` each
    QA type's reasoning traces are rewritten by one more call (originals kept in the
    record). A ``long_only`` type on a shorter video gets a ``not_applicable`` record at no
    cost. Each QA type stands alone: a type whose call failed for good (or was blocked) gets
    a ``failed`` (``blocked``) record with the error, the others their items.
    """
    probe, mode = job.probe, job.mode
    lv = job.settings.long_video
    long = long_video.is_long(job.settings, probe.duration)
    ctx = {**prompt_context(job), "num_items": str(items_to_write(job.settings)),
           "min_event_gap": f"{lv.min_event_gap_sec:g}"}
    fix = "structure" in job.settings.verification.checks()
    out = {q: blank("3", q, job, Status.NOT_APPLICABLE,
                     f"{probe.duration:.1f} s is not longer than long_video's threshold "
                     f"({lv.threshold(job.settings.workflow):g} s)")
           for q in qa_types if QA_TYPES[q].long_only and not long}
    todo = [q for q in qa_types if q not in out]
    llm = job.client("llm", "3")

    def write(q: str) -> QARecord:
        check = (long_video.generation_fix(q, probe.duration, lv.min_event_gap_sec, fix) if long else
                 verification.generation_fix(q, probe.duration) if fix else None)
        r = job.ask(llm, QA_TYPES[q].prompt_key(mode), ctx, fix=check)
        rec = QARecord(status=Status.DONE, qa_type=q, mode=mode, video_id=job.vid, path=job.video_path,
                       sha256=probe.sha256, duration=probe.duration, items=r.answer["items"], calls=[r.record()])
        return _reformat(job, llm, rec) if long and lv.reformat else rec

    try:
        with ThreadPoolExecutor(max_workers=max(len(todo), 1)) as pool:  # the call slots bound the calls
            futures = {q: pool.submit(write, q) for q in todo}
            for q, f in futures.items():
                try:
                    out[q] = f.result()
                except ModelCallError as exc:  # BlockedError included
                    status = Status.BLOCKED if isinstance(exc, BlockedError) else Status.FAILED
                    out[q] = blank("3", q, job, status, str(exc))
    finally:
        llm.close()
    return out


def _reformat(job: VideoContext, llm: ModelClient, rec: QARecord) -> QARecord:
    """``long_video.reformat``: the LLM rewrites every reasoning trace of ``rec`` for fluency,
    keeping its facts, without captions or raw times (checked, re-asked otherwise); the
    originals go to ``original_reasoning``."""
    kind = QA_TYPES[rec.qa_type].verify
    r = job.ask(llm, LONG_VIDEO_KEYS["reformat"],
                {"items": long_video.render_reformat(rec.items, lambda it: verification.key_text(kind, it))},
                check=long_video.reformat_check(len(rec.items)))
    rewritten = {w["id"]: w["reasoning"] for w in r.answer["rewrites"]}
    items = [{**it, "reasoning": rewritten[n]} for n, it in enumerate(rec.items, start=1)]
    return rec.model_copy(update={"items": items, "original_reasoning": [it["reasoning"] for it in rec.items],
                                  "calls": [*rec.calls, r.record()]})



"""The per-video steps (0, 1a, 1b, 1c, 2, 3, verify): typed records in, typed records out.

Step scripts (``scripts/<job>.py``) are thin: they call :func:`run_job` with the Snakemake
object. Each step reads earlier records of the same video, asks the models through
:class:`~video_reasoning.client.ModelClient`, and returns its record (models in
:mod:`video_reasoning.records`, paths and jobs in :mod:`video_reasoning.steps`). A video
that step 0 rejected or found unsuitable flows through later steps as ``skipped`` records
that cost no call.

A job that fails on a video (a call failed for good, or anything else) still writes every
output: what it could not produce as ``failed`` records carrying the error. The failure is
also kept in the job's failure record, whose token the rule carries as a param, so the
next run reruns exactly that job (answered calls come from the cache) while every other
video's work, step 4 and the summary go on.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from video_reasoning import long_video, progress, verification
from video_reasoning import media as mediamod
from video_reasoning.client import ModelClient, Reply, scrub
from video_reasoning.config import Settings, api_key_for, secrets_in_use, settings_from_config
from video_reasoning.costs import prices
from video_reasoning.duplicates import Match, exact_copy_of, match_of
from video_reasoning.manifest import Manifest
from video_reasoning.media import MediaRef
from video_reasoning.models import ClassificationAnswer, FilterAnswer, ScreeningAnswer
from video_reasoning.prompts import (
    LONG_VIDEO_KEYS,
    VERIFICATION_KEYS,
    PromptSet,
    combined,
    load_prompts,
    model_for_key,
)
from video_reasoning.providers.base import Request
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import (
    CaptionRecord,
    Chunk,
    ChunkRecord,
    DescriptionRecord,
    HighlightRecord,
    ProbeRecord,
    QARecord,
    Record,
    Segment,
    Status,
    VerificationRecord,
    read_record,
    write_record,
)
from video_reasoning.retry import BlockedError, ModelCallError
from video_reasoning.slots import MACHINE_SLOTS_ENV, JobSlots, MachineSlots
from video_reasoning.steps import (
    JOBS,
    JOBS_PER_BACKEND,
    STEPS,
    VERIFY,
    cache_path,
    failure_path,
    last_job,
    manifest_path,
    output_key,
    step_of_output,
)
from video_reasoning.store import atomic_write_json, read_json

log = logging.getLogger("video_reasoning")
#: Most threads a step starts for its calls (the long-video path may have hundreds of
#: windows); the call slots bound the calls in flight well below it.
MAX_THREADS = 32


@dataclass
class Job:
    """Everything a job's steps need about one video.

    ``records`` holds the records read from the job's inputs and those its own steps
    wrote, by step name; ``qa`` the step-3 records read, by QA type.
    """

    vid: str
    settings: Settings
    prompts: PromptSet
    results_dir: str
    records: dict[str, Record]
    qa: dict[str, QARecord] = field(default_factory=dict)
    video_path: str = ""
    source: str = ""
    problem: str = ""
    duplicate: Optional[Match] = None
    peers: list[tuple[str, str]] = field(default_factory=list)  # earlier videos of the same size
    units: dict[str, int] = field(default_factory=dict)  # call units held per backend (Snakemake resources)
    slots: dict[str, MachineSlots | JobSlots] = field(default_factory=dict)

    def client(self, role: str, step: str) -> ModelClient:
        """A client for ``role`` whose requests hold a call slot of that role
        (:mod:`video_reasoning.slots`): on one machine one of the run's ``max_workers``
        machine-wide slots, on a cluster one of the calls the job holds units of
        ``<role>_calls`` for (1 when it holds none)."""
        block = getattr(self.settings, role)
        cache = cache_path(self.results_dir)
        if role not in self.slots:
            folder = os.environ.get(MACHINE_SLOTS_ENV)
            self.slots[role] = (MachineSlots(os.path.join(folder, role), self.settings.workflow.max_workers)
                                if folder else JobSlots(self.units.get(role, 0) // JOBS_PER_BACKEND))
        return ModelClient(role, block, self.settings.workflow, api_key_for(role, block), cache,
                           context=f"video {self.vid} ({self.video_path or self.source}), step {step}",
                           slots=self.slots[role], step=step, price=prices(self.settings).get(block.model))

    def request(self, key: str, values: dict, media: MediaRef | None = None, check=None, fix=None) -> Request:
        """The request of prompt ``key`` filled with ``values``, about this video (its
        content hash: byte-identical copies share answers, other videos never). Step 0's
        requests carry the video; later steps read its probe from step 0's record."""
        video = (media.probe if media else self.probe).sha256
        return Request(prompt_key=key, prompt=self.prompts.render(key, **values), answer_model=model_for_key(key),
                       tao_format=self.prompts.is_tao(key), media=media, check=check, fix=fix, video=video)

    def ask(self, client: ModelClient, key: str, values: dict, media: MediaRef | None = None, check=None,
            fix=None) -> Reply:
        """Ask ``client`` the prompt ``key`` filled with ``values``."""
        return client.ask(self.request(key, values, media, check, fix))

    @property
    def probe(self) -> mediamod.Probe:
        """The video's probe (from step 0's record)."""
        return self.records["0"].probe

    @property
    def mode(self) -> str:
        """``anomaly`` or ``normal`` (step 0's label, or the spec's mode)."""
        return self.records["0"].mode or "normal"


# ---------------------------------------------------------------- shared helpers


def upstream_problem(job: Job) -> str:
    """Why this video cannot go on (empty when every earlier record is usable)."""
    for name, rec in job.records.items():
        if not rec.status.ok:
            return f"step {name}: {rec.status.value}: {rec.reason}".strip()
    return ""


def _within(duration: float):
    """A check that every time in an answer lies inside the video (with 1 s of slack)."""
    def check(answer):
        for attr in ("events", "timeline"):
            for ev in getattr(answer, attr, None) or []:
                for f in ("start_sec", "end_sec"):
                    v = getattr(ev, f, None)
                    if v is not None and v > duration + verification.TIME_SLACK_S:
                        raise ValueError(f"{attr}: {f}={v} is past the end of the {duration:.1f} s video")
        t = getattr(answer, "anomaly_time_sec", None)
        if t is not None and t > duration + verification.TIME_SLACK_S:
            raise ValueError(f"anomaly_time_sec={t} is past the end of the {duration:.1f} s video")
    return check


def render_events(events) -> str:
    """Timestamped events as prompt text: ``[start-end s] description`` per line."""
    lines = [f"[{e.start_sec:.1f}-{e.end_sec:.1f} s] {e.description}" for e in events]
    return "\n".join(lines) or "N/A"


def render_chunks(chunks: list[Chunk]) -> str:
    """Chunk captions as prompt text: ``Chunk i (start-end s): caption``, blank-line separated."""
    return "\n\n".join(f"Chunk {c.index} ({c.start:.1f}-{c.end:.1f} s): {c.caption}" for c in chunks) or "N/A"


def render_description(d) -> str:
    """A step-2 description as prompt text (the ``{step_2_output}`` placeholder)."""
    parts = []
    if d.setting:
        parts.append(f"Setting: {d.setting}")
    if d.actors:
        parts.append("Actors: " + "; ".join(d.actors))
    parts.append("Timeline:\n" + render_events(d.timeline))
    if d.anomaly:
        parts.append(f"Anomaly: {d.anomaly}")
    parts.append(f"Summary: {d.summary}")
    return "\n".join(parts)


def _context(job: Job) -> dict:
    """Placeholder values from the captions and description available to this job."""
    a, b = job.records.get("1a"), job.records.get("1b")
    c, d = job.records.get("1c"), job.records.get("2")
    dense = render_events(a.dense_events) if a and a.dense_events else "N/A"
    highlight = ""
    if c and c.status is Status.DONE:
        highlight = (f"Highlight clip ({c.start:.1f}-{c.end:.1f} s, anomaly near {c.anomaly_time:.1f} s):\n"
                     f"{c.caption}")
    return {
        "video_length": f"{job.probe.duration:.1f}",
        "global_caption": (a.global_caption if a else "") or "N/A",
        "dense_caption": dense,
        "dense_section": f"Timestamped events:\n{dense}",
        "chunk_captions_str": _chunk_text(b, d),
        "highlight_section": highlight,
        "step_2_output": render_description(d.description) if d and d.description else "N/A",
    }


def _chunk_text(b: ChunkRecord | None, d: DescriptionRecord | None) -> str:
    """The ``{chunk_captions_str}`` placeholder: TAO's chunk captions; on the long-video path
    the clip timeline, or its segment summaries when step 2 made them."""
    if not b or not b.chunks:
        return "N/A"
    if not b.long_video:
        return render_chunks(b.chunks)
    if d and d.segments:
        return long_video.render_segments(d.segments)
    return long_video.timeline(b.chunks)


# ---------------------------------------------------------------- steps


def step0(job: Job) -> ProbeRecord:
    """Probe the video; in step 0 proper, ask the VLM whether it is suitable and (auto mode)
    whether it shows an anomaly. Bad input is rejected with its reason at no model cost."""
    wf = job.settings.workflow
    rec = ProbeRecord(video_id=job.vid, path=job.video_path, source=job.source, status=Status.REJECTED)
    if job.problem:
        return rec.model_copy(update={"reason": job.problem})
    try:
        probe = mediamod.probe(job.video_path)
    except mediamod.MediaError as exc:
        return rec.model_copy(update={"reason": f"{job.video_path}: {exc}"})
    rec.probe = probe
    if probe.duration > wf.max_video_length_sec:
        rec.reason = (f"{job.video_path}: {probe.duration:.1f} s is longer than workflow.max_video_length_sec "
                      f"({wf.max_video_length_sec:g} s); raise the limit or trim the video")
        return rec
    dup = job.duplicate or exact_copy_of(probe.sha256, job.peers)
    if dup and (dup.kind == "exact" or job.settings.data.near_duplicates == "skip"):
        rec.status = Status.DUPLICATE
        rec.reason = (f"{job.video_path}: the same content as {dup.path}, annotated once" if dup.kind == "exact" else
                      f"{job.video_path}: a near-duplicate of {dup.path} (frames differ by {dup.distance:g} of 64 "
                      "bits), skipped as data.near_duplicates says")
        return rec
    rec.status, rec.mode = Status.ACCEPTED, None if wf.mode == "auto" else wf.mode
    if "0" not in wf.effective_steps():
        return rec
    vlm = job.client("vlm", "0")
    try:
        whole = MediaRef(probe)
        if wf.mode == "auto" and combined("0", job.settings):  # one whole-video call for both answers
            r = job.ask(vlm, "video_screening", {}, whole)
            rec.calls.append(r.record())
            both = ScreeningAnswer.model_validate(r.answer)
            rec.filter = FilterAnswer(suitable=both.suitable, reason=both.reason)
            rec.classification = ClassificationAnswer(observation=both.observation, reasoning=both.reasoning,
                                                      label=both.label)
        else:
            filt = job.ask(vlm, "video_filtering", {}, whole)
            rec.calls.append(filt.record())
            rec.filter = FilterAnswer.model_validate(filt.answer)
        if not rec.filter.suitable:
            rec.status, rec.reason = Status.UNSUITABLE, rec.filter.reason
            return rec
        if wf.mode == "auto":
            if rec.classification is None:
                cls = job.ask(vlm, "video_anomaly_classification", {}, whole)
                rec.calls.append(cls.record())
                rec.classification = ClassificationAnswer.model_validate(cls.answer)
            rec.mode = rec.classification.label
    except BlockedError as exc:
        log.error("%s", exc)
        rec.status, rec.reason = Status.BLOCKED, str(exc)
    finally:
        vlm.close()
    return rec


def step1a(job: Job) -> CaptionRecord:
    """Global caption and dense (timestamped) caption of the whole video by the VLM: one
    call with our prompt set (``<mode>_captions``), TAO's two calls otherwise."""
    probe, mode = job.probe, job.mode
    vlm = job.client("vlm", "1a")
    try:
        whole = MediaRef(probe)
        if combined("1a", job.settings):
            r = job.ask(vlm, f"{mode}_captions", {}, whole, check=_within(probe.duration))
            return CaptionRecord(status=Status.DONE, mode=mode, global_caption=r.answer["caption"],
                                 dense_events=r.answer["events"], calls=[r.record()])
        with ThreadPoolExecutor(max_workers=2) as pool:  # independent calls; the job's call slots bound them
            g_f = pool.submit(job.ask, vlm, f"{mode}_global_caption", {}, whole)
            d_f = pool.submit(job.ask, vlm, f"{mode}_dense_caption", {}, whole, check=_within(probe.duration))
            g, d = g_f.result(), d_f.result()
    finally:
        vlm.close()
    return CaptionRecord(status=Status.DONE, mode=mode, global_caption=g.answer["caption"],
                         dense_events=d.answer["events"], calls=[g.record(), d.record()])


def step1b(job: Job) -> ChunkRecord:
    """Chunk the video (smallest ``chunk_duration_options`` entry giving at most ``max_chunks``)
    and caption every chunk with the VLM, the calls side by side within the call slots."""
    if long_video.is_long(job.settings, job.probe.duration):
        return clip_captions(job)
    wf = job.settings.workflow
    probe, mode = job.probe, job.mode
    chunk_s = mediamod.select_chunk_duration(probe.duration, wf.chunk_duration_options, wf.max_chunks)
    windows = mediamod.plan_chunks(probe.duration, chunk_s)
    key = f"{mode}_chunk_caption"
    values = {"chunk_duration": f"{chunk_s:g}"}
    vlm = job.client("vlm", "1b")
    try:
        refs = [MediaRef(probe, s, e) for s, e in windows]
        if job.settings.vlm.backend == "openai":
            refs = _precut(job, vlm, key, values, refs)
        with ThreadPoolExecutor(max_workers=len(refs)) as pool:  # the call slots bound the calls
            replies = list(pool.map(lambda r: job.ask(vlm, key, values, r), refs))
    finally:
        vlm.close()
    chunks = [Chunk(index=i, start=s, end=e, caption=r.answer["caption"])
              for i, ((s, e), r) in enumerate(zip(windows, replies))]
    return ChunkRecord(status=Status.DONE, mode=mode, chunk_duration=chunk_s, chunks=chunks,
                       calls=[r.record() for r in replies])


def clip_captions(job: Job) -> ChunkRecord:
    """Step 1b on the long-video path: every ``long_video.clip_sec`` clip of the video
    captioned by the VLM, ``clips_per_request`` consecutive clips per request (one window of
    the video shown at ``long_video.sample_fps``: for Gemini the one upload with offsets; for
    OpenAI-compatible servers frames from one sampling pass over the video), the requests
    side by side within the call slots. Clips are the record's chunks (``long_video``)."""
    lv = job.settings.long_video
    probe = job.probe
    windows = long_video.clip_windows(probe.duration, lv.clip_sec, lv.clips_per_request)
    firsts = [1 + sum(len(w) for w in windows[:i]) for i in range(len(windows))]
    key = LONG_VIDEO_KEYS["clips"]

    def ask(i: int) -> Reply:
        w, first = windows[i], firsts[i]
        values = {"start": f"{w[0][0]:g}", "end": f"{w[-1][1]:g}", "num_clips": str(len(w)),
                  "clip_sec": f"{lv.clip_sec:g}", "clips": long_video.render_clips(w, first)}
        return job.ask(vlm, key, values, MediaRef(probe, w[0][0], w[-1][1], fps=lv.sample_fps),
                       check=long_video.clips_check(list(range(first, first + len(w)))))

    vlm = job.client("vlm", "1b")
    try:
        with ThreadPoolExecutor(max_workers=min(len(windows), MAX_THREADS)) as pool:  # the call slots bound them
            replies = list(pool.map(ask, range(len(windows))))
    finally:
        vlm.close()
    chunks = []
    for w, first, r in zip(windows, firsts, replies):
        by_clip = {c["clip"]: c["caption"] for c in r.answer["captions"]}
        chunks += [Chunk(index=first + i - 1, start=s, end=e, caption=by_clip[first + i]) for i, (s, e) in enumerate(w)]
    return ChunkRecord(status=Status.DONE, mode=job.mode, chunk_duration=lv.clip_sec, chunks=chunks,
                       long_video=True, calls=[r.record() for r in replies])


def _precut(job: Job, vlm: ModelClient, key: str, values: dict, refs: list[MediaRef]) -> list[MediaRef]:
    """Cut all chunk clips in one ffmpeg pass when any chunk call shown as video is not cached yet."""
    short = [r for r in refs if not vlm.media.is_long(r)]
    if all(vlm.is_cached(job.request(key, values, r)) for r in short):
        return refs
    out = tempfile.mkdtemp(dir=vlm.scratch)
    clips = mediamod.cut_clips(refs[0].probe, [r.window for r in refs], out)
    return [MediaRef(r.probe, r.start, r.end, clip_path=c.path) for r, c in zip(refs, clips)]


def step1c(job: Job) -> HighlightRecord:
    """Anomaly videos only: the LLM picks the anomaly time from the captions, the VLM captions
    the highlight window ``[t - highlight_before_sec, t + highlight_after_sec]`` (clamped, >= 2 s)."""
    wf = job.settings.workflow
    probe, mode = job.probe, job.mode
    if mode != "anomaly":
        return HighlightRecord(status=Status.NOT_APPLICABLE, reason="normal video")
    llm = job.client("llm", "1c")
    try:
        t = job.ask(llm, "highlight_timestamp_extraction", _context(job), check=_within(probe.duration))
    finally:
        llm.close()
    anomaly = min(max(t.answer["anomaly_time_sec"], 0.0), probe.duration)
    start, end = mediamod.highlight_window(anomaly, probe.duration, wf.highlight_before_sec, wf.highlight_after_sec)
    vlm = job.client("vlm", "1c")
    try:
        values = {"anomaly_time": f"{anomaly:.1f}", "start_time": f"{start:.1f}", "end_time": f"{end:.1f}",
                  "duration": f"{end - start:.1f}"}
        c = job.ask(vlm, "highlight_chunk_caption", values, MediaRef(probe, start, end))
    finally:
        vlm.close()
    return HighlightRecord(status=Status.DONE, anomaly_time=anomaly, start=start, end=end,
                           caption=c.answer["caption"], evidence=t.answer["evidence"],
                           calls=[t.record(), c.record()])


def step2(job: Job) -> DescriptionRecord:
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
        ctx = _context(job)
        if segments:
            ctx["chunk_captions_str"] = long_video.render_segments(segments)
        r = job.ask(llm, f"{job.mode}_description", ctx, check=_within(job.probe.duration))
    finally:
        llm.close()
    return DescriptionRecord(status=Status.DONE, mode=job.mode, description=r.answer, calls=[*calls, r.record()],
                             timeline_tokens=timeline_tokens, segments=segments)


def _segment_summaries(job: Job, llm: ModelClient, b: ChunkRecord) -> tuple[list[Segment], list]:
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


def items_to_write(settings: Settings) -> int:
    """Items step 3 asks for per QA type: ``items_per_type``, and half as many again
    (rounded up) when verification may remove some, so the best can be kept."""
    n = settings.workflow.items_per_type
    return n + (n + 1) // 2 if settings.verification.checks() else n


def step3(job: Job, qa_types: list[str]) -> dict[str, QARecord]:
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
    ctx = {**_context(job), "num_items": str(items_to_write(job.settings)),
           "min_event_gap": f"{lv.min_event_gap_sec:g}"}
    fix = "structure" in job.settings.verification.checks()
    out = {q: _blank("3", q, job, Status.NOT_APPLICABLE,
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
                    out[q] = _blank("3", q, job, status, str(exc))
    finally:
        llm.close()
    return out


def _reformat(job: Job, llm: ModelClient, rec: QARecord) -> QARecord:
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


def step_verify(job: Job) -> VerificationRecord:
    """Check every step-3 item of the video (:mod:`video_reasoning.verification`): structure
    without a call; the two blind probes (LLM) and the grounded re-answer (VLM, whole video)
    side by side, each one call for all items; then the judge (LLM, one call) on the
    open-ended items. At most four calls per video, and on a long video one more per item
    with evidence events (its grounded re-answer over the window they span)."""
    ver = job.settings.verification
    probe = job.probe
    cands = verification.candidates(job.qa)
    checks = {c.id: verification.result(c) for c in cands}
    rec = VerificationRecord(status=Status.DONE, video_id=job.vid, path=job.video_path, sha256=probe.sha256,
                             duration=probe.duration, checks=list(ver.checks()))
    lv = job.settings.long_video
    if "structure" in rec.checks:
        for c in cands:
            for problem in long_video.item_problems(c.kind, c.item, probe.duration, lv.min_event_gap_sec):
                verification.fail(checks[c.id], "structure", problem)
    blind = verification.blind_items(cands) if ver.blind_probe else []
    grounded = cands if ver.grounded_reanswer else []
    groups = _grounded_groups(job, grounded)
    llm = job.client("llm", VERIFY)
    vlm = job.client("vlm", VERIFY)
    try:
        with ThreadPoolExecutor(max_workers=verification.BLIND_PROBES + len(groups)) as pool:  # slots bound them
            probes = [pool.submit(job.ask, llm, VERIFICATION_KEYS["blind_probe"],
                                  {"items": verification.render_blind(blind, p)}, check=verification.blind_check(blind))
                      for p in range(verification.BLIND_PROBES)] if blind else []
            seen = [(group, pool.submit(job.ask, vlm, VERIFICATION_KEYS["grounded_reanswer"],
                                        {"items": verification.render_grounded(group),
                                         "video_length": f"{probe.duration:.1f}"},
                                        media, check=verification.grounded_check(group)))
                    for media, group in groups]
            probes = [f.result() for f in probes]
            seen = [(group, f.result()) for group, f in seen]
        for p in probes:
            rec.calls.append(p.record())
        _score_blind(blind, probes, checks)
        answers = {}
        for group, reply in seen:
            rec.calls.append(reply.record())
            answers.update(_score_grounded(group, reply, ver.min_iou, checks))
        opened = [c for c in grounded if c.kind == "open"]
        if ver.judge and opened:
            judged = job.ask(llm, VERIFICATION_KEYS["judge"], {"items": verification.render_judge(opened, answers)},
                             check=verification.judge_check(opened))
            rec.calls.append(judged.record())
            _score_judge(judged, checks)
    finally:
        llm.close()
        vlm.close()
    rec.items = list(checks.values())
    return rec


#: Seconds of video shown before the first and after the last evidence event of a
#: long-video item in its grounded re-answer.
EVIDENCE_PAD_S = 5.0


def _grounded_groups(job: Job, grounded: list) -> list[tuple[MediaRef, list]]:
    """The grounded re-answer's calls: ``(media, items)``. Items with evidence events on a
    long video are each asked over the window their events span (padded by
    :data:`EVIDENCE_PAD_S`); every other item in one call over the whole video."""
    probe = job.probe
    long = long_video.is_long(job.settings, probe.duration)
    windowed = [c for c in grounded if long and c.item.get("evidence")]
    rest = [c for c in grounded if c not in windowed]
    groups = [(MediaRef(probe), rest)] if rest else []
    for c in windowed:
        ev = c.item["evidence"]
        start = max(0.0, min(e["start_sec"] for e in ev) - EVIDENCE_PAD_S)
        end = min(probe.duration, max(e["end_sec"] for e in ev) + EVIDENCE_PAD_S)
        groups.append((MediaRef(probe, round(start, 3), round(end, 3)) if end - start >= 2 else MediaRef(probe), [c]))
    return groups


def _score_blind(blind, probes: list[Reply], checks: dict) -> None:
    letters = {c.id: [] for c in blind}
    for p in probes:
        for a in p.answer["answers"]:
            letters[a["id"]].append(a["letter"])
    for c in blind:
        hits, chosen = verification.score_blind(c, letters[c.id])
        it = checks[c.id]
        it.blind_hits, it.answers["blind_probe"] = hits, chosen
        if hits == len(probes):
            verification.fail(it, "blind_probe", f"answered '{verification.key_text(c.kind, c.item)}' (the key) "
                                                 f"without the video in all {hits} probes")


def _score_grounded(grounded, seen: Reply, min_iou: float, checks: dict) -> dict[int, str]:
    """Score the VLM's answers; returns its answers by item id (for the judge)."""
    by_id = {a["id"]: a["answer"] for a in seen.answer["answers"]}
    for c in grounded:
        it = checks[c.id]
        it.answers["grounded_reanswer"] = by_id[c.id]
        problem = verification.score_grounded(c, verification.parse_grounded(c.kind, by_id[c.id]), min_iou)
        if problem:
            verification.fail(it, "grounded_reanswer", problem)
    return by_id


def _score_judge(judged: Reply, checks: dict) -> None:
    for v in judged.answer["verdicts"]:
        it = checks[v["id"]]
        it.answers["judge"] = v
        if not v["supported"]:
            verification.fail(it, "judge", f"the answer is not supported by what the VLM saw ({v['note']})")
        elif not v["reasoning_leads_to_answer"]:
            verification.fail(it, "judge", f"the reasoning does not lead to the answer ({v['note']})")


# ---------------------------------------------------------------- jobs

_RUN = {"1a": step1a, "1b": step1b, "1c": step1c, "2": step2, VERIFY: step_verify}


def _blank(step: str, qa_type: str | None, job: Job, status: Status, reason: str) -> Record:
    """A record of ``step`` that says only ``status`` and ``reason`` (no result)."""
    extra = {"0": {"video_id": job.vid, "path": job.video_path, "source": job.source},
             "3": {"qa_type": qa_type, "video_id": job.vid, "path": job.video_path},
             VERIFY: {"video_id": job.vid, "path": job.video_path}}.get(step, {})
    return STEPS[step].record(status=status, reason=reason, **extra)


class _Writer:
    """Writes a job's outputs as they are produced and hands each record to later steps."""

    def __init__(self, job: Job, outputs: dict[str, str]):
        self.job, self.outputs, self.written = job, outputs, set()

    def wants(self, step: str) -> bool:
        """True when the job has an output for ``step`` (a step with one record per video)."""
        return output_key(step) in self.outputs

    def put(self, step: str, record: Record, qa_type: str | None = None) -> None:
        """Write ``record`` to its output and make it available to later steps."""
        key = output_key(step, qa_type)
        write_record(self.outputs[key], record)
        self.written.add(key)
        if qa_type is None:
            self.job.records[step] = record
        log.info("video %s, step %s%s: %s %s", self.job.vid, step, f" ({qa_type})" if qa_type else "",
                 record.status.value, record.reason)

    def fail_rest(self, message: str) -> None:
        """Every output not written yet, as a ``failed`` record with ``message``."""
        for key in [k for k in self.outputs if k not in self.written]:
            step, q = step_of_output(key)
            self.put(step, _blank(step, q, self.job, Status.FAILED, message), q)


def _run_one(job: Job, step: str) -> Record:
    """The record of one sub-step: skipped (upstream problem), blocked, or its result."""
    problem = upstream_problem(job)
    if problem:
        return _blank(step, None, job, Status.SKIPPED, problem)
    try:
        return _RUN[step](job)
    except BlockedError as exc:
        log.error("%s", exc)
        return _blank(step, None, job, Status.BLOCKED, str(exc))


def run_steps(job: Job, writer: _Writer, job_name: str) -> None:
    """Run the steps of ``job_name`` whose outputs are wanted, each written as soon as done.

    ``caption_video``: step 0, then 1a and 1b side by side (they are independent), then 1c.
    ``write_qa``: step 2, then step 3 (one output per QA type). ``verify_qa``: the
    verification step. A video rejected upstream gets ``skipped`` records at no cost; a
    safety block is recorded as ``blocked`` and passed on as a skip.
    """
    steps = JOBS[job_name].steps
    if "0" in steps:
        writer.put("0", step0(job))
    side_by_side = [s for s in ("1a", "1b") if s in steps and writer.wants(s)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {s: pool.submit(_run_one, job, s) for s in side_by_side}
        records = {s: f.result() for s, f in futures.items()}
    for s in side_by_side:
        writer.put(s, records[s])
    for step in ("1c", "2", VERIFY):
        if step in steps and writer.wants(step):
            writer.put(step, _run_one(job, step))
    qa_types = [q for q in QA_TYPES if output_key("3", q) in writer.outputs]
    if "3" in steps and qa_types:
        problem = upstream_problem(job)
        results = ({q: _blank("3", q, job, Status.SKIPPED, problem) for q in qa_types}
                   if problem else step3(job, qa_types))
        for q in qa_types:
            writer.put("3", results[q], q)
        failed = [r.reason for r in results.values() if r.status is Status.FAILED]
        if failed:  # the other QA types are written; the job's failure record makes the next run retry
            raise ModelCallError(failed[0] if len(failed) == 1 else
                                 f"{len(failed)} QA types failed; first: {failed[0]}")


def _record_failure(results_dir: str, job_name: str, vid: str, message: str) -> None:
    atomic_write_json(failure_path(results_dir, job_name, vid),
                      {"video_id": vid, "job": job_name, "error": message, "resolved": False,
                       "token": uuid.uuid4().hex})


def _resolve_failure(results_dir: str, job_name: str, vid: str) -> None:
    path = failure_path(results_dir, job_name, vid)
    rec = read_json(path)
    if isinstance(rec, dict) and not rec.get("resolved"):
        atomic_write_json(path, {**rec, "resolved": True})


def run_job(smk, job_name: str) -> None:
    """Run one per-video job (see :data:`video_reasoning.steps.JOBS`) for the Snakemake job
    ``smk`` and write all its outputs.

    When the video fails (a call failed for good, or any other error), its unfinished
    outputs become ``failed`` records and the failure record gets a new token (the next
    run retries the job); the job itself succeeds, so the other videos, step 4 and the
    summary go on. Exits non-zero only when the prompts changed while the workflow ran.
    """
    _quiet_on_interrupt()
    settings = settings_from_config(smk.config)
    secrets = secrets_in_use(settings)
    _setup_logging(smk.log[0] if smk.log else None, secrets)
    results_dir = smk.config["results_dir"]
    prompts = load_prompts(settings)
    expected = dict(getattr(smk.params, "prompts", {}) or {})
    if expected and prompts.digest(expected) != expected:
        sys.exit(f"video {smk.wildcards.vid}: the prompts changed while the workflow ran; run snakemake again")
    vid = smk.wildcards.vid
    records = {}
    qa = {}
    for key, path in smk.input.items():
        named = step_of_output(key)  # the video itself is an input too
        if named and named[1]:
            qa[named[1]] = read_record(path, QARecord)
        elif named:
            records[named[0]] = read_record(path, STEPS[named[0]].record)
    dups = dict(smk.input.items()).get("duplicates")
    same_size = getattr(smk.params, "duplicate", 0) if not dups else 0
    data = settings.data
    shard = data.shard_index if data.shards > 1 else None
    peers = Manifest(manifest_path(results_dir, shard, data.shards)).same_size_before(vid) if same_size else []
    job = Job(vid=vid, settings=settings, prompts=prompts, results_dir=results_dir, records=records, qa=qa,
              video_path=smk.params.video, source=smk.params.source, problem=smk.params.problem,
              duplicate=match_of(dups, vid) if dups else None,
              peers=peers, units={r: int(getattr(smk.resources, f"{r}_calls", 1) or 1) for r in ("vlm", "llm")})
    writer = _Writer(job, dict(smk.output.items()))
    try:
        run_steps(job, writer, job_name)
    except Exception as exc:  # any failure of this video is recorded; the run goes on without it
        known = isinstance(exc, ModelCallError)  # its message names video, step, model and error
        message = scrub(str(exc) if known else
                        f"video {vid} ({job.video_path or job.source}), job {job_name}: {type(exc).__name__}: {exc}",
                        secrets)
        log.error("%s", message, exc_info=not known)
        writer.fail_rest(message)
        _record_failure(results_dir, job_name, vid, message)
    else:
        _resolve_failure(results_dir, job_name, vid)
    steps = settings.workflow.effective_steps()
    if job_name == last_job(steps):
        try:
            progress.finished(results_dir, vid, job.video_path, job.source, steps, settings.workflow.qa_types)
        except (OSError, ValueError) as exc:  # a progress line is not worth failing the video's job
            log.warning("video %s: no progress line: %s", vid, exc)


def _quiet_on_interrupt() -> None:
    """Ctrl-C reaches every process of the terminal's group: a job leaves it to Snakemake,
    which cancels the running jobs (SIGTERM); a cancelled job ends at once, without
    tracebacks from its call threads. Every file is written atomically, so none is left
    half-written; answered calls are in the response cache for the rerun."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))


class _ScrubFilter(logging.Filter):
    def __init__(self, secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record):
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = ()
        return True


def _setup_logging(path: str | None, secrets: list[str]) -> None:
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING)  # the terminal gets problems and the progress lines; the log everything
    handlers = [terminal]
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w", encoding="utf-8"))
    for h in handlers:
        h.addFilter(_ScrubFilter(secrets))
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    for noisy in ("httpx", "httpx2", "google_genai", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

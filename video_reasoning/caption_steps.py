"""Steps 0 and 1 (the VLM reads the video): screening, captions, chunk captions, the
long-video path's clip captions, and the anomaly highlight. Each takes a
:class:`~video_reasoning.context.VideoContext` and returns its record; the step registry
(:data:`video_reasoning.steps.STEPS`) names them."""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor

from video_reasoning import long_video
from video_reasoning import media as mediamod
from video_reasoning.client import ModelClient, Reply
from video_reasoning.context import MAX_THREADS, VideoContext, prompt_context, within
from video_reasoning.duplicates import exact_copy_of
from video_reasoning.media import MediaRef
from video_reasoning.models import ClassificationAnswer, FilterAnswer, ScreeningAnswer
from video_reasoning.prompts import LONG_VIDEO_KEYS, combined
from video_reasoning.records import CaptionRecord, Chunk, ChunkRecord, HighlightRecord, ProbeRecord, Status
from video_reasoning.retry import BlockedError

log = logging.getLogger("video_reasoning")


def step0(job: VideoContext) -> ProbeRecord:
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
    if "0" not in wf.tao_steps():
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


def step1a(job: VideoContext) -> CaptionRecord:
    """Global caption and dense (timestamped) caption of the whole video by the VLM: one
    call with our prompt set (``<mode>_captions``), TAO's two calls otherwise."""
    probe, mode = job.probe, job.mode
    vlm = job.client("vlm", "1a")
    try:
        whole = MediaRef(probe)
        if combined("1a", job.settings):
            r = job.ask(vlm, f"{mode}_captions", {}, whole, check=within(probe.duration))
            return CaptionRecord(status=Status.DONE, mode=mode, global_caption=r.answer["caption"],
                                 dense_events=r.answer["events"], calls=[r.record()])
        with ThreadPoolExecutor(max_workers=2) as pool:  # independent calls; the job's call slots bound them
            g_f = pool.submit(job.ask, vlm, f"{mode}_global_caption", {}, whole)
            d_f = pool.submit(job.ask, vlm, f"{mode}_dense_caption", {}, whole, check=within(probe.duration))
            g, d = g_f.result(), d_f.result()
    finally:
        vlm.close()
    return CaptionRecord(status=Status.DONE, mode=mode, global_caption=g.answer["caption"],
                         dense_events=d.answer["events"], calls=[g.record(), d.record()])


def step1b(job: VideoContext) -> ChunkRecord:
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


def clip_captions(job: VideoContext) -> ChunkRecord:
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


def _precut(job: VideoContext, vlm: ModelClient, key: str, values: dict, refs: list[MediaRef]) -> list[MediaRef]:
    """Cut all chunk clips in one ffmpeg pass when any chunk call shown as video is not cached yet."""
    short = [r for r in refs if not vlm.media.is_long(r)]
    if all(vlm.is_cached(job.request(key, values, r)) for r in short):
        return refs
    out = tempfile.mkdtemp(dir=vlm.scratch)
    clips = mediamod.cut_clips(refs[0].probe, [r.window for r in refs], out)
    return [MediaRef(r.probe, r.start, r.end, clip_path=c.path) for r, c in zip(refs, clips)]


def step1c(job: VideoContext) -> HighlightRecord:
    """Anomaly videos only: the LLM picks the anomaly time from the captions, the VLM captions
    the highlight window ``[t - highlight_before_sec, t + highlight_after_sec]`` (clamped, >= 2 s)."""
    wf = job.settings.workflow
    probe, mode = job.probe, job.mode
    if mode != "anomaly":
        return HighlightRecord(status=Status.NOT_APPLICABLE, reason="normal video")
    llm = job.client("llm", "1c")
    try:
        t = job.ask(llm, "highlight_timestamp_extraction", prompt_context(job), check=within(probe.duration))
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



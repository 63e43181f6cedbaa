"""The per-video steps (0, 1a, 1b, 1c, 2, 3) as functions from input records to an output record.

Step scripts (``scripts/step*.py``) are thin: they call :func:`run_job` with the Snakemake
object. Each step reads its inputs (earlier steps' JSON records of the same video), asks
the models through :class:`~video_reasoning.backends.ModelClient`, and returns the record
written atomically to its output. A video that step 0 rejected or found unsuitable flows
through later steps as ``skipped`` records that cost no call.

Record ``status`` values: step 0 ``accepted`` / ``rejected`` (bad input) / ``unsuitable``
(the VLM's filter) / ``blocked``; later steps ``done`` / ``skipped`` / ``not_applicable``
(step 1c on normal videos) / ``blocked`` (safety refusal, recorded, not retried).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from video_reasoning import media as mediamod
from video_reasoning.backends import BlockedError, CallSlots, MediaRef, ModelCallError, ModelClient, Reply, Request, scrub
from video_reasoning.config import Settings, api_key_for, secrets_in_use, settings_from_config
from video_reasoning.models import model_for_key
from video_reasoning.prompts import PromptSet, load_prompts, qa_prompt_key
from video_reasoning.store import atomic_write_json, read_json

log = logging.getLogger("video_reasoning")
_TOL = 1.0  # seconds of slack when checking model timestamps against the duration


@dataclass
class Job:
    """Everything a step needs about one video."""

    vid: str
    settings: Settings
    prompts: PromptSet
    results_dir: str
    inputs: dict  # input name -> parsed record
    video_path: str = ""
    source: str = ""
    problem: str = ""

    def client(self, role: str, step: str) -> ModelClient:
        """A client for ``role`` whose requests hold one of the run's ``max_workers`` call
        slots of that role (shared by all jobs through ``<cache>/slots/<role>/``)."""
        block = getattr(self.settings, role)
        cache = os.path.join(self.results_dir, ".cache")
        slots = CallSlots(os.path.join(cache, "slots", role), self.settings.workflow.max_workers)
        return ModelClient(role, block, self.settings.workflow, api_key_for(role, block), cache,
                           context=f"video {self.vid} ({self.video_path or self.source}), step {step}", slots=slots)

    def ask(self, client: ModelClient, key: str, values: dict, media: MediaRef | None = None, check=None) -> Reply:
        prompt = self.prompts.render(key, **values)
        return client.ask(Request(prompt_key=key, prompt=prompt, answer_model=model_for_key(key),
                                  tao_format=self.prompts.tao_format, media=media, check=check))


# ---------------------------------------------------------------- shared helpers


def _probe_of(job: Job) -> mediamod.Probe:
    return mediamod.Probe.model_validate(job.inputs["step0"]["probe"])


def _mode(job: Job) -> str:
    return job.inputs["step0"].get("mode") or "normal"


def _upstream_problem(job: Job) -> str:
    s0 = job.inputs.get("step0") or {}
    if s0.get("status") != "accepted":
        return f"step 0: {s0.get('status')}: {s0.get('reason', '')}".strip()
    for name, rec in job.inputs.items():
        if name != "step0" and rec.get("status") not in ("done", "not_applicable"):
            return f"{name}: {rec.get('status')}: {rec.get('reason', '')}".strip()
    return ""


def _within(duration: float):
    def check(answer):
        for attr in ("events", "timeline", "items"):
            for ev in getattr(answer, attr, None) or []:
                for f in ("start_sec", "end_sec"):
                    v = getattr(ev, f, None)
                    if v is not None and v > duration + _TOL:
                        raise ValueError(f"{attr}: {f}={v} is past the end of the {duration:.1f} s video")
        t = getattr(answer, "anomaly_time_sec", None)
        if t is not None and t > duration + _TOL:
            raise ValueError(f"anomaly_time_sec={t} is past the end of the {duration:.1f} s video")
    return check


def render_events(events: list[dict]) -> str:
    """Timestamped events as prompt text, one ``[start-end s] description`` line each
    (seconds, the unit the answer schemas ask for)."""
    lines = []
    for e in events:
        if e.get("end_sec", 0) > 0:
            lines.append(f"[{e['start_sec']:.1f}-{e['end_sec']:.1f} s] {e['description']}")
        else:
            lines.append(e["description"])
    return "\n".join(lines) or "N/A"


def render_chunks(chunks: list[dict]) -> str:
    """Chunk captions as prompt text: ``Chunk i (start-end s): caption``, blank-line separated."""
    return "\n\n".join(f"Chunk {c['index']} ({c['start']:.1f}-{c['end']:.1f} s): {c['caption']}" for c in chunks) or "N/A"


def render_description(d: dict) -> str:
    """A step-2 description as prompt text (the ``{step_2_output}`` placeholder)."""
    parts = []
    if d.get("setting"):
        parts.append(f"Setting: {d['setting']}")
    if d.get("actors"):
        parts.append("Actors: " + "; ".join(d["actors"]))
    parts.append("Timeline:\n" + render_events(d.get("timeline", [])))
    if d.get("anomaly"):
        parts.append(f"Anomaly: {d['anomaly']}")
    parts.append(f"Summary: {d.get('summary', '')}")
    return "\n".join(parts)


def _context(job: Job) -> dict:
    """Placeholder values from the captions and description available to this job."""
    s0 = job.inputs["step0"]
    a = job.inputs.get("step1a") or {}
    b = job.inputs.get("step1b") or {}
    c = job.inputs.get("step1c") or {}
    d = job.inputs.get("step2") or {}
    dense = render_events(a.get("dense_events", [])) if a.get("dense_events") else "N/A"
    highlight = ""
    if c.get("status") == "done":
        highlight = (f"Highlight clip ({c['start']:.1f}-{c['end']:.1f} s, anomaly near {c['anomaly_time']:.1f} s):\n"
                     f"{c['caption']}")
    return {
        "video_length": f"{s0['probe']['duration']:.1f}",
        "global_caption": a.get("global_caption") or "N/A",
        "dense_caption": dense,
        "dense_section": f"Timestamped events:\n{dense}",
        "chunk_captions_str": render_chunks(b.get("chunks", [])) if b.get("chunks") else "N/A",
        "highlight_section": highlight,
        "step_2_output": render_description(d["description"]) if d.get("description") else "N/A",
    }


# ---------------------------------------------------------------- steps


def step0(job: Job) -> dict:
    """Probe the video; in step 0 proper, ask the VLM whether it is suitable and (auto mode)
    whether it shows an anomaly. Bad input is rejected with its reason at no model cost."""
    wf = job.settings.workflow
    rec = {"video_id": job.vid, "path": job.video_path, "source": job.source, "calls": []}
    if job.problem:
        return {**rec, "status": "rejected", "reason": job.problem, "probe": None}
    try:
        probe = mediamod.probe(job.video_path)
    except mediamod.MediaError as exc:
        return {**rec, "status": "rejected", "reason": f"{job.video_path}: {exc}", "probe": None}
    rec["probe"] = probe.model_dump()
    if probe.duration > wf.max_video_length_sec:
        return {**rec, "status": "rejected",
                "reason": (f"{job.video_path}: {probe.duration:.1f} s is longer than workflow.max_video_length_sec "
                           f"({wf.max_video_length_sec:g} s); raise the limit or trim the video")}
    rec.update(status="accepted", reason="", mode=None if wf.mode == "auto" else wf.mode)
    if "0" not in wf.effective_steps():
        return rec
    vlm = job.client("vlm", "0")
    try:
        whole = MediaRef(probe)
        filt = job.ask(vlm, "video_filtering", {}, whole)
        rec["calls"].append(filt.record())
        rec["filter"] = filt.answer
        if not filt.answer["suitable"]:
            return {**rec, "status": "unsuitable", "reason": filt.answer["reason"]}
        if wf.mode == "auto":
            cls = job.ask(vlm, "video_anomaly_classification", {}, whole)
            rec["calls"].append(cls.record())
            rec["classification"] = cls.answer
            rec["mode"] = cls.answer["label"]
    except BlockedError as exc:
        log.error("%s", exc)
        return {**rec, "status": "blocked", "reason": str(exc)}
    finally:
        vlm.close()
    return rec


def step1a(job: Job) -> dict:
    """Global caption and dense (timestamped) caption of the whole video by the VLM."""
    probe, mode = _probe_of(job), _mode(job)
    vlm = job.client("vlm", "1a")
    try:
        whole = MediaRef(probe)
        with ThreadPoolExecutor(max_workers=2) as pool:  # independent calls; the call slots bound them
            g_f = pool.submit(job.ask, vlm, f"{mode}_global_caption", {}, whole)
            d_f = pool.submit(job.ask, vlm, f"{mode}_dense_caption", {}, whole, check=_within(probe.duration))
            g, d = g_f.result(), d_f.result()
    finally:
        vlm.close()
    return {"status": "done", "mode": mode, "global_caption": g.answer["caption"],
            "dense_events": d.answer["events"], "calls": [g.record(), d.record()]}


def step1b(job: Job) -> dict:
    """Chunk the video (smallest ``chunk_duration_options`` entry giving at most ``max_chunks``)
    and caption every chunk with the VLM, up to ``parallel`` calls at once."""
    wf = job.settings.workflow
    probe, mode = _probe_of(job), _mode(job)
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
    chunks = [{"index": i, "start": s, "end": e, "caption": r.answer["caption"]}
              for i, ((s, e), r) in enumerate(zip(windows, replies))]
    return {"status": "done", "mode": mode, "chunk_duration": chunk_s, "chunks": chunks,
            "calls": [r.record() for r in replies]}


def _precut(job: Job, vlm: ModelClient, key: str, values: dict, refs: list[MediaRef]) -> list[MediaRef]:
    """Cut all chunk clips in one ffmpeg pass when any chunk call is not cached yet."""
    wf = job.settings.workflow
    prompt = job.prompts.render(key, **values)
    short = [r for r in refs if r.length <= wf.long_video_threshold_sec]
    if all(vlm.is_cached(Request(key, prompt, model_for_key(key), job.prompts.tao_format, r)) for r in short):
        return refs
    out = tempfile.mkdtemp(dir=vlm.scratch)
    clips = mediamod.cut_clips(refs[0].probe, [r.window for r in refs], out)
    return [MediaRef(r.probe, r.start, r.end, clip_path=c.path) for r, c in zip(refs, clips)]


def step1c(job: Job) -> dict:
    """Anomaly videos only: the LLM picks the anomaly time from the captions, the VLM captions
    the highlight window ``[t - highlight_before_sec, t + highlight_after_sec]`` (clamped, >= 2 s)."""
    wf = job.settings.workflow
    probe, mode = _probe_of(job), _mode(job)
    if mode != "anomaly":
        return {"status": "not_applicable", "reason": "normal video", "calls": []}
    ctx = _context(job)
    llm = job.client("llm", "1c")
    try:
        t = job.ask(llm, "highlight_timestamp_extraction", ctx, check=_within(probe.duration))
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
    return {"status": "done", "anomaly_time": anomaly, "start": start, "end": end, "caption": c.answer["caption"],
            "evidence": t.answer["evidence"], "calls": [t.record(), c.record()]}


def step2(job: Job) -> dict:
    """The LLM's structured description of the video from all captions."""
    probe, mode = _probe_of(job), _mode(job)
    llm = job.client("llm", "2")
    try:
        r = job.ask(llm, f"{mode}_description", _context(job), check=_within(probe.duration))
    finally:
        llm.close()
    return {"status": "done", "mode": mode, "description": r.answer, "calls": [r.record()]}


def step3(job: Job, qa_types: list[str]) -> dict[str, dict]:
    """QA items with reasoning, one LLM call per QA type, up to ``parallel`` at once."""
    probe, mode = _probe_of(job), _mode(job)
    ctx = _context(job)
    llm = job.client("llm", "3")
    try:
        with ThreadPoolExecutor(max_workers=len(qa_types)) as pool:  # the call slots bound the calls
            replies = list(pool.map(
                lambda q: job.ask(llm, qa_prompt_key(mode, q), ctx, check=_within(probe.duration)), qa_types))
    finally:
        llm.close()
    return {q: {"status": "done", "qa_type": q, "mode": mode, "video_id": job.vid, "path": job.video_path,
                "sha256": probe.sha256, "duration": probe.duration, "items": r.answer["items"],
                "calls": [r.record()]}
            for q, r in zip(qa_types, replies)}


# ---------------------------------------------------------------- job entry point


def failure_marker(results_dir: str, job_name: str, vid: str) -> str:
    """Where a failed job records its error for ``summary.json``."""
    return os.path.join(results_dir, "failures", f"step_{job_name}", vid + ".json")


_RUN = {"1a": step1a, "1b": step1b, "1c": step1c, "2": step2}


def _finish(job: Job, outputs: dict[str, str], step: str, record: dict) -> None:
    """Write a sub-step's record to its output and hand it to the later sub-steps."""
    atomic_write_json(outputs["step" + step], record)
    job.inputs["step" + step] = record
    log.info("video %s, step %s: %s %s", job.vid, step, record["status"], record.get("reason", ""))


def run_steps(job: Job, outputs: dict[str, str], job_name: str) -> None:
    """Run the sub-steps of one job whose outputs are wanted, each written as soon as done.

    Job ``"01"``: step 0, then 1a and 1b side by side (they are independent), then 1c.
    Job ``"23"``: step 2, then step 3 (one output per QA type). A later sub-step reads the
    records of earlier ones (e.g. 1c reads 1a and 1b). A video rejected upstream gets
    ``skipped`` records at no cost; a safety block is recorded as ``blocked`` and passed on
    as a skip.
    """
    if job_name == "01":
        _finish(job, outputs, "0", step0(job))
        wanted = [s for s in ("1a", "1b") if "step" + s in outputs]
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {s: pool.submit(_run_one, job, s) for s in wanted}
            records = {s: f.result() for s, f in futures.items()}
        for s in wanted:
            _finish(job, outputs, s, records[s])
        later = ["1c"]
    else:
        later = ["2"]
    for step in later:
        if "step" + step in outputs:
            _finish(job, outputs, step, _run_one(job, step))
    names = {name[3:]: path for name, path in outputs.items() if name.startswith("qa_")}
    if names:
        problem = _upstream_problem(job)
        try:
            results = ({q: {"status": "skipped", "reason": problem, "qa_type": q, "items": [], "calls": []}
                        for q in names} if problem else step3(job, list(names)))
        except BlockedError as exc:
            log.error("%s", exc)
            results = {q: {"status": "blocked", "reason": str(exc), "qa_type": q, "items": [], "calls": []}
                       for q in names}
        for q, path in names.items():
            atomic_write_json(path, results[q])


def _run_one(job: Job, step: str) -> dict:
    """The record of one sub-step: skipped (upstream problem), blocked, or its result."""
    problem = _upstream_problem(job)
    if problem:
        return {"status": "skipped", "reason": problem, "calls": []}
    try:
        return _RUN[step](job)
    except BlockedError as exc:
        log.error("%s", exc)
        return {"status": "blocked", "reason": str(exc), "calls": []}


def run_job(smk, job_name: str) -> None:
    """Run one per-video job (``"01"`` = steps 0, 1a-1c; ``"23"`` = steps 2-3) for the
    Snakemake job ``smk`` and write its outputs.

    Exits non-zero with one message naming video, step, backend/model and the last error
    when a model call fails for good; the error is also recorded for ``summary.json``.
    """
    settings = settings_from_config(smk.config)
    secrets = secrets_in_use(settings)
    _setup_logging(smk.log[0] if smk.log else None, secrets)
    results_dir = smk.config["results_dir"]
    prompts = load_prompts(settings)
    expected = dict(getattr(smk.params, "prompts", {}) or {})
    if expected and prompts.digest(expected) != expected:
        sys.exit(f"video {smk.wildcards.vid}: the prompts changed while the workflow ran; run snakemake again")
    inputs = {name: read_json(path) for name, path in smk.input.items() if name.startswith("step")}
    job = Job(vid=smk.wildcards.vid, settings=settings, prompts=prompts, results_dir=results_dir,
              inputs=inputs, video_path=smk.params.video, source=smk.params.source, problem=smk.params.problem)
    outputs = dict(smk.output.items())
    marker = failure_marker(results_dir, job_name, job.vid)
    try:
        run_steps(job, outputs, job_name)
    except ModelCallError as exc:
        message = scrub(str(exc), secrets)
        atomic_write_json(marker, {"video_id": job.vid, "step": job_name, "error": message})
        log.error("%s", message)
        sys.exit(message)
    except Exception as exc:  # record any other failure for summary.json, then fail the job
        message = scrub(f"video {job.vid} ({job.video_path}), step {job_name}: {type(exc).__name__}: {exc}", secrets)
        atomic_write_json(marker, {"video_id": job.vid, "step": job_name, "error": message})
        log.exception("%s", message)
        raise
    try:
        os.remove(marker)
    except FileNotFoundError:
        pass


class _ScrubFilter(logging.Filter):
    def __init__(self, secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record):
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = ()
        return True


def _setup_logging(path: str | None, secrets: list[str]) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w", encoding="utf-8"))
    for h in handlers:
        h.addFilter(_ScrubFilter(secrets))
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    for noisy in ("httpx", "httpx2", "google_genai", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

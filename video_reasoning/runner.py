"""Running one per-video job for Snakemake: the job's steps, in the order and groups the
step registry gives (:data:`video_reasoning.steps.JOBS`), each record written as soon as
it is done; failure records; logging and signals.

Step scripts (``scripts/<job>.py``) are thin: they call :func:`run_job` with the Snakemake
object. A video that step 0 rejected or found unsuitable flows through later steps as
``skipped`` records that cost no call.

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
import uuid
from concurrent.futures import ThreadPoolExecutor

from video_reasoning import progress
from video_reasoning.config import settings_from_config
from video_reasoning.context import VideoContext, blank, upstream_problem
from video_reasoning.duplicates import match_of
from video_reasoning.keys import scrub, secrets_in_use
from video_reasoning.manifest import Manifest
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import QARecord, Record, Status, read_record, write_record
from video_reasoning.retry import BlockedError, ModelCallError
from video_reasoning.steps import (
    JOBS,
    STEPS,
    effective_steps,
    failure_path,
    last_job,
    manifest_path,
    output_key,
    prompt_set,
    step_of_output,
)
from video_reasoning.store import atomic_write_json, read_json

log = logging.getLogger("video_reasoning")


class _Writer:
    """Writes a job's outputs as they are produced and hands each record to later steps."""

    def __init__(self, video: VideoContext, outputs: dict[str, str]):
        self.video, self.outputs, self.written = video, outputs, set()

    def wants(self, step: str) -> bool:
        """True when the job has an output for ``step`` (a step with one record per video)."""
        return output_key(step) in self.outputs

    def put(self, step: str, record: Record, qa_type: str | None = None) -> None:
        """Write ``record`` to its output and make it available to later steps."""
        key = output_key(step, qa_type)
        write_record(self.outputs[key], record)
        self.written.add(key)
        if qa_type is None:
            self.video.records[step] = record
        log.info("video %s, step %s%s: %s %s", self.video.vid, step, f" ({qa_type})" if qa_type else "",
                 record.status.value, record.reason)

    def fail_rest(self, message: str) -> None:
        """Every output not written yet, as a ``failed`` record with ``message``."""
        for key in [k for k in self.outputs if k not in self.written]:
            step, q = step_of_output(key)
            self.put(step, blank(step, q, self.video, Status.FAILED, message), q)


def _run_one(video: VideoContext, step: str, qa_types: list[str]) -> dict[str | None, Record]:
    """The records of one step, by QA type (None for a step with one record per video):
    ``skipped`` (an upstream problem), ``blocked`` (a safety block), or its result."""
    keys = qa_types if STEPS[step].per_qa_type else [None]
    problem = upstream_problem(video)
    if problem:
        return {q: blank(step, q, video, Status.SKIPPED, problem) for q in keys}
    try:
        if STEPS[step].per_qa_type:
            return STEPS[step].function()(video, qa_types)
        return {None: STEPS[step].function()(video)}
    except BlockedError as exc:
        log.error("%s", exc)
        return {q: blank(step, q, video, Status.BLOCKED, str(exc)) for q in keys}


def run_steps(video: VideoContext, writer: _Writer, job_name: str) -> None:
    """Run the steps of ``job_name`` whose outputs are wanted, stage by stage
    (:attr:`video_reasoning.steps.Job.stages`; a stage's steps side by side), each record
    written as soon as its stage is done.

    A video rejected upstream gets ``skipped`` records at no cost; a safety block is
    recorded as ``blocked`` and passed on as a skip. A step with one record per QA type
    writes every type's record; when some failed, the others stand and
    :class:`~video_reasoning.retry.ModelCallError` is raised (the job's failure record makes
    the next run retry).
    """
    qa_types = [q for q in QA_TYPES if output_key("3", q) in writer.outputs]
    for stage in JOBS[job_name].stages:
        todo = [s for s in stage if (qa_types if STEPS[s].per_qa_type else writer.wants(s))]
        with ThreadPoolExecutor(max_workers=max(len(todo), 1)) as pool:
            futures = {s: pool.submit(_run_one, video, s, qa_types) for s in todo}
            results = {s: f.result() for s, f in futures.items()}
        for s in todo:
            for q, record in results[s].items():
                writer.put(s, record, q)
        failed = [r.reason for s in todo if STEPS[s].per_qa_type for r in results[s].values()
                  if r.status is Status.FAILED]
        if failed:
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
    prompts = prompt_set(settings)
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
    video = VideoContext(vid=vid, settings=settings, prompts=prompts, results_dir=results_dir, records=records, qa=qa,
              video_path=smk.params.video, source=smk.params.source, problem=smk.params.problem,
              duplicate=match_of(dups, vid) if dups else None,
              peers=peers, units={r: int(getattr(smk.resources, f"{r}_calls", 1) or 1) for r in ("vlm", "llm")})
    writer = _Writer(video, dict(smk.output.items()))
    try:
        run_steps(video, writer, job_name)
    except Exception as exc:  # any failure of this video is recorded; the run goes on without it
        known = isinstance(exc, ModelCallError)  # its message names video, step, model and error
        where = f"video {vid} ({video.video_path or video.source}), job {job_name}"
        message = scrub(str(exc) if known else f"{where}: {type(exc).__name__}: {exc}", secrets)
        log.error("%s", message, exc_info=not known)
        writer.fail_rest(message)
        _record_failure(results_dir, job_name, vid, message)
    else:
        _resolve_failure(results_dir, job_name, vid)
    steps = effective_steps(settings.workflow)
    if job_name == last_job(steps):
        try:
            progress.finished(results_dir, vid, video.video_path, video.source, steps, settings.workflow.qa_types)
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

"""The pipeline's steps and jobs, and every path the workflow writes: defined here only.

Steps are TAO's (0, 1a, 1b, 1c, 2, 3, 4). Each per-video step writes one record file per
video (step 3: one per QA type); the steps of a video run in two jobs, each a Snakemake
rule of the same name, whose log folder and failure record carry that name too:

- ``caption_video`` (VLM): steps 0, 1a, 1b, 1c;
- ``write_qa`` (LLM): steps 2, 3;
- ``verify_qa`` (LLM and VLM): the verification step (ours, between 3 and 4, whenever 4 runs);
- ``select_items``: per QA type, the items of every video that go into the dataset
  (verification policy, duplicates across videos, ``items_per_type``);
- ``write_task``: step 4, one tao-vl-reason-v1.0 file per task;
- ``summarize``: ``summary.json`` (with its ``quality`` section) and
  ``quality/rejected_items.jsonl`` from all records.

The record models live in :mod:`video_reasoning.records`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from video_reasoning import records

if TYPE_CHECKING:  # config builds on this module
    from video_reasoning.config import WorkflowSettings

#: TAO's steps, in pipeline order (what ``workflow.steps`` lists).
STEP_NAMES = ("0", "1a", "1b", "1c", "2", "3", "4")
#: The verification step (ours): runs whenever step 4 does.
VERIFY = "verify"
#: Every step, in pipeline order.
PIPELINE = ("0", "1a", "1b", "1c", "2", "3", VERIFY, "4")


@dataclass(frozen=True)
class Step:
    """One per-video step.

    Attributes:
        name: TAO's step name.
        folder: folder under ``results_dir`` of its per-video records.
        job: the job (rule) that writes it.
        record: its record model.
        per_qa_type: step 3 writes one record per QA type, in ``<folder>/<qa_type>/``.
        roles: the backends it calls (``vlm``, ``llm``).
    """

    name: str
    folder: str
    job: str
    record: type[records.Record]
    per_qa_type: bool = False
    roles: tuple[str, ...] = ()


#: Model jobs of one backend that run side by side at the full cap: on one machine, each
#: holds 1 of ``JOBS_PER_BACKEND x max_workers`` units; on a cluster, a call costs this many
#: units and a job holds calls for at most ``ceil(max_workers / JOBS_PER_BACKEND)``, so
#: while one job starts up or prepares media another is sending calls.
JOBS_PER_BACKEND = 2


@dataclass(frozen=True)
class Job:
    """One per-video job: a Snakemake rule running some steps of one video.

    ``reads``: the earlier steps whose records it takes as inputs (None: all of them).
    ``fanout``: per backend, the most calls its steps send at once, from the workflow
    settings (caption_video: the chunk captions beside step 1a; write_qa: one per QA type;
    verify_qa: the two blind probes beside the grounded re-answer); 0: none (step 1c's LLM
    call in normal mode, where it does not run).
    """

    name: str
    steps: tuple[str, ...]
    fanout: tuple[tuple[str, Callable[[WorkflowSettings], int]], ...]
    reads: tuple[str, ...] | None = None

    def roles(self, steps: tuple[str, ...]) -> list[str]:
        """The backends its steps among ``steps`` (those that run) call."""
        return sorted({r for s in self.steps if s in steps for r in STEPS[s].roles})

    def call_units(self, steps: tuple[str, ...], wf: WorkflowSettings, local: bool) -> dict[str, int]:
        """The Snakemake resources it holds when ``steps`` run, of pools of
        ``JOBS_PER_BACKEND x max_workers`` units (:mod:`video_reasoning.slots`).

        ``local`` (jobs on this machine, whose calls share machine-wide call slots): one unit
        of its main backend (the one it sends most calls at once), so the two backends' job
        caps are independent. Else, for each backend it calls: ``JOBS_PER_BACKEND`` units per
        call it may send at once, its fan-out capped at ``ceil(max_workers / JOBS_PER_BACKEND)``,
        so the calls in flight stay within ``max_workers`` on any executor."""
        fan = {r: f(wf) for r, f in self.fanout if r in self.roles(steps) and f(wf) > 0}
        if not fan:
            return {}
        if local:
            return {f"{max(fan, key=fan.get)}_calls": 1}
        per_job = max(1, math.ceil(wf.max_workers / JOBS_PER_BACKEND))
        return {f"{r}_calls": JOBS_PER_BACKEND * min(per_job, n) for r, n in fan.items()}


STEPS: dict[str, Step] = {s.name: s for s in (
    Step("0", "step_0", "caption_video", records.ProbeRecord, roles=("vlm",)),
    Step("1a", "step_1a", "caption_video", records.CaptionRecord, roles=("vlm",)),
    Step("1b", "step_1b", "caption_video", records.ChunkRecord, roles=("vlm",)),
    Step("1c", "step_1c", "caption_video", records.HighlightRecord, roles=("llm", "vlm")),
    Step("2", "step_2", "write_qa", records.DescriptionRecord, roles=("llm",)),
    Step("3", "step_3", "write_qa", records.QARecord, per_qa_type=True, roles=("llm",)),
    Step(VERIFY, "verification", "verify_qa", records.VerificationRecord, roles=("llm", "vlm")),
)}

JOBS: dict[str, Job] = {j.name: j for j in (
    Job("caption_video", ("0", "1a", "1b", "1c"),
        fanout=(("vlm", lambda wf: wf.max_chunks + 2), ("llm", lambda wf: 0 if wf.mode == "normal" else 1))),
    Job("write_qa", ("2", "3"), fanout=(("llm", lambda wf: len(wf.qa_types)),)),
    Job("verify_qa", (VERIFY,), fanout=(("llm", lambda wf: 2), ("vlm", lambda wf: 1)), reads=("0", "3")),
)}

def last_job(steps: tuple[str, ...]) -> str:
    """The job that finishes a video when ``steps`` run: the last of :data:`JOBS` with a
    step among :func:`written` (``caption_video`` always writes step 0)."""
    return [name for name, j in JOBS.items() if set(j.steps) & set(written(steps))][-1]


#: Step 4's folder (one file per task), the run summary, and the quality folder.
DATASET_FOLDER = "step_4_output"
SUMMARY_FILE = "summary.json"
QUALITY_FOLDER = "quality"


def step_path(results_dir: str, step: str, vid: str = "{vid}", qa_type: str | None = None) -> str:
    """Per-video record of ``step`` (``<results_dir>/step_1a/<vid>.json``; step 3:
    ``<results_dir>/step_3/<qa_type>/<vid>.json``). ``vid`` defaults to the wildcard."""
    s = STEPS[step]
    if s.per_qa_type:
        if not qa_type:
            raise ValueError(f"step {step} has one record per QA type: give qa_type")
        return os.path.join(results_dir, s.folder, qa_type, f"{vid}.json")
    return os.path.join(results_dir, s.folder, f"{vid}.json")


def output_key(step: str, qa_type: str | None = None) -> str:
    """The name of a step's output in its rule (``step_1a``, ``step_3_mcq``)."""
    return f"step_{step}" + (f"_{qa_type}" if STEPS[step].per_qa_type else "")


def step_of_output(key: str) -> tuple[str, str | None] | None:
    """``(step, QA type or None)`` named by an :func:`output_key`; None for other names."""
    for name, s in STEPS.items():
        base = f"step_{name}"
        if not s.per_qa_type and key == base:
            return name, None
        if s.per_qa_type and key.startswith(base + "_"):
            return name, key[len(base) + 1:]
    return None


def written(steps: tuple[str, ...]) -> list[str]:
    """The per-video steps whose records a run with ``steps`` writes, in order: those that
    run, and step 0 always (its record holds the probe)."""
    return [s for s in STEPS if s in steps or s == "0"]


def job_outputs(job: str, results_dir: str, steps: tuple[str, ...], qa_types: tuple[str, ...],
                vid: str = "{vid}") -> dict[str, str]:
    """Named outputs of ``job`` for one video: its records among :func:`written`, step 3
    once per QA type."""
    return {output_key(name, q): step_path(results_dir, name, vid, q)
            for name in written(steps) if name in JOBS[job].steps
            for q in (qa_types if STEPS[name].per_qa_type else (None,))}


def job_inputs(job: str, results_dir: str, steps: tuple[str, ...], qa_types: tuple[str, ...]) -> dict[str, str]:
    """Named inputs of ``job`` for one video (wildcard): the records of the earlier steps
    among :func:`written` that it reads (step 3 once per QA type)."""
    j = JOBS[job]
    first = PIPELINE.index(j.steps[0])
    return {output_key(s, q): step_path(results_dir, s, "{vid}", q)
            for s in written(steps) if PIPELINE.index(s) < first and (j.reads is None or s in j.reads)
            for q in (qa_types if STEPS[s].per_qa_type else (None,))}


def failure_path(results_dir: str, job: str, vid: str = "{vid}") -> str:
    """The last failure of ``job`` on a video: what the rerun retries and the summary shows."""
    return os.path.join(results_dir, "failures", job, f"{vid}.json")


def failure_token(results_dir: str, job: str, vid: str) -> str:
    """The token of the last failure of ``job`` on ``vid`` ("" when it never failed).

    Rules carry it as a param: a new failure changes it, so Snakemake reruns the job on
    the next run; a later success keeps it, so the job is not rerun again.
    """
    try:
        with open(failure_path(results_dir, job, vid), encoding="utf-8") as fh:
            return str(json.load(fh).get("token", ""))
    except FileNotFoundError:
        return ""


def log_path(results_dir: str, job: str, name: str = "{vid}") -> str:
    """The log of one job (rule ``job``, wildcard value ``name``)."""
    return os.path.join(results_dir, "logs", job, f"{name}.log")


def task_path(results_dir: str, task: str = "{task}", split: str | None = None) -> str:
    """Step 4's tao-vl-reason-v1.0 file of one task (``step_4_output/<task>.json``), or of
    one task in one split (``step_4_output/<split>/<task>.json``, ``export.splits``)."""
    return os.path.join(results_dir, DATASET_FOLDER, *([split] if split else []), f"{task}.json")


def task_files(results_dir: str, task: str, splits) -> list[str]:
    """Every file of ``task``: one per split of ``splits`` (names), or the one file."""
    return [task_path(results_dir, task, s) for s in splits] if splits else [task_path(results_dir, task)]


def selection_path(results_dir: str, qa_type: str = "{qa_type}") -> str:
    """The items of one QA type that go into the dataset, and those left out (rule select_items)."""
    return os.path.join(results_dir, QUALITY_FOLDER, "items", f"{qa_type}.json")


def rejected_items_path(results_dir: str) -> str:
    """Every item a check failed (dropped or flagged), one JSON object per line."""
    return os.path.join(results_dir, QUALITY_FOLDER, "rejected_items.jsonl")


def duplicates_path(results_dir: str) -> str:
    """Duplicate videos found before any model call (rule find_duplicates)."""
    return os.path.join(results_dir, "duplicates.json")


def media_path(results_dir: str) -> str:
    """Where ``export.media_root: copy`` or ``link`` puts the videos of the dataset."""
    return os.path.join(results_dir, "media")


def summary_path(results_dir: str) -> str:
    """The run summary."""
    return os.path.join(results_dir, SUMMARY_FILE)


def estimate_path(results_dir: str) -> str:
    """What a run will cost, from the probes alone (rule estimate)."""
    return os.path.join(results_dir, "estimate.json")


def cache_path(results_dir: str) -> str:
    """The caches shared by every job and run: ``responses/`` (answers), ``frames/``,
    ``uploads/`` (Gemini Files API records) and ``ledger/`` (what the calls cost), each
    laid out by its own module."""
    return os.path.join(results_dir, ".cache")


def shard_path(results_dir: str, index: int | str = "{shard}", shards: int | str = "{shards}") -> str:
    """The marker a shard run writes when its videos are done (``shards/<i>-of-<n>.json``)."""
    return os.path.join(results_dir, "shards", f"{index}-of-{shards}.json")


def manifest_path(results_dir: str, shard: int | None = None, shards: int = 1) -> str:
    """The video manifest the main process writes (:mod:`video_reasoning.manifest`):
    ``videos.sqlite``, or ``videos-<i>-of-<n>.sqlite`` for shard ``i`` of ``n``."""
    name = "videos.sqlite" if shard is None else f"videos-{shard}-of-{shards}.sqlite"
    return os.path.join(cache_path(results_dir), name)


REPORT_FOLDER = "report"


def report_path(results_dir: str, name: str) -> str:
    """A page or figure of the HTML report (``<results_dir>/report/<name>``)."""
    return os.path.join(results_dir, REPORT_FOLDER, name)


def card_path(results_dir: str) -> str:
    """The dataset card."""
    return os.path.join(results_dir, "DATASET.md")


def progress_log_path(results_dir: str) -> str:
    """One line per video finished in the last run (:mod:`video_reasoning.progress`)."""
    return os.path.join(results_dir, "logs", "progress.log")


def check_path(results_dir: str) -> str:
    """The flag rule check_failures writes when no video failed."""
    return os.path.join(results_dir, "logs", "check_failures", "ok")

"""The pipeline's steps and jobs, and every path the workflow writes: defined here only.

Steps are TAO's (0, 1a, 1b, 1c, 2, 3, 4) and ours (``verify``, between 3 and 4). A
:class:`Step` entry carries everything about its step: the folder and record model of its
per-video records (step 3: one per QA type), the job that runs it, the function that does
it, the backends it calls and how many calls it sends at once, the prompt keys it may use
and the settings it reads, which are its rerun fingerprint (a changed one reruns the job
that runs it, and only that job). Adding a step is one entry here plus its function.

The steps of a video run in per-video jobs (:class:`Job`), each a Snakemake rule of the
same name, whose log folder and failure record carry that name too:

- ``caption_video`` (VLM): steps 0, then 1a and 1b side by side, then 1c;
- ``write_qa`` (LLM): steps 2, 3;
- ``verify_qa`` (LLM and VLM): the verification step (whenever 4 runs).

The dataset side (:data:`DATASET_RULES`): ``select_items`` (per QA type, the items of
every video that go into the dataset), ``write_task`` (step 4, one tao-vl-reason-v1.0
file per task), ``summarize``, ``report_pages``, ``dataset_card``, with the settings each
reads. The record models live in :mod:`video_reasoning.records`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from video_reasoning import records
from video_reasoning.config import STEP_NAMES, LongVideoSettings, Settings, WorkflowSettings
from video_reasoning.costs import prices
from video_reasoning.prompts import (
    LONG_VIDEO_KEYS,
    MODES,
    SEPARATE_KEYS,
    VERIFICATION_KEYS,
    PromptSet,
    combined,
    load_prompts,
)
from video_reasoning.qa_types import QA_TYPES

__all__ = ["STEP_NAMES"]  # TAO's step names are the spec's (config)

#: The verification step (ours): runs whenever step 4 does.
VERIFY = "verify"


@dataclass(frozen=True)
class Derived:
    """A value a step reads that is computed from several settings (part of its rerun
    fingerprint under ``name``): e.g. how many items step 3 asks for."""

    name: str
    of: Callable[[Settings], object]


#: A setting a step reads: a dotted path into :class:`~video_reasoning.config.Settings`
#: (``long_video.clip_sec``; ``vlm``/``llm`` stand for the backend's ``fingerprint()``,
#: never its key or timeout), or a :class:`Derived` value.
Read = str | Derived


def _long(*fields: str) -> Derived:
    """``long_video`` settings, read only when a video can take the long-video path (else
    None: changing them reruns nothing), with the threshold that decides the path."""

    def of(s: Settings):
        if not s.long_path():
            return None
        return {"threshold": s.long_video.threshold(s.workflow), **{f: getattr(s.long_video, f) for f in fields}}

    return Derived("long_video:" + ",".join(fields), of)


def items_to_write(settings: Settings) -> int:
    """Items step 3 asks for per QA type: ``items_per_type``, and half as many again
    (rounded up) when verification may remove some, so the best can be kept."""
    n = settings.workflow.items_per_type
    return n + (n + 1) // 2 if settings.verification.checks() else n


#: What every step that calls the VLM reads: its backend and how media is sent.
VLM_MEDIA: tuple[Read, ...] = ("vlm", "workflow.long_video_threshold_sec", "workflow.long_video_sample_fps",
                               "workflow.long_video_max_frames")


def _modes(s: Settings) -> tuple[str, ...]:
    """The modes a step's prompts may be asked in (both in auto mode: the label comes from step 0)."""
    return MODES if s.workflow.mode == "auto" else (s.workflow.mode,)


def _keys_0(s: Settings) -> list[str]:
    if s.workflow.mode != "auto":
        return ["video_filtering"]
    return ["video_screening"] if combined("0", s) else list(SEPARATE_KEYS["0"])


def _keys_1a(s: Settings) -> list[str]:
    if combined("1a", s):
        return [f"{m}_captions" for m in _modes(s)]
    return [f"{m}_{k}" for m in _modes(s) for k in ("global_caption", "dense_caption")]


def _long_key(s: Settings, use: str, when: bool = True) -> list[str]:
    return [LONG_VIDEO_KEYS[use]] if s.long_path() and when else []


@dataclass(frozen=True)
class Step:
    """One per-video step.

    Attributes:
        name: the step's name (TAO's, or ``verify``).
        folder: folder under ``results_dir`` of its per-video records.
        job: the job (rule) that runs it.
        record: its record model.
        run: ``"module:function"``, imported when a job runs the step (so parsing the
            workflow imports no SDK): ``function(video) -> Record`` (a
            :class:`~video_reasoning.context.VideoContext`), or for a ``per_qa_type`` step
            ``function(video, qa_types) -> {qa_type: Record}``.
        prompt_keys: the prompt keys it may use under the settings (all modes).
        reads: the settings its records depend on: its rerun fingerprint.
        fanout: per backend it calls, the most calls it sends at once under the settings.
        per_qa_type: one record per QA type, in ``<folder>/<qa_type>/``.
        stage: its place in its job: the steps of one stage run side by side (they are
            independent), stages in order.
        when: a step of ours: whether it runs, given TAO's steps that run
            (``WorkflowSettings.tao_steps``); None: a TAO step, run when listed.
    """

    name: str
    folder: str
    job: str
    record: type[records.Record]
    run: str
    prompt_keys: Callable[[Settings], list[str]]
    reads: tuple[Read, ...] = ()
    fanout: tuple[tuple[str, Callable[[WorkflowSettings], int]], ...] = ()
    per_qa_type: bool = False
    stage: int = 0
    when: Callable[[frozenset[str]], bool] | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        """The backends it calls (``vlm``, ``llm``)."""
        return tuple(r for r, _ in self.fanout)

    def function(self) -> Callable:
        """The function that does the step (imported on first use)."""
        module, name = self.run.split(":")
        return getattr(importlib.import_module(module), name)


#: Model jobs of one backend that run side by side at the full cap: on one machine, each
#: holds 1 of ``JOBS_PER_BACKEND x max_workers`` units; on a cluster, a call costs this many
#: units and a job holds calls for at most ``ceil(max_workers / JOBS_PER_BACKEND)``, so
#: while one job starts up or prepares media another is sending calls.
JOBS_PER_BACKEND = 2

STEPS: dict[str, Step] = {s.name: s for s in (
    Step("0", "step_0", "caption_video", records.ProbeRecord, "video_reasoning.caption_steps:step0", _keys_0,
         reads=(*VLM_MEDIA, "workflow.mode", "workflow.max_video_length_sec", "data.near_duplicates",
                Derived("step 0 asks the VLM", lambda s: "0" in s.workflow.tao_steps())),
         fanout=(("vlm", lambda wf: 1),)),
    Step("1a", "step_1a", "caption_video", records.CaptionRecord, "video_reasoning.caption_steps:step1a", _keys_1a,
         reads=VLM_MEDIA, fanout=(("vlm", lambda wf: 2),), stage=1),
    Step("1b", "step_1b", "caption_video", records.ChunkRecord, "video_reasoning.caption_steps:step1b",
         lambda s: [f"{m}_chunk_caption" for m in _modes(s)] + _long_key(s, "clips"),
         reads=(*VLM_MEDIA, "workflow.chunk_duration_options", "workflow.max_chunks",
                _long("clip_sec", "clips_per_request", "sample_fps")),
         fanout=(("vlm", lambda wf: wf.max_chunks),), stage=1),
    Step("1c", "step_1c", "caption_video", records.HighlightRecord, "video_reasoning.caption_steps:step1c",
         lambda s: ["highlight_timestamp_extraction", "highlight_chunk_caption"] if s.workflow.mode != "normal" else [],
         reads=(*VLM_MEDIA, "llm", "workflow.highlight_before_sec", "workflow.highlight_after_sec"),
         fanout=(("llm", lambda wf: 0 if wf.mode == "normal" else 1), ("vlm", lambda wf: 1)), stage=2),
    Step("2", "step_2", "write_qa", records.DescriptionRecord, "video_reasoning.qa_steps:step2",
         lambda s: [f"{m}_description" for m in _modes(s)] + _long_key(s, "segment"),
         reads=("llm", _long("timeline_token_budget", "segment_sec")), fanout=(("llm", lambda wf: 1),)),
    Step("3", "step_3", "write_qa", records.QARecord, "video_reasoning.qa_steps:step3",
         lambda s: sorted({QA_TYPES[q].prompt_key(m) for m in _modes(s) for q in s.workflow.qa_types})
         + _long_key(s, "reformat", s.long_video.reformat),
         reads=("llm", Derived("items asked per QA type", items_to_write),
                Derived("structure problems sent back", lambda s: "structure" in s.verification.checks()),
                _long("min_event_gap_sec", "reformat")),
         fanout=(("llm", lambda wf: len(wf.qa_types)),), per_qa_type=True, stage=1),
    Step(VERIFY, "verification", "verify_qa", records.VerificationRecord, "video_reasoning.verify_step:step_verify",
         lambda s: sorted(VERIFICATION_KEYS[c] for c in s.verification.checks() if c in VERIFICATION_KEYS),
         reads=(*VLM_MEDIA, "llm", "verification.blind_probe", "verification.grounded_reanswer", "verification.judge",
                "verification.structure", "verification.min_iou", _long("min_event_gap_sec")),
         fanout=(("llm", lambda wf: 2), ("vlm", lambda wf: 1)), when=lambda tao: "4" in tao),
)}


def effective_steps(wf: WorkflowSettings) -> tuple[str, ...]:
    """Steps that run, in pipeline order (:data:`STEPS`' order, step 4 last): TAO's as
    ``workflow.steps`` and the mode give them (``WorkflowSettings.tao_steps``), ours where
    their ``when`` holds (the verification step whenever step 4 runs)."""
    tao = wf.tao_steps()
    ours = [s for s, step in STEPS.items() if (step.when(tao) if step.when else s in tao)]
    return (*ours, *(["4"] if "4" in tao else []))


@dataclass(frozen=True)
class Job:
    """One per-video job: a Snakemake rule running some steps of one video.

    ``reads``: the earlier steps whose records it takes as inputs (None: all of them).
    Its steps are the :data:`STEPS` entries naming it, in :attr:`stages`.
    """

    name: str
    reads: tuple[str, ...] | None = None

    @property
    def stages(self) -> tuple[tuple[str, ...], ...]:
        """Its steps by :attr:`Step.stage`, in order: a stage's steps run side by side."""
        mine = [s for s in STEPS.values() if s.job == self.name]
        return tuple(tuple(s.name for s in mine if s.stage == n) for n in sorted({s.stage for s in mine}))

    @property
    def steps(self) -> tuple[str, ...]:
        """Its steps, in order."""
        return tuple(s for stage in self.stages for s in stage)

    def roles(self, steps: tuple[str, ...]) -> list[str]:
        """The backends its steps among ``steps`` (those that run) call."""
        return sorted({r for s in self.steps if s in steps for r in STEPS[s].roles})

    def fanout(self, steps: tuple[str, ...], wf: WorkflowSettings) -> dict[str, int]:
        """Per backend, the most calls it sends at once: the largest sum over a stage of
        its steps' fan-out (steps among ``steps`` only; 0s left out)."""
        fan: dict[str, int] = {}
        for stage in self.stages:
            for role in {r for s in stage if s in steps for r in STEPS[s].roles}:
                n = sum(f(wf) for s in stage if s in steps for r, f in STEPS[s].fanout if r == role)
                fan[role] = max(fan.get(role, 0), n)
        return {r: n for r, n in fan.items() if n > 0}

    def call_units(self, steps: tuple[str, ...], wf: WorkflowSettings, local: bool) -> dict[str, int]:
        """The Snakemake resources it holds when ``steps`` run, of pools of
        ``JOBS_PER_BACKEND x max_workers`` units (:mod:`video_reasoning.slots`).

        ``local`` (jobs on this machine, whose calls share machine-wide call slots): one unit
        of its main backend (the one it sends most calls at once), so the two backends' job
        caps are independent. Else, for each backend it calls: ``JOBS_PER_BACKEND`` units per
        call it may send at once, its fan-out capped at ``ceil(max_workers / JOBS_PER_BACKEND)``,
        so the calls in flight stay within ``max_workers`` on any executor."""
        fan = self.fanout(steps, wf)
        if not fan:
            return {}
        if local:
            return {f"{max(fan, key=fan.get)}_calls": 1}
        per_job = max(1, math.ceil(wf.max_workers / JOBS_PER_BACKEND))
        return {f"{r}_calls": JOBS_PER_BACKEND * min(per_job, n) for r, n in fan.items()}


JOBS: dict[str, Job] = {j.name: j for j in (
    Job("caption_video"),
    Job("write_qa"),
    Job("verify_qa", reads=("0", "3")),
)}

def _model_prices(s: Settings) -> dict[str, object]:
    """The price of each model in use (``"unknown"`` without one), as the summary shows it."""
    table = prices(s)
    models = {getattr(s, r).model for r in roles_in_use(s)}
    return {m: table[m].model_dump() if m in table else "unknown" for m in sorted(models)}


#: The dataset-side rules and the settings each reads (its rerun fingerprint); what they
#: read of the videos and records are their inputs and params.
DATASET_RULES: dict[str, tuple[Read, ...]] = {
    "select_items": ("verification.policy", "verification.duplicates", "verification.duplicate_similarity",
                     "workflow.items_per_type"),
    "write_task": ("export.media_root", "export.splits", "license", "description_extra"),
    "summarize": ("workflow.max_cost_usd", "export.splits", Derived("prices of the models in use", _model_prices)),
    "report_pages": (),
    "dataset_card": ("vlm.backend", "llm.backend", Derived("models", lambda s: [s.vlm.model, s.llm.model]),
                     "workflow.mode", "workflow.items_per_type", "verification", "data.near_duplicates",
                     "export.splits", "license", _long(*LongVideoSettings.model_fields)),
}


def _value(settings: Settings, read: Read):
    """The JSON value of one :data:`Read` under ``settings``."""
    if isinstance(read, Derived):
        return read.of(settings)
    value = settings
    for part in read.split("."):
        value = getattr(value, part)
    if hasattr(value, "fingerprint"):
        return value.fingerprint()
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def reads_of(rule: str, steps: tuple[str, ...]) -> tuple[Read, ...]:
    """The settings ``rule`` reads when ``steps`` run (a per-video job: its steps' reads)."""
    if rule in DATASET_RULES:
        return DATASET_RULES[rule]
    return tuple(r for s in JOBS[rule].steps if s in steps for r in STEPS[s].reads)


def fingerprint(rule: str, settings: Settings) -> dict[str, object]:
    """The rerun fingerprint of ``rule``: ``{setting: value}`` of every setting it reads
    (JSON values; never an API key). Rules carry it as a param, so a changed setting reruns
    exactly the jobs that read it."""
    steps = effective_steps(settings.workflow)
    return {r.name if isinstance(r, Derived) else r: json.loads(json.dumps(_value(settings, r)))
            for r in reads_of(rule, steps)}


def prompt_keys(step: str, settings: Settings) -> list[str]:
    """Prompt keys ``step`` may use under ``settings`` (all modes: the mode is known only
    after step 0)."""
    return STEPS[step].prompt_keys(settings) if step in STEPS else []


def required_prompt_keys(settings: Settings) -> list[str]:
    """Every prompt key the run's steps, mode and qa_types use."""
    return sorted({k for s in effective_steps(settings.workflow) for k in prompt_keys(s, settings)})


def job_prompts(job: str, settings: Settings, prompts: PromptSet) -> dict[str, str]:
    """``{prompt key: template hash}`` of every prompt the steps of per-video job ``job``
    that run may use: part of its rerun fingerprint (an edited template reruns the jobs
    that use it)."""
    steps = effective_steps(settings.workflow)
    return prompts.digest(k for s in JOBS[job].steps if s in steps for k in prompt_keys(s, settings))


def prompt_set(settings: Settings) -> PromptSet:
    """The run's prompt set (:func:`video_reasoning.prompts.load_prompts` with the keys its
    steps use).

    Raises:
        ConfigError: as ``load_prompts`` does.
    """
    return load_prompts(settings, required_prompt_keys(settings))


def roles_in_use(settings: Settings) -> list[str]:
    """The backends (``vlm``, ``llm``) the run's steps call, the VLM first."""
    steps = effective_steps(settings.workflow)
    return sorted({role for s in steps if s in STEPS for role in STEPS[s].roles}, reverse=True)


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
    order = list(STEPS)
    first = order.index(j.steps[0])
    return {output_key(s, q): step_path(results_dir, s, "{vid}", q)
            for s in written(steps) if order.index(s) < first and (j.reads is None or s in j.reads)
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

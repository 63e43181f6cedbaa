# Config (validated before anything runs), video discovery, and the input functions and
# params every rule uses. Paths, steps and jobs come from the step registry
# (video_reasoning.steps), QA types and tasks from the QA-type registry.
import functools
import os
import signal
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from video_reasoning import progress
from video_reasoning import steps as registry
from video_reasoning.breaker import Breaker
from video_reasoning.card import prompt_set_name
from video_reasoning.config import ConfigError, settings_from_config, unknown_keys
from video_reasoning.keys import scrub_api_keys
from video_reasoning.inputs import (
    discover,
    media_root_for,
    require_inputs,
    shard_number,
    shard_of,
)
from video_reasoning.manifest import Manifest, same_size_counts, write_manifest
from video_reasoning.ledger import RUN_ENV, run_id
from video_reasoning.preflight import check_config, preflight
from video_reasoning.slots import MACHINE_SLOTS_ENV
from video_reasoning.qa_types import all_tasks, qa_type_of_task
from video_reasoning.records import SCHEMA_VERSION
from video_reasoning.store import read_json, short_hash
from video_reasoning.summary import cost_line, run_outcome

# First: a validation error prints the config, which must hold no key.
scrub_api_keys(config)
_unknown = unknown_keys(config)
if _unknown:
    raise WorkflowError("Invalid spec: unknown key(s): " + "; ".join(_unknown))
validate(config, "../schemas/config.schema.yaml")  # also fills in every default
R = config["results_dir"]
# Discovery and the config checks run in the main process only, which writes the videos to
# the manifest when the run starts; a job Snakemake runs remotely (SLURM, Kubernetes: it
# parses this file again) looks its video up there, so its start-up does not grow with the
# number of videos.
try:
    SETTINGS = settings_from_config(config)
    PROMPTS = registry.prompt_set(SETTINGS)
    # data.shards: a shard run annotates its videos (steps 0-3, verification) and writes
    # its shard's marker; the merge run (no shard_index) reads every shard's records, with
    # no per-video job in its DAG, and writes the dataset, summary and report.
    SHARDS = SETTINGS.data.shards
    SHARD = SETTINGS.data.shard_index if SHARDS > 1 else None
    MERGE = SHARDS > 1 and SHARD is None
    _manifest = registry.manifest_path(R, SHARD, SHARDS)
    if workflow.remote_exec:
        VIDEOS = Manifest(_manifest, SHARD)
        # how many earlier videos (any shard) have a video's byte size
        same_size_count = Manifest(_manifest).same_size_count
    else:
        check_config(SETTINGS)
        _entries = discover(SETTINGS.data)
        require_inputs(_entries, SETTINGS.data)
        VIDEOS = {e.vid: e for e in shard_of(_entries, SETTINGS.data)}
        same_size_count = same_size_counts(_entries).__getitem__
except ConfigError as _exc:
    raise WorkflowError(f"Invalid spec: {_exc}") from None

# envs/video_reasoning.yaml installs the package from here (pip expands the variable; it
# is set here for conda, not read: no envvars directive).
os.environ.update(VRA_WORKFLOW_DIR=workflow.basedir)

WF = SETTINGS.workflow
STEPS = registry.effective_steps(WF)
QA_TYPES = tuple(WF.qa_types)
TASKS = all_tasks(QA_TYPES) if "4" in STEPS else []
# export.splits: split name -> share ({} : no split, one file per task).
SPLITS = SETTINGS.export.splits
# The hash of every prompt template in use (the dataset card names the prompt set by it).
PROMPT_SET_HASH = short_hash(
    PROMPTS.digest(k for s in STEPS for k in registry.prompt_keys(s, SETTINGS))
)
# One id per snakemake command: the cost ledger tells this run's calls from earlier runs'
# (job processes inherit it).
run_id()

# max_workers caps concurrent model calls per backend (video_reasoning.slots): on this
# machine every call holds one of max_workers machine-wide call slots of its backend, and
# each model job one unit of its main backend's resource (vlm_calls / llm_calls,
# JOBS_PER_BACKEND x max_workers units), so a job starting up does not leave a slot idle;
# on a cluster a job holds JOBS_PER_BACKEND units per call it sends at once, so Snakemake's
# scheduler keeps the cap with no file lock. Model jobs wait on the network and take no
# core (threads: 0): --cores bounds the CPU-bound jobs only.
for _name in ("vlm_calls", "llm_calls"):
    if _name not in workflow.global_resources:
        workflow.register_resource(_name, registry.JOBS_PER_BACKEND * WF.max_workers)


onstart:
    start_model_jobs()


onsuccess:
    print(cost_line(R), file=sys.stderr)


onerror:
    last_word()


wildcard_constraints:
    vid=r"[A-Za-z0-9._-]+",
    task="|".join(TASKS) or "(?!)",
    qa_type="|".join(QA_TYPES),
    split="|".join(SPLITS) or "(?!)",


def job_outputs(job):
    """Named per-video outputs of a job (one per step that runs; step 3 per QA type)."""
    return registry.job_outputs(job, R, STEPS, QA_TYPES)


def job_inputs(job):
    """Named inputs of a job: the records of earlier jobs' steps it reads."""
    return registry.job_inputs(job, R, STEPS, QA_TYPES)


def video_file(wildcards):
    """The video as a Snakemake input (so replacing it reruns its jobs); nothing for a
    path that is not a regular file, which step 0 then rejects with its reason."""
    path = VIDEOS[wildcards.vid].path
    return [path] if path and os.path.isfile(path) else []


def settings_params(rule):
    """The settings ``rule`` reads, as its rerun fingerprint (video_reasoning.steps: a
    changed one reruns exactly the jobs that read it; never an API key)."""
    return registry.fingerprint(rule, SETTINGS)


def video_params(job):
    """Params every per-video job has: the video, its source, a problem found at discovery,
    the settings and prompt hashes of the job's steps, the record schema version, and the
    token of the job's last failure (a new failure reruns the job next time)."""
    return {
        "settings": settings_params(job),
        "video": lambda w: VIDEOS[w.vid].path,
        "source": lambda w: VIDEOS[w.vid].source,
        "problem": lambda w: VIDEOS[w.vid].problem,
        "prompts": registry.job_prompts(job, SETTINGS, PROMPTS),
        "schema_version": SCHEMA_VERSION,
        "retry": lambda w: registry.failure_token(R, job, w.vid),
    }


# Skipping near-duplicates needs find_duplicates (perceptual hashes) before any caption
# job; otherwise a caption job finds an exact copy itself, by hashing only the earlier
# videos of its byte size, and find_duplicates runs alongside (the summary lists both).
SKIP_NEAR = SETTINGS.data.near_duplicates == "skip"


@functools.cache
def previous_duplicates():
    """duplicates.json as the previous run left it (read once per process, when a caption
    job is first built, not at parse time)."""
    return read_json(registry.duplicates_path(R)) or {}


def duplicates_input(wildcards):
    """duplicates.json, for caption jobs that skip near-duplicates (ancient: a new video
    does not rerun them)."""
    return ancient(registry.duplicates_path(R)) if SKIP_NEAR else []


def duplicate_param(wildcards):
    """Skipping near-duplicates: the video's entry in duplicates.json ("" before it
    exists; a changed entry reruns its caption job). Else: how many earlier videos have
    its byte size (a new one reruns it); step 0 reads them from the manifest and hashes
    them to find an exact copy."""
    if SKIP_NEAR:
        return previous_duplicates().get(wildcards.vid, "")
    return same_size_count(wildcards.vid)


def video_paths(wildcards):
    """Every video that is a regular file (find_duplicates reads them)."""
    return [e.path for e in VIDEOS.values() if e.path and os.path.isfile(e.path)]


def video_list(wildcards=None):
    """``(video id, path, source)`` of every video, in input order."""
    return [(v, e.path, e.source) for v, e in VIDEOS.items()]


@functools.cache
def media_root(wildcards=None):
    """The dataset's ``media_root`` (computed once, when a job that needs it is built)."""
    return media_root_for(list(VIDEOS.values()), SETTINGS.data.video_root)


def call_units(job, role):
    """An input function: the units of ``<role>_calls`` the job holds
    (video_reasoning.steps.Job.call_units), as a job on this machine or on a cluster:
    evaluated when the job is built, once the executor is known (at parse time it is not).
    """

    def units(wildcards):
        local = workflow.local_exec and not workflow.remote_exec
        return registry.JOBS[job].call_units(STEPS, WF, local).get(f"{role}_calls", 0)

    return units


def shard_markers():
    """The marker of every shard (the merge run's inputs instead of per-video records)."""
    return [registry.shard_path(R, i, SHARDS) for i in range(SHARDS)]


def selection_inputs(wildcards):
    """The verification record of every video, in VIDEOS order (the merge run: the shard
    markers; select_items reads the records by video id)."""
    if MERGE:
        return shard_markers()
    return [registry.step_path(R, registry.VERIFY, v) for v in VIDEOS]


def task_inputs(wildcards):
    """The selected items of the QA type that feeds a task."""
    return registry.selection_path(R, qa_type_of_task(wildcards.task).name)


def task_files():
    """Every task file of the dataset (one per task, or per split and task)."""
    return [p for t in TASKS for p in registry.task_files(R, t, SPLITS)]


def records_of_all_videos(wildcards=None):
    """Every per-video record the run writes (the merge run: the shard markers)."""
    if MERGE:
        return shard_markers()
    return [
        p
        for v in VIDEOS
        for job in registry.JOBS
        for p in registry.job_outputs(job, R, STEPS, QA_TYPES, v).values()
    ]


def shard_inputs(wildcards):
    """The last job's records of every video of this shard."""
    last = registry.last_job(STEPS)
    return [
        p
        for v in VIDEOS
        for p in registry.job_outputs(last, R, STEPS, QA_TYPES, v).values()
    ]


def check_shards():
    """The merge run: every shard finished, over the videos the spec names now.

    Raises:
        WorkflowError: naming the shards to run (again) and the command.
    """
    done = {}
    for i, path in enumerate(shard_markers()):
        marker = read_json(path)
        if isinstance(marker, dict):
            done.update({v: i for v in marker.get("videos", [])})
    todo = sorted(
        {i for i, p in enumerate(shard_markers()) if not os.path.exists(p)}
        | {shard_number(v, SHARDS) for v in VIDEOS if v not in done}
    )
    if todo:
        raise WorkflowError(
            f"data.shards is {SHARDS}: shard(s) {', '.join(map(str, todo))} not finished for the videos "
            "the spec names now (no marker under "
            f"{os.path.join(R, 'shards')}, or videos added since). Run each first, e.g. snakemake "
            '--configfile spec.yaml --config \'video_reasoning_annotation={"data": '
            f'{{"shard_index": {todo[0]}}}}}\'; then this merge run again.'
        )


def start_model_jobs():
    """Before the first job of a run (not for -n, --report, --unlock ...): close the circuit
    breakers, preflight the backends that pending model jobs call, write the video manifest
    the jobs read, then start the progress count (videos whose last job runs)."""
    pending = {job.rule.name for job in workflow.dag.needrun_jobs()}
    roles = sorted(
        {
            r
            for name in pending & set(registry.JOBS)
            for r in registry.JOBS[name].roles(STEPS)
        },
        reverse=True,  # the VLM first: the jobs that run first call it
    )
    for role in ("vlm", "llm"):
        Breaker(registry.cache_path(R), role).reset()
    try:
        preflight(SETTINGS, roles)
    except ConfigError as exc:
        raise WorkflowError(f"Preflight failed, no video job started: {exc}") from None
    write_manifest(registry.manifest_path(R, SHARD, SHARDS), _entries, SHARDS)
    if workflow.local_exec:  # jobs on this machine share its call slots
        os.environ[MACHINE_SLOTS_ENV] = os.path.join(registry.cache_path(R), "slots")
    last = registry.last_job(STEPS)
    progress.start(
        R,
        pending=len(
            {
                j.wildcards.vid
                for j in workflow.dag.needrun_jobs()
                if j.rule.name == last
            }
        ),
        total=len(VIDEOS),
    )


_INTERRUPTED = []


def _on_interrupt(signum, frame):
    _INTERRUPTED.append(signum)
    signal.default_int_handler(signum, frame)  # Snakemake then cancels the running jobs


signal.signal(signal.SIGINT, _on_interrupt)


def last_word():
    """End a failed run with one line: interrupted and how to resume, or how many videos
    failed and how to retry them."""
    if _INTERRUPTED:
        sys.exit(
            "interrupted (Ctrl-C): the running jobs were stopped; every finished file is "
            "complete. Run the same command again to resume: answered calls are not paid twice."
        )
    message = run_outcome(registry.summary_path(R))
    if message:
        sys.exit(f"{cost_line(R)}\n{message}")


def all_targets():
    """The dataset, the summary, the report's pages, the dataset card and the failure
    check (the summary needs every record); a shard run: its shard's marker."""
    if SHARD is not None:
        return [registry.shard_path(R, SHARD, SHARDS)]
    return [
        *task_files(),
        registry.summary_path(R),
        registry.report_path(R, "videos.html"),
        registry.card_path(R),
        registry.check_path(R),
    ]


if MERGE and not workflow.remote_exec:
    check_shards()

# Config (validated before anything runs), video discovery, and the input functions and
# params every rule uses. Paths, steps and jobs come from the step registry
# (video_reasoning.steps), QA types and tasks from the QA-type registry.
import os
import signal
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from video_reasoning import progress
from video_reasoning import steps as registry
from video_reasoning.breaker import Breaker
from video_reasoning.card import prompt_set_name
from video_reasoning.duplicates import same_size_peers
from video_reasoning.config import (
    ConfigError,
    check_config,
    scrub_api_keys,
    settings_from_config,
    short_hash,
    unknown_keys,
)
from video_reasoning.costs import prices
from video_reasoning.inputs import discover, media_root_for, require_inputs
from video_reasoning.ledger import RUN_ENV, run_id
from video_reasoning.preflight import preflight
from video_reasoning.prompts import load_prompts, step_prompt_keys
from video_reasoning.qa_types import all_tasks, qa_type_of_task
from video_reasoning.records import SCHEMA_VERSION
from video_reasoning.store import read_json
from video_reasoning.summary import cost_line, run_outcome

# First: a validation error prints the config, which must hold no key.
scrub_api_keys(config)
_unknown = unknown_keys(config)
if _unknown:
    raise WorkflowError("Invalid spec: unknown key(s): " + "; ".join(_unknown))
validate(config, "../schemas/config.schema.yaml")  # also fills in every default
try:
    SETTINGS = settings_from_config(config)
    check_config(SETTINGS)
    PROMPTS = load_prompts(SETTINGS)
    _entries = discover(SETTINGS.data)
    require_inputs(_entries, SETTINGS.data)
    VIDEOS = {e.vid: e for e in _entries}
except ConfigError as _exc:
    raise WorkflowError(f"Invalid spec: {_exc}") from None

# envs/video_reasoning.yaml installs the package from here (pip expands the variable; it
# is set here for conda, not read: no envvars directive).
os.environ.update(VRA_WORKFLOW_DIR=workflow.basedir)

R = config["results_dir"]
WF = SETTINGS.workflow
STEPS = WF.effective_steps()
QA_TYPES = tuple(WF.qa_types)
TASKS = all_tasks(QA_TYPES) if "4" in STEPS else []
# export.splits: split name -> share ({} : no split, one file per task).
SPLITS = SETTINGS.export.splits
MEDIA_ROOT = media_root_for(list(VIDEOS.values()), SETTINGS.data.video_root)
VIDEO_LIST = [(v, e.path, e.source) for v, e in VIDEOS.items()]
# The price table of the models in use (a changed price rewrites summary.json's cost).
PRICES = {
    m: p.model_dump()
    for m, p in prices(SETTINGS).items()
    if m in {SETTINGS.vlm.model, SETTINGS.llm.model}
}
# The hash of every prompt template in use (the dataset card names the prompt set by it).
PROMPT_SET_HASH = short_hash(
    PROMPTS.digest(k for s in STEPS for k in step_prompt_keys(s, SETTINGS))
)
# One id per snakemake command: the cost ledger tells this run's calls from earlier runs'
# (job processes inherit it).
run_id()

# max_workers caps concurrent model calls per backend: every call holds one of max_workers
# machine-wide call slots of its backend (video_reasoning.slots), so jobs fire their
# independent calls (chunks, QA types) side by side without exceeding the cap. Each model
# job holds one unit of vlm_calls or llm_calls, its main backend's: at most
# JOBS_PER_BACKEND x max_workers such jobs run, so a job starting up or between calls
# does not leave a slot idle. Model jobs wait on the network and take no core
# (threads: 0): --cores bounds the CPU-bound jobs only.
JOBS_PER_BACKEND = 2
for _name in ("vlm_calls", "llm_calls"):
    if _name not in workflow.global_resources:
        workflow.register_resource(_name, JOBS_PER_BACKEND * WF.max_workers)


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


def video_params(job):
    """Params every per-video job has: the video, its source, a problem found at discovery,
    the prompt hashes of the job's steps, the record schema version, and the token of the
    job's last failure (a new failure reruns the job next time)."""
    keys = [
        k
        for s in registry.JOBS[job].steps
        if s in STEPS
        for k in step_prompt_keys(s, SETTINGS)
    ]
    return {
        "video": lambda w: VIDEOS[w.vid].path,
        "source": lambda w: VIDEOS[w.vid].source,
        "problem": lambda w: VIDEOS[w.vid].problem,
        "prompts": PROMPTS.digest(keys),
        "schema_version": SCHEMA_VERSION,
        "retry": lambda w: registry.failure_token(R, job, w.vid),
    }


# Skipping near-duplicates needs find_duplicates (perceptual hashes) before any caption
# job; otherwise a caption job finds an exact copy itself, by hashing only the earlier
# videos of its byte size, and find_duplicates runs alongside (the summary lists both).
SKIP_NEAR = SETTINGS.data.near_duplicates == "skip"
# duplicates.json as the previous run left it (read once, not once per job).
DUPLICATES = (read_json(registry.duplicates_path(R)) or {}) if SKIP_NEAR else {}
SAME_SIZE = {} if SKIP_NEAR else same_size_peers(VIDEO_LIST)


def duplicates_input(wildcards):
    """duplicates.json, for caption jobs that skip near-duplicates (ancient: a new video
    does not rerun them)."""
    return ancient(registry.duplicates_path(R)) if SKIP_NEAR else []


def duplicate_param(wildcards):
    """Skipping near-duplicates: the video's entry in duplicates.json ("" before it
    exists; a changed entry reruns its caption job). Else: the earlier videos of its byte
    size, which step 0 hashes to find an exact copy."""
    if SKIP_NEAR:
        return DUPLICATES.get(wildcards.vid, "")
    return SAME_SIZE.get(wildcards.vid, [])


def call_resources(job):
    """One unit of vlm_calls or llm_calls: the job's primary backend (the two caps stay
    independent; its other backend's few calls are bounded by that backend's call slots).
    """
    return {f"{role}_calls": 1 for role in registry.JOBS[job].held(STEPS)}


def selection_inputs(wildcards):
    """The verification record of every video, in VIDEOS order."""
    return [registry.step_path(R, registry.VERIFY, v) for v in VIDEOS]


def task_inputs(wildcards):
    """The selected items of the QA type that feeds a task."""
    return registry.selection_path(R, qa_type_of_task(wildcards.task).name)


def task_files():
    """Every task file of the dataset (one per task, or per split and task)."""
    return [p for t in TASKS for p in registry.task_files(R, t, SPLITS)]


def records_of_all_videos():
    """Every per-video record the run writes."""
    return [
        p
        for v in VIDEOS
        for job in registry.JOBS
        for p in registry.job_outputs(job, R, STEPS, QA_TYPES, v).values()
    ]


def start_model_jobs():
    """Before the first job of a run (not for -n, --report, --unlock ...): close the circuit
    breakers, preflight the backends that pending model jobs call, then start the progress
    count (videos whose last job runs)."""
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
    check (the summary needs every record)."""
    return [
        *task_files(),
        registry.summary_path(R),
        registry.report_path(R, "videos.html"),
        registry.card_path(R),
        registry.check_path(R),
    ]

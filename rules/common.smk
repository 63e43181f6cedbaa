# Config (defaults + spec, validated), video discovery, input functions and params shared
# by every stage. Runs when Snakemake parses the workflow, before any job.
import os
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p)

from video_reasoning.config import ConfigError, check_config, scrub_api_keys, settings_from_config, unknown_keys
from video_reasoning.export import TASKS, write_summary
from video_reasoning.inputs import discover, media_root_for
from video_reasoning.prompts import load_prompts, step_prompt_keys

with open(os.path.join(workflow.basedir, "config", "defaults.yaml"), encoding="utf-8") as _fh:
    _defaults = yaml.safe_load(_fh)
scrub_api_keys(config)  # first: a validation error prints the config, which must hold no key
_unknown = unknown_keys(config, _defaults)
if _unknown:
    raise WorkflowError("Invalid spec: unknown key(s): " + "; ".join(_unknown))
_merged = copy.deepcopy(_defaults)
update_config(_merged, config)
config.clear()
config.update(_merged)
validate(config, "../schemas/config.schema.yaml")
try:
    SETTINGS = settings_from_config(config)
    check_config(SETTINGS)
    PROMPTS = load_prompts(SETTINGS)
    VIDEOS = {e.vid: e for e in discover(SETTINGS.data)}
except ConfigError as _exc:
    raise WorkflowError(f"Invalid spec: {_exc}") from None

R = config["results_dir"]
WF = SETTINGS.workflow
STEPS = WF.effective_steps()
QA_TYPES = list(WF.qa_types)
MEDIA_ROOT = media_root_for(list(VIDEOS.values()), SETTINGS.data.video_root)
VLM = SETTINGS.vlm.fingerprint()
LLM = SETTINGS.llm.fingerprint()
LONG = {
    "long_video_threshold_sec": WF.long_video_threshold_sec,
    "long_video_sample_fps": WF.long_video_sample_fps,
    "long_video_max_frames": WF.long_video_max_frames,
}

# max_workers caps concurrent model calls per backend across all running jobs: each model
# job holds one unit of vlm_calls/llm_calls (so at most max_workers model jobs per backend
# run, locally or on a cluster), and inside the jobs every call holds one of max_workers
# machine-wide call slots (video_reasoning.backends.CallSlots), so jobs can fire their
# independent calls (chunks, QA types) side by side without exceeding the cap.
for _name in ("vlm_calls", "llm_calls"):
    if _name not in workflow.global_resources:
        workflow.register_resource(_name, WF.max_workers)


wildcard_constraints:
    vid=r"[A-Za-z0-9._-]+",
    task="|".join(t for q in QA_TYPES for t in TASKS[q]),


def step_file(step, vid="{vid}"):
    """Per-video output of a step (1a, 1b, 1c, 0, 2)."""
    return f"{R}/step_{step}/{vid}.json"


def video_file(wildcards):
    """The video as a Snakemake input (so replacing it reruns its jobs); nothing for a
    path that is not a regular file, which step 0 then rejects with its reason."""
    path = VIDEOS[wildcards.vid].path
    return [path] if path and os.path.isfile(path) else []


def upstream(*steps):
    """Named inputs: step 0 plus those of ``steps`` that run (1c only if it runs)."""
    names = {"0": "step0", "1a": "step1a", "1b": "step1b", "1c": "step1c", "2": "step2"}
    out = {"step0": step_file("0")}
    for s in steps:
        if s in STEPS:
            out[names[s]] = step_file(s)
    return out


def prompt_params(*steps):
    """Hashes of the prompt templates the steps may use: editing one reruns their jobs."""
    return PROMPTS.digest([k for s in steps if s in STEPS for k in step_prompt_keys(s, SETTINGS)])


def all_targets():
    targets = []
    for step in ("0", "1a", "1b", "1c", "2"):
        if step in STEPS:
            targets += [step_file(step, v) for v in VIDEOS]
    if "3" in STEPS:
        targets += [f"{R}/step_3/{q}/{v}.json" for q in QA_TYPES for v in VIDEOS]
    if "4" in STEPS:
        targets += [f"{R}/step_4_output/{t}.json" for q in QA_TYPES for t in TASKS[q]]
    return targets


def summarize():
    import json

    try:
        s = write_summary(R, [(v, e.path, e.source) for v, e in VIDEOS.items()], QA_TYPES, list(STEPS))
        print(f"summary: {R}/summary.json: {json.dumps(s['totals'])}", file=sys.stderr)
    except Exception as exc:  # a summary failure must not mask the run's own outcome
        print(f"could not write {R}/summary.json: {exc}", file=sys.stderr)


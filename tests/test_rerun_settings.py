"""Every setting is part of the rerun fingerprint of exactly the jobs that read it.

The table below names, for each setting of ``video_reasoning/config.py``'s spec models, a
changed value and the rules whose params change with it (or why none do). A setting added
to the models without a row fails :func:`test_every_setting_has_a_row`; a step that starts
reading a setting without declaring it in its registry entry shows up as a rule missing
here once the row is written. Then a finished run shows the wiring: ``snakemake -n`` after
a change plans exactly the table's rules (plus what their new outputs feed).
"""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from support import API_KEY, clip, copy, run_workflow, write_spec
from video_reasoning.config import Settings
from video_reasoning.steps import DATASET_RULES, JOBS, fingerprint, job_prompts, prompt_set

#: The base of the table: the long-video path reachable (so its settings are live).
BASE = {"workflow": {"max_video_length_sec": 7200}}

CAPTION, QA, VERIFY, SELECT, TASK, SUMMARY, CARD = ("caption_video", "write_qa", "verify_qa", "select_items",
                                                    "write_task", "summarize", "dataset_card")
NONE = frozenset()
VLM_WORK = {CAPTION, VERIFY}
LLM_WORK = {CAPTION, QA, VERIFY}  # step 1c asks the LLM too

#: setting -> (changed value, rules whose params change); a str instead of a set says why
#: no param changes (the setting changes which jobs or outputs exist, or nothing produced).
TABLE: dict[str, tuple[object, set[str] | str]] = {
    "vlm.backend": ("openai", VLM_WORK | {SUMMARY, CARD}),
    "vlm.gemini.api_key": ("secret", "a key never reaches a param or a result"),
    "vlm.gemini.model": ("gemini-x", VLM_WORK | {SUMMARY, CARD}),
    "vlm.gemini.media_resolution": ("MEDIA_RESOLUTION_HIGH", VLM_WORK),
    "vlm.gemini.temperature": (0.9, VLM_WORK),
    "vlm.gemini.max_output_tokens": (1000, VLM_WORK),
    "vlm.gemini.timeout": (30, "how long to wait, not what is asked"),
    "vlm.openai.api_key": ("secret", "a key never reaches a param or a result"),
    "vlm.openai.base_url": ("http://127.0.0.1:1/v1", "the inactive backend (vlm.backend is gemini)"),
    "vlm.openai.model_name": ("m", "the inactive backend"),
    "vlm.openai.temperature": (0.1, "the inactive backend"),
    "vlm.openai.max_tokens": (10, "the inactive backend"),
    "vlm.openai.timeout": (5, "the inactive backend"),
    "vlm.openai.video_input": ("frames", "the inactive backend"),
    "llm.backend": ("openai", LLM_WORK | {SUMMARY, CARD}),
    "llm.gemini.api_key": ("secret", "a key never reaches a param or a result"),
    "llm.gemini.model": ("gemini-x", LLM_WORK | {SUMMARY, CARD}),
    "llm.gemini.media_resolution": ("MEDIA_RESOLUTION_HIGH", LLM_WORK),
    "llm.gemini.temperature": (0.9, LLM_WORK),
    "llm.gemini.max_output_tokens": (1000, LLM_WORK),
    "llm.gemini.timeout": (30, "how long to wait, not what is asked"),
    "llm.openai.api_key": ("secret", "a key never reaches a param or a result"),
    "llm.openai.base_url": ("http://127.0.0.1:1/v1", "the inactive backend (llm.backend is gemini)"),
    "llm.openai.model_name": ("m", "the inactive backend"),
    "llm.openai.temperature": (0.1, "the inactive backend"),
    "llm.openai.max_tokens": (10, "the inactive backend"),
    "llm.openai.timeout": (5, "the inactive backend"),
    "llm.openai.video_input": ("frames", "the inactive backend"),
    "workflow.steps": (("0", "1a", "1b", "2", "3", "4"), "which steps run: their outputs appear or go"),
    "workflow.mode": ("normal", {CAPTION, QA, CARD}),  # and the prompts step 3 may use: one mode's
    "workflow.max_workers": (8, "how many calls at once, not what is asked"),
    "workflow.max_video_length_sec": (7300, {CAPTION}),
    "workflow.chunk_duration_options": ((5, 10, 60), {CAPTION, QA, VERIFY, CARD}),  # and the long threshold
    "workflow.max_chunks": (12, {CAPTION, QA, VERIFY, CARD}),  # and the long threshold
    "workflow.highlight_before_sec": (5, {CAPTION}),
    "workflow.highlight_after_sec": (5, {CAPTION}),
    "workflow.long_video_threshold_sec": (30, VLM_WORK),
    "workflow.long_video_sample_fps": (1, VLM_WORK),
    "workflow.long_video_max_frames": (30, VLM_WORK),
    "workflow.qa_types": (("mcq",), {QA}),  # the prompts of step 3; its outputs appear or go
    "workflow.items_per_type": (4, {QA, SELECT, CARD}),
    "workflow.retry_attempts": (2, "how often a call is retried, not what is asked"),
    "workflow.retry_max_seconds": (10, "how long a call is retried, not what is asked"),
    "workflow.max_cost_usd": (5.0, {SUMMARY}),
    "data.video_root": ("elsewhere", "which videos: the jobs that exist"),
    "data.input_jsonl_files": (("a.jsonl",), "which videos: the jobs that exist"),
    "data.filter_field": ("keep", "which videos: the jobs that exist"),
    "data.near_duplicates": ("skip", {CAPTION, CARD}),
    "data.shards": (2, "which videos a run annotates: the jobs that exist"),
    "data.shard_index": (0, "which videos a run annotates: the jobs that exist"),
    "verification.blind_probe": (False, {VERIFY, CARD}),
    "verification.grounded_reanswer": (False, {VERIFY, CARD}),
    "verification.judge": (False, {VERIFY, CARD}),
    "verification.structure": (False, {QA, VERIFY, CARD}),  # step 3 sends structure problems back
    "verification.duplicates": (False, {SELECT, CARD}),
    "verification.policy": ("flag", {SELECT, CARD}),
    "verification.min_iou": (0.5, {VERIFY, CARD}),
    "verification.duplicate_similarity": (80, {SELECT, CARD}),
    "long_video.threshold_sec": (200, {CAPTION, QA, VERIFY, CARD}),
    "long_video.clip_sec": (12, {CAPTION, CARD}),
    "long_video.clips_per_request": (20, {CAPTION, CARD}),
    "long_video.sample_fps": (0.5, {CAPTION, CARD}),
    "long_video.timeline_token_budget": (3000, {QA, CARD}),
    "long_video.segment_sec": (120, {QA, CARD}),
    "long_video.min_event_gap_sec": (30, {QA, VERIFY, CARD}),
    "long_video.reformat": (True, {QA, CARD}),
    "export.media_root": ("relative", {TASK}),
    "export.splits": ({"train": 1.0}, {TASK, SUMMARY, CARD}),
    "license": ("CC-BY-4.0", {TASK, CARD}),
    "description_extra": ("More.", {TASK}),
    "prompts_module": ("", "tested by the prompt-module tests: the template hashes are params"),
    "prompts": ({"anomaly_mcq": "Write {num_items} multiple-choice questions."}, {QA}),  # its template hash
    "pricing": ({"gemini-3.1-flash-lite-preview": {"input": 1, "cached_input": 0, "output": 1}}, {SUMMARY}),
}


def leaves(model: type[BaseModel], where: str = "") -> list[str]:
    """Dotted paths of every setting (free-form mappings are one setting)."""
    out = []
    for name, f in model.model_fields.items():
        path = f"{where}{name}"
        sub = f.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += leaves(sub, path + ".")
        else:
            out.append(path)
    return out


def with_setting(base: dict, path: str, value) -> Settings:
    data = {k: dict(v) for k, v in base.items()}
    node = data
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return Settings.model_validate(data)


def params(settings: Settings) -> dict[str, object]:
    """What each rule carries of the settings: its fingerprint, and per-video jobs their
    prompt hashes (as rules/common.smk passes them)."""
    prompts = prompt_set(settings)
    out = {r: fingerprint(r, settings) for r in DATASET_RULES}
    out.update({j: (fingerprint(j, settings), job_prompts(j, settings, prompts)) for j in JOBS})
    return out


def test_every_setting_has_a_row():
    assert sorted(leaves(Settings)) == sorted(TABLE)


@pytest.mark.parametrize("path", sorted(TABLE))
def test_a_changed_setting_changes_exactly_the_params_of_the_rules_that_read_it(path):
    value, expected = TABLE[path]
    before, after = params(Settings.model_validate(BASE)), params(with_setting(BASE, path, value))
    changed = {r for r in before if before[r] != after[r]}
    assert changed == (NONE if isinstance(expected, str) else expected)


def test_no_key_reaches_a_fingerprint():
    s = {**BASE, "vlm": {"gemini": {"api_key": "sekrit-vlm"}}, "llm": {"gemini": {"api_key": "sekrit-llm"}}}
    assert "sekrit" not in repr(params(Settings.model_validate(s)))


def planned(run_dir, env) -> dict[str, int]:
    """``snakemake -n``: jobs planned per rule."""
    proc = run_workflow(run_dir, env, args=("-n", "--quiet", "host"))  # the profile hides the job stats
    out = proc.stdout + proc.stderr
    table = out.split("Job stats:")[-1] if "Job stats:" in out else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] not in ("total", "all")}


def test_a_finished_run_reruns_only_what_a_changed_setting_touches(tmp_path, standin):
    """On a finished run: long_video.clip_sec (long path on) reruns the caption jobs and
    what reads their records; verification.min_iou the verification and the dataset side;
    verification.policy the selection and what follows; a license the task files and card."""
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    vra = {"data": {"video_root": "videos"}, "workflow": {"max_video_length_sec": 7200, "qa_types": ["bcq"]}}
    write_spec(tmp_path, vra)
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    run_workflow(tmp_path, env)
    assert planned(tmp_path, env) == {}
    dataset = {SELECT, TASK, SUMMARY, "report_pages", CARD, "check_failures"}
    cases = [({"long_video": {"clip_sec": 12}}, {CAPTION, QA, VERIFY} | dataset),
             ({"verification": {"min_iou": 0.5}}, {VERIFY} | dataset),
             ({"verification": {"policy": "flag"}}, dataset),
             ({"license": "CC-BY-4.0"}, {TASK, SUMMARY, "report_pages", CARD, "check_failures"})]
    for change, rules in cases:
        write_spec(tmp_path, {**vra, **change})
        assert set(planned(tmp_path, env)) == rules, change

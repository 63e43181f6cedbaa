"""One place for each fact: generated spec files, typed records, the registries, and a new
QA type added as one registry entry and run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from support import API_KEY, REPO, assert_dataset_valid, assert_no_secret, clip, copy, load, run_workflow, write_spec
from video_reasoning import specdoc
from video_reasoning.config import Spec
from video_reasoning.qa_types import QA_TYPES, all_tasks
from video_reasoning.records import SCHEMA_VERSION, QARecord, RecordError, Status, read_record, write_record
from video_reasoning.steps import JOBS, STEPS, job_outputs, step_of_output, step_path


def test_generated_spec_files_match_the_models():
    """schemas/config.schema.yaml, config/defaults.yaml and the README table are what
    `python -m video_reasoning.specdoc --write` makes from video_reasoning/config.py."""
    assert specdoc.stale() == []


def test_defaults_and_example_are_valid_specs():
    defaults = yaml.safe_load((REPO / "config" / "defaults.yaml").read_text(encoding="utf-8"))
    assert Spec.model_validate(defaults) == Spec()
    example = yaml.safe_load((REPO / "config" / "example_spec.yaml").read_text(encoding="utf-8"))
    Spec.model_validate(example)


def test_schema_states_the_ranges_of_the_models():
    wf = yaml.safe_load(specdoc.schema_text())["$defs"]["WorkflowSettings"]["properties"]
    assert wf["max_workers"]["minimum"] == 1 and wf["long_video_sample_fps"]["exclusiveMinimum"] == 0
    assert wf["qa_types"]["items"]["enum"] == list(QA_TYPES) and wf["qa_types"]["uniqueItems"] is True


def test_record_of_another_version_is_rejected_with_what_to_do(tmp_path):
    path = tmp_path / "r.json"
    rec = QARecord(status=Status.DONE, qa_type="mcq", items=[{"question": "q"}])
    write_record(str(path), rec)
    assert read_record(str(path), QARecord) == rec
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION - 1
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="Run snakemake again"):
        read_record(str(path), QARecord)
    path.write_text(json.dumps({"status": "done", "qa_type": "mcq"}))  # no version: the first layout
    with pytest.raises(RecordError, match="schema version 1"):
        read_record(str(path), QARecord)


def test_step_registry_names_every_path_once():
    outs = {**job_outputs("caption_video", "R", tuple(STEPS), ("mcq",), "v"),
            **job_outputs("write_qa", "R", tuple(STEPS), ("mcq", "bcq"), "v")}
    assert outs == {"step_0": "R/step_0/v.json", "step_1a": "R/step_1a/v.json", "step_1b": "R/step_1b/v.json",
                    "step_1c": "R/step_1c/v.json", "step_2": "R/step_2/v.json",
                    "step_3_mcq": "R/step_3/mcq/v.json", "step_3_bcq": "R/step_3/bcq/v.json"}
    assert {s.job for s in STEPS.values()} == set(JOBS)
    assert {k: step_of_output(k) for k in outs} == {
        "step_0": ("0", None), "step_1a": ("1a", None), "step_1b": ("1b", None), "step_1c": ("1c", None),
        "step_2": ("2", None), "step_3_mcq": ("3", "mcq"), "step_3_bcq": ("3", "bcq")}
    assert step_of_output("video") is None
    with pytest.raises(ValueError, match="qa_type"):
        step_path("R", "3", "v")


NINTH_TYPE = '''

register(QAType(
    "counting", OpenItem,
    (Task("counting", "Counting: how many people, vehicles or objects take part in an event."),),
    "counting questions (how many people, vehicles or objects take part in an event) whose answer "
    "is a number with the visible evidence for it. Write {num_items}"))

#: A second yes/no type: an item kind other than open-ended, checked as yes/no (blind probes
#: and grounded re-answer, no judge).
register(QAType(
    "presence", BCQItem,
    (Task("presence", "Presence: yes/no questions on whether something appears in the video.", "Answer Yes or No."),),
    "yes/no questions on whether a person, vehicle or object appears in the video at some point. "
    "Balance them: some answered Yes, some No. Write {num_items}", verify="yes_no"))
'''

NEW_STEP = '''


class WordCountRecord(records.Record):
    """A step of ours for the test: how many words step 2's summary has (no call)."""

    words: int = 0


def count_words(video) -> WordCountRecord:
    return WordCountRecord(status=records.Status.DONE, words=len(video.records["2"].description.summary.split()))


STEPS["word_count"] = Step("word_count", "step_word_count", "write_qa", WordCountRecord,
                           "video_reasoning.steps:count_words", lambda s: [], stage=2, when=lambda tao: "2" in tao)
'''


def test_a_qa_type_and_a_step_are_one_registry_entry_each(tmp_path, standin):
    """Add two QA types (one open-ended, one yes/no) to a copy of the workflow as a
    developer would (one register() call each in video_reasoning/qa_types.py, then
    regenerate the spec files) and a step (one Step entry and its function in
    video_reasoning/steps.py), and run it end to end: the new types reach the dataset, the
    step writes its record for the video in the job it names."""
    tree = tmp_path / "workflow"
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if not rel.startswith(("tests/", "bench/", ".ci/")) and (REPO / rel).is_file():
            copy(str(REPO / rel), tree / rel)
    with open(tree / "video_reasoning" / "qa_types.py", "a", encoding="utf-8") as fh:
        fh.write(NINTH_TYPE)
    with open(tree / "video_reasoning" / "steps.py", "a", encoding="utf-8") as fh:
        fh.write(NEW_STEP)
    env = {"PYTHONPATH": str(tree)}  # the copy's package before the installed one
    subprocess.run([sys.executable, "-m", "video_reasoning.specdoc", "--write"], cwd=tree, check=True,
                   env={**os.environ, **env}, timeout=120)
    changed = [rel for rel in tracked
               if (tree / rel).is_file() and (tree / rel).read_bytes() != (REPO / rel).read_bytes()]
    assert sorted(changed) == ["README.md", "config/defaults.yaml", "schemas/config.schema.yaml",
                               "video_reasoning/qa_types.py", "video_reasoning/steps.py"]  # two by hand

    run = tmp_path / "run"
    copy(clip("bikes.mp4"), run / "videos" / "bikes.mp4")
    write_spec(run, {"data": {"video_root": "videos"}, "workflow": {"qa_types": ["mcq", "counting", "presence"]}})
    run_workflow(run, {**env, "GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url},
                 snakefile=tree / "Snakefile")
    results = run / "results"
    counts = assert_dataset_valid(results, ["mcq", "mcq_openended", "counting", "presence"])
    assert counts["counting"] > 0 and counts["presence"] > 0 and counts["mcq"] == counts["mcq_openended"] > 0
    prompts = [c["prompt"] for c in standin.calls("gemini")]
    assert any(p.startswith("You write counting questions") for p in prompts)
    assert any(p.startswith("You write yes/no questions on whether") for p in prompts)
    summary = load(results / "summary.json")
    assert summary["tasks"] == counts and summary["totals"]["annotated"] == 1
    record = next((results / "step_3" / "counting").glob("bikes-*.json"))
    assert load(record)["status"] == "done"
    # the yes/no type's items went through the blind probes (the open-ended one's do not)
    verification = load(next((results / "verification").glob("bikes-*.json")))
    probed = {it["qa_type"]: "blind_probe" in it["answers"] for it in verification["items"]}
    assert probed == {"mcq": True, "counting": False, "presence": True}
    words = load(next((results / "step_word_count").glob("bikes-*.json")))
    assert words["status"] == "done" and words["words"] > 3
    assert (results / "logs" / "write_qa").is_dir()
    assert_no_secret(run)
    shutil.rmtree(tree)


def test_registries_agree_with_tao_tasks():
    assert all_tasks() == ["mcq", "mcq_openended", "bcq", "bcq_openended", "open_qa", "causal_linkage",
                           "temporal_localization", "temporal_description", "scene_description",
                           "video_summarization"]

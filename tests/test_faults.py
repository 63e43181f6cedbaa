"""Faults and bad input end to end: nothing lost, nothing silent, nothing leaked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import (
    API_KEY,
    FAULT_CYCLE,
    REPO,
    StandIn,
    assert_no_secret,
    clip,
    copy,
    dataset,
    load,
    run_workflow,
    sha256,
    write_spec,
)


def setup_run(folder: Path, **workflow) -> None:
    """Two real videos (one classified anomaly) and a Gemini spec with a 2 s call timeout."""
    copy(clip("bikes.mp4"), folder / "videos" / "bikes.mp4")
    copy(clip("carphone_pristine.mp4"), folder / "videos" / "carphone.mp4")
    write_spec(folder, {"vlm": {"backend": "gemini", "gemini": {"timeout": 2}},
                        "llm": {"backend": "gemini", "gemini": {"timeout": 2}},
                        "data": {"video_root": "videos"},
                        "workflow": {"chunk_duration_options": [2, 5], **workflow}})


@pytest.fixture(scope="module")
def server():
    with StandIn(api_key=API_KEY, labels={sha256(clip("bikes.mp4")): "anomaly"}) as s:
        yield s


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    """Dataset and model-call count of a fault-free, uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    setup_run(folder)
    server.reset()
    run_workflow(folder, env(server))
    calls = len(server.calls("gemini"))
    server.reset()
    server.uploads.clear()
    return dataset(folder / "results"), calls


def env(server) -> dict:
    return {"GOOGLE_GEMINI_BASE_URL": server.url, "GOOGLE_API_KEY": API_KEY}


@pytest.fixture
def fresh(server):
    server.reset()
    server.uploads.clear()
    server.script, server.fault_every, server.model_calls = [], 0, 0
    yield server
    server.script, server.fault_every = [], 0


def test_one_fault_in_five_loses_nothing(tmp_path, fresh, reference):
    expected, calls = reference
    setup_run(tmp_path, retry_attempts=8)
    fresh.fault_every = 5      # in turn: 429, 500, a stall past the 2 s timeout, bad JSON, schema violation
    fresh.hang_seconds = 3
    run_workflow(tmp_path, env(fresh))
    injected = fresh.model_calls // 5
    assert injected >= len(FAULT_CYCLE) and fresh.model_calls >= calls + injected  # each kind at least once
    assert dataset(tmp_path / "results") == expected
    assert load(tmp_path / "results" / "summary.json")["totals"]["failed"] == 0
    assert_no_secret(tmp_path)


def test_exhausted_retries_fail_the_job_and_are_listed(tmp_path, fresh, reference):
    setup_run(tmp_path, retry_attempts=2)
    fresh.script_for = {sha256(clip("bikes.mp4")): ["500", "500"]}  # bikes' first call fails twice
    proc = run_workflow(tmp_path, env(fresh), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "bikes.mp4), step 0: vlm gemini/gemini-3.1-flash-lite-preview" in out and "gave up after 2 attempts" in out
    summary = load(tmp_path / "results" / "summary.json")
    failed = [v for v in summary["videos"] if v["status"] == "failed"]
    assert len(failed) == 1 and "HTTP 500" in failed[0]["error"] and failed[0]["path"].endswith("bikes.mp4")
    other = next(v for v in summary["videos"] if v["status"] != "failed")
    assert (tmp_path / "results" / "step_3" / "mcq" / f"{other['video_id']}.json").exists()  # it went on
    assert "1 of 2 videos failed" in out and failed[0]["path"] in out.split("1 of 2 videos failed")[1]
    partial = dataset(tmp_path / "results")  # the dataset holds the video that succeeded
    assert all(partial[t] and set(partial[t]) < set(reference[0][t]) for t in partial)
    fresh.reset()
    run_workflow(tmp_path, env(fresh))   # the next run retries only what failed
    assert load(tmp_path / "results" / "summary.json")["totals"]["annotated"] == 2
    assert {c["media_sha"] for c in fresh.calls("gemini")} - {None} == {sha256(failed[0]["path"])}
    assert dataset(tmp_path / "results") == reference[0]
    fresh.reset()
    again = run_workflow(tmp_path, env(fresh), args=("-n",))  # then nothing is left to do
    assert "Nothing to be done" in again.stdout + again.stderr and fresh.calls() == []


KILL_POINTS = {
    "first call": lambda c, n: n == 1,
    "step 1a": lambda c, n: c["prompt"].startswith("Caption this video"),
    "middle of step 1b": lambda c, n: "-second part of a longer video" in c["prompt"] and n > 9,
    "step 1c": lambda c, n: c["prompt"].startswith("Below are captions"),
    "step 2": lambda c, n: c["prompt"].startswith("Combine the captions"),
    "middle of step 3": lambda c, n: "for a video-reasoning dataset" in c["prompt"] and n > 30,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_rerun_pays_nothing_twice(tmp_path, fresh, reference, point):
    expected, reference_calls = reference
    setup_run(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "4",
           "--configfile", "spec.yaml"]
    run_env = {**os.environ, **env(fresh)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    when = KILL_POINTS[point]
    killed = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(when(c, i + 1) for i, c in enumerate(fresh.calls("gemini"))):
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert killed, f"the run ended before reaching {point}"
    answered = len(fresh.calls("gemini"))
    fresh.reset()
    subprocess.run(cmd + ["--unlock"], cwd=tmp_path, env=run_env, capture_output=True, check=True)
    run_workflow(tmp_path, env(fresh))
    resumed = len(fresh.calls("gemini"))
    # nothing answered before the kill is paid again, but for calls in flight at the kill
    # (at most max_workers per backend)
    assert answered + resumed <= reference_calls + 8
    assert resumed < reference_calls or point == "first call"
    assert dataset(tmp_path / "results") == expected
    # every file the killed and resumed runs left in place is complete (temporary files aside)
    for path in (tmp_path / "results").rglob("*.json"):
        if not path.name.startswith(".tmp-"):
            json.loads(path.read_text(encoding="utf-8"))


def _two_videos(folder: Path, backend: str, url: str) -> dict:
    copy(clip("bikes.mp4"), folder / "videos" / "bikes.mp4")
    copy(clip("carphone_pristine.mp4"), folder / "videos" / "carphone.mp4")
    if backend == "openai":
        block = {"backend": "openai", "openai": {"base_url": url + "/v1", "model_name": "stand-in-vl"}}
        write_spec(folder, {"vlm": block, "llm": block, "data": {"video_root": "videos"}})
        return {"OPENAI_API_KEY": API_KEY}
    write_spec(folder, {"data": {"video_root": "videos"}})
    return {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": url}


@pytest.mark.parametrize("backend", ["gemini", "openai"])
def test_a_video_whose_every_call_fails_does_not_block_the_dataset(tmp_path, standin, backend):
    """HTTP 400 on every call about one video fails that video at once (no retry); the other
    is annotated and in the dataset, the run exits non-zero naming it, and the next run,
    against a fixed server, completes it and adds its items."""
    env = _two_videos(tmp_path, backend, standin.url)
    standin.script_for = {sha256(clip("bikes.mp4")): ["400"] * 100}
    proc = run_workflow(tmp_path, env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "1 of 2 videos failed" in out.splitlines()[-1] + out
    summary = load(tmp_path / "results" / "summary.json")
    failed = [v for v in summary["videos"] if v["status"] == "failed"]
    assert [Path(v["path"]).name for v in failed] == ["bikes.mp4"] and "HTTP 400" in failed[0]["error"]
    assert len(standin.calls(backend)) and len([c for c in standin.calls(backend)
                                                if c["media_sha"] == sha256(clip("bikes.mp4"))]) == 1
    assert summary["totals"]["annotated"] == 1 and all(n > 0 for n in summary["tasks"].values())
    before = summary["tasks"]
    standin.script_for = {}
    run_workflow(tmp_path, env)
    after = load(tmp_path / "results" / "summary.json")
    assert after["totals"]["annotated"] == 2 and all(after["tasks"][t] > before[t] for t in before)
    assert_no_secret(tmp_path)


def test_one_failing_qa_type_keeps_the_video_s_others(tmp_path, standin):
    """A QA type whose call fails for good fails alone: the video's other QA types are written
    and in the dataset; the rerun makes that type's call (and the video's verification) only."""
    env = _two_videos(tmp_path, "gemini", standin.url)
    standin.script_when = {"yes/no questions": ["400"]}  # the first bcq call, whichever video
    proc = run_workflow(tmp_path, env, check=False)
    assert proc.returncode != 0 and "1 of 2 videos failed" in proc.stdout + proc.stderr
    results = tmp_path / "results"
    records = {p.parent.name: load(p) for p in results.glob("step_3/*/*.json")
               if load(p)["status"] != "done"}
    assert list(records) == ["bcq"] and records["bcq"]["status"] == "failed" and "HTTP 400" in records["bcq"]["reason"]
    vid = records["bcq"]["video_id"]
    assert all(load(results / "step_3" / q / f"{vid}.json")["status"] == "done" for q in ("mcq", "open_qa"))
    summary = load(results / "summary.json")
    assert summary["tasks"]["bcq"] > 0 and summary["tasks"]["mcq"] == 2 * summary["tasks"]["bcq"]
    standin.reset()
    run_workflow(tmp_path, env)
    written = [c for c in standin.calls("gemini") if "for a video-reasoning dataset" in c["prompt"]]
    assert len(written) == 1 and "yes/no questions" in written[0]["prompt"]
    assert load(results / "summary.json")["totals"]["annotated"] == 2

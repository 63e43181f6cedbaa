"""data.shards: each shard annotated by its own snakemake run, then one merge run writes the
dataset, summary and report; the result equals the unsharded run's."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import API_KEY, assert_dataset_valid, clip, copy, load, run_workflow, write_spec
from video_reasoning.inputs import shard_number, video_id_for

NAMES = ["bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"]
VRA = {"data": {"video_root": "videos"}, "export": {"media_root": "relative"},
       "workflow": {"mode": "normal", "qa_types": ["mcq", "temporal_localization"]}}


def _videos(folder: Path, copy_name: str | None = None) -> dict[str, str]:
    """The clips, plus an exact copy of bikes.mp4 named ``copy_name`` or else (sorted after
    it) so that it falls in the other shard of two. Returns relative name -> video id."""
    for n in NAMES:
        copy(clip(n), folder / "videos" / n)
    root = str(folder / "videos")
    ids = {n: video_id_for(os.path.join(root, n), root) for n in NAMES}
    original = shard_number(ids["bikes.mp4"], 2)
    for name in [copy_name] if copy_name else (f"zz_copy_{k}.mp4" for k in range(100)):
        vid = video_id_for(os.path.join(root, name), root)
        if copy_name or shard_number(vid, 2) != original:
            copy(clip("bikes.mp4"), folder / "videos" / name)
            ids[name] = vid
            return ids
    raise AssertionError("no copy name in the other shard")


def _shard_args(i: int) -> tuple[str, ...]:
    return ("--config", 'video_reasoning_annotation={"data": {"shard_index": ' + str(i) + "}}")


def _by_name(summary: dict) -> dict[str, dict]:
    return {Path(v["path"]).name: v for v in summary["videos"]}


def test_shard_runs_then_a_merge_run_give_the_unsharded_dataset(tmp_path, standin):
    env = {"GOOGLE_GEMINI_BASE_URL": standin.url, "GOOGLE_API_KEY": API_KEY}
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    ids = _videos(sharded)
    copy_name = next(n for n in ids if n.startswith("zz_copy"))
    _videos(whole, copy_name)
    write_spec(whole, VRA)
    run_workflow(whole, env)
    whole_calls = len(standin.calls("gemini"))

    write_spec(sharded, {**VRA, "data": {**VRA["data"], "shards": 2}})
    results = sharded / "results"

    # the merge run before any shard: a clear error naming the shards and the command, no call
    standin.reset()
    proc = run_workflow(sharded, env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "shard(s) 0, 1 not finished" in out, out[-2000:]
    assert "shard_index" in out and standin.calls() == []

    # shard 0 annotates its videos only and writes its marker, not the dataset
    run_workflow(sharded, env, args=_shard_args(0))
    mine = {n for n, v in ids.items() if shard_number(v, 2) == 0}
    assert mine and mine != set(ids)
    annotated = {p.stem for p in (results / "step_0").glob("*.json")}
    assert annotated == {ids[n] for n in mine}
    marker = load(results / "shards" / "0-of-2.json")
    assert sorted(marker["videos"]) == sorted(ids[n] for n in mine)
    assert not (results / "step_4_output").exists() and not (results / "summary.json").exists()

    proc = run_workflow(sharded, env, check=False)
    assert proc.returncode != 0 and "shard(s) 1 not finished" in proc.stdout + proc.stderr

    # shard 1, then the merge run: no model call, the dataset of the unsharded run
    run_workflow(sharded, env, args=_shard_args(1))
    shard_calls = len(standin.calls("gemini"))
    standin.reset()
    proc = run_workflow(sharded, env)
    assert standin.calls() == [], "the merge run called a model"
    assert shard_calls == whole_calls
    tasks = [p.stem for p in (whole / "results" / "step_4_output").glob("*.json")]
    assert tasks and assert_dataset_valid(results, tasks) == assert_dataset_valid(whole / "results", tasks)
    for t in tasks:
        a = load(whole / "results" / "step_4_output" / f"{t}.json")["items"]
        b = load(results / "step_4_output" / f"{t}.json")["items"]
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), t

    # the exact copy in the other shard was found and annotated once, as without shards
    summary, unsharded = load(results / "summary.json"), load(whole / "results" / "summary.json")
    assert _by_name(summary)[copy_name]["status"] == "duplicate" == _by_name(unsharded)[copy_name]["status"]
    assert summary["totals"] == unsharded["totals"]
    assert (results / "DATASET.md").exists()

    # a shard rerun after the merge is a no-op
    standin.reset()
    run_workflow(sharded, env, args=_shard_args(0))
    assert standin.calls() == []


def test_shard_settings_mistakes_stop_before_any_job(tmp_path, standin):
    env = {"GOOGLE_GEMINI_BASE_URL": standin.url, "GOOGLE_API_KEY": API_KEY}
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    for data, needle in (({"shards": 2, "shard_index": 2}, "data.shard_index 2 is not below data.shards 2"),
                         ({"shards": 0}, "shards"),
                         ({"shards": 2, "near_duplicates": "skip"}, "use keep with data.shards")):
        write_spec(tmp_path, {**VRA, "data": {**VRA["data"], **data}})
        proc = run_workflow(tmp_path, env, check=False)
        assert proc.returncode != 0 and needle in proc.stdout + proc.stderr, (data, proc.stderr[-1500:])
        assert not (tmp_path / "results").exists() and standin.calls() == []

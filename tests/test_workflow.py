"""End-to-end runs of the workflow (Snakemake + real SDKs + stand-in server + real videos)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from support import (
    API_KEY,
    all_tasks,
    assert_dataset_valid,
    assert_no_secret,
    clip,
    copy,
    load,
    run_workflow,
    sha256,
    write_spec,
)

ALL_TASKS = all_tasks()
#: How our verification prompts start (blind probe, grounded re-answer, judge).
VERIFICATION = ("Below are questions about a video you cannot see", "Watch this", "Each item below has a question")


def test_gemini_auto_mode_full_run(tmp_path, standin, long_video):
    videos = tmp_path / "videos"
    copy(clip("bikes.mp4"), videos / "a" / "clip.mp4")                 # classified anomaly
    copy(clip("bigbuckbunny.mp4"), videos / "b" / "clip.mp4")          # same name, other folder
    copy(clip("carphone_pristine.mp4"), videos / "b" / "big buck ü $x.mp4")
    copy(long_video, videos / "long.mp4")                              # 70 s: sampled, chunked by 10 s
    (videos / "notes.mp4").write_text("this is not a video")           # rejected at no cost
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    write_spec(tmp_path, {"vlm": {"backend": "gemini", "gemini": {"api_key": API_KEY}},
                          "llm": {"backend": "gemini"},
                          "data": {"video_root": "videos"}, "license": "CC-BY-4.0", "description_extra": "Test set."})
    env = {"GOOGLE_GEMINI_BASE_URL": standin.url, "GOOGLE_API_KEY": API_KEY}
    run_workflow(tmp_path, env)
    results = tmp_path / "results"

    counts = assert_dataset_valid(results)
    assert all(counts[t] > 0 for t in ALL_TASKS)
    mcq = load(results / "step_4_output" / "mcq.json")
    assert mcq["metadata"]["license"] == "CC-BY-4.0" and mcq["metadata"]["description"].endswith("Test set.")
    assert {i["answer"] for i in mcq["items"]} <= set("ABCD")
    tl = load(results / "step_4_output" / "temporal_localization.json")
    assert all(set(json.loads(i["answer"])) == {"start", "end"} for i in tl["items"])

    summary = load(results / "summary.json")
    by_rel = {v["path"].split("/videos/")[1]: v for v in summary["videos"]}
    assert by_rel["notes.mp4"]["status"] == "rejected" and "not a readable video" in by_rel["notes.mp4"]["reason"]
    assert by_rel["notes.mp4"]["calls"].get("0", 0) == 0
    assert {k for k, v in by_rel.items() if v["status"] == "annotated"} == {
        "a/clip.mp4", "b/clip.mp4", "b/big buck ü $x.mp4", "long.mp4"}
    assert len(summary["videos"]) == 5

    # one Files API upload per accepted video, reused by every call on it
    uploads = standin.calls("upload")
    assert sorted(u["sha256"] for u in uploads) == sorted(
        sha256(p) for p in (clip("bikes.mp4"), clip("bigbuckbunny.mp4"), clip("carphone_pristine.mp4"), long_video))
    gem = standin.calls("gemini")
    assert all(c["media_resolution"] == "MEDIA_RESOLUTION_LOW" for c in gem if c["media_sha"])
    long_calls = [c for c in gem if c["media_sha"] == sha256(long_video)]
    whole = [c for c in long_calls if not (c["video_metadata"] or {}).get("startOffset")]
    assert whole and all((c["video_metadata"] or {}).get("fps") == pytest.approx(0.5) for c in whole)
    assert len([c for c in long_calls if "10-second part" in c["prompt"]]) == 7

    # anomaly video: highlight captioned; normal videos: not applicable
    for vid_rec in summary["videos"]:
        if vid_rec["status"] != "annotated":
            continue
        s1c = load(results / "step_1c" / f"{vid_rec['video_id']}.json")
        s0 = load(results / "step_0" / f"{vid_rec['video_id']}.json")
        if s0["probe"]["sha256"] == sha256(clip("bikes.mp4")):
            assert s0["mode"] == "anomaly" and s1c["status"] == "done" and s1c["end"] - s1c["start"] >= 2
        else:
            assert s0["mode"] == "normal" and s1c["status"] == "not_applicable"

    # a rerun with nothing changed makes no call
    standin.reset()
    run_workflow(tmp_path, env)
    assert standin.calls() == []

    # editing the two mcq prompts costs one step-3 call per annotated video, then that video's
    # verification (its items are verified together: at most 4 calls), and rewrites mcq tasks only
    before = {t: (results / "step_4_output" / f"{t}.json").read_bytes() for t in ALL_TASKS}
    spec = (tmp_path / "spec.yaml").read_text(encoding="utf-8")
    spec = spec.replace("video_reasoning_annotation:\n", "video_reasoning_annotation:\n  prompts:\n"
                        "    anomaly_mcq: 'Ask about the anomaly in this {video_length} s video: {step_2_output}'\n"
                        "    normal_mcq: 'Ask about the activity in this {video_length} s video: {step_2_output}'\n", 1)
    (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    run_workflow(tmp_path, env)
    calls = standin.calls("gemini")
    written = [c for c in calls if c["prompt"].startswith("Ask about")]
    verified = [c for c in calls if c["prompt"].startswith(VERIFICATION)]
    assert len(written) == 4 and len(verified) <= 16 and len(written) + len(verified) == len(calls)
    assert standin.calls("upload") == []
    after = {t: (results / "step_4_output" / f"{t}.json").read_bytes() for t in ALL_TASKS}
    assert [t for t in ALL_TASKS if before[t] != after[t]] == ["mcq", "mcq_openended"]

    assert_no_secret(tmp_path)


def test_openai_backend_full_run(tmp_path, standin, long_video):
    videos = tmp_path / "videos"
    copy(clip("bikes.mp4"), videos / "bikes.mp4")
    copy(long_video, videos / "long.mp4")
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    block = {"backend": "openai", "openai": {"base_url": standin.url + "/v1", "model_name": "stand-in-vl"}}
    write_spec(tmp_path, {"vlm": block, "llm": block, "data": {"video_root": "videos"}})
    run_workflow(tmp_path, {"OPENAI_API_KEY": API_KEY})
    results = tmp_path / "results"
    counts = assert_dataset_valid(results)
    assert all(counts[t] > 0 for t in ALL_TASKS)
    calls = standin.calls("openai")
    long_whole = [c for c in calls if c["media"] and set(c["media"]) == {"image_url"}]
    assert long_whole and all(len(c["media"]) == 35 for c in long_whole)  # 70 s at 0.5 fps
    chunk_calls = [c for c in calls if "10-second part" in c["prompt"]]
    assert len(chunk_calls) == 7 and all(c["media"] == ["video_url"] for c in chunk_calls)
    assert_no_secret(tmp_path)


@pytest.mark.parametrize("vra, needle", [
    ({"data": {"video_root": "videos"}, "colour": 1}, "colour"),
    ({"data": {"video_root": "videos"}, "workflow": {"max_chunks": "ten"}}, "max_chunks"),
    ({"data": {"video_root": "videos"}, "workflow": {"qa_types": ["mcq", "essay"]}}, "essay"),
    ({"data": {"video_root": "videos"}, "workflow": {"chunk_duration_options": []}}, "chunk_duration_options"),
    ({"data": {"video_root": "videos"}, "workflow": {"long_video_max_frames": 0}}, "long_video_max_frames"),
    ({"data": {"video_root": "", "input_jsonl_files": []}}, "video_root"),
    ({"data": {"video_root": "videos"}, "vlm": {"backend": "claude"}}, "claude"),
    ({"data": {"video_root": "videos"}}, "GOOGLE_API_KEY"),
    ({"data": {"video_root": "videos"}, "prompts": {"anomaly_mcqq": "x"}}, "anomaly_mcqq"),
    ({"data": {"video_root": "videos"}, "prompts_module": "no_such_prompts_mod"}, "no_such_prompts_mod"),
    ({"data": {"video_root": "videos"}, "worklfow": {"max_chunks": 3}}, "did you mean 'workflow'"),
    ({"data": {"video_root": "videos"}, "workflow": {"steps": ["0", "5"]}}, "steps"),
    ({"data": {"video_root": "videos"}, "workflow": {"max_workers": 0}}, "max_workers"),
    ({"data": {"video_root": "videos"}, "workflow": {"long_video_sample_fps": 0}}, "long_video_sample_fps"),
    ({"data": {"video_root": "videos"}, "workflow": {"highlight_before_sec": -1}}, "highlight_before_sec"),
    ({"data": {"video_root": "videos"}, "workflow": {"max_video_length_sec": -5}}, "max_video_length_sec"),
    ({"data": {"video_root": "videos"}, "workflow": {"mode": "sometimes"}}, "sometimes"),
    ({"data": {"video_root": "no_such_folder"}}, "no_such_folder"),
    ({"data": {"video_root": "videos"}, "export": {"splits": {"train": 0.8, "val": 0.1}}}, "sum to 1"),
    ({"data": {"video_root": "videos"}, "export": {"splits": {"train/a": 0.5, "b": 0.5}}}, "train/a"),
    ({"data": {"video_root": "videos"}, "workflow": {"qa_types": ["mcq", "long_reasoning"]}},
     "raise max_video_length_sec"),
    ({"data": {"video_root": "videos"}, "long_video": {"clip_sec": 1}}, "clip_sec"),
    ({"data": {"video_root": "videos"}, "vlm": {"backend": "openai", "openai": {
        "base_url": "http://127.0.0.1:9/v1", "model_name": "m"}}}, "cannot connect to 127.0.0.1:9"),
    ({"data": {"video_root": "videos"}, "vlm": {"backend": "openai", "openai": {"base_url": "http://127.0.0.1:9/v1"}}},
     "model_name"),
])
def test_config_mistakes_stop_before_any_job(tmp_path, vra, needle):
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    write_spec(tmp_path, {"vlm": {"backend": "gemini"}, "llm": {"backend": "gemini"}, **vra}
               if "vlm" not in vra else {"llm": {"backend": "gemini"}, **vra})
    proc = run_workflow(tmp_path, {} if needle == "GOOGLE_API_KEY" else {"GOOGLE_API_KEY": "k"}, check=False)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_prompts_module_lacking_keys_names_them(tmp_path):
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    (tmp_path / "partial_prompts.py").write_text("PROMPT_TEMPLATES = {'video_filtering': 'Usable? Yes or No.'}\n")
    write_spec(tmp_path, {"data": {"video_root": "videos"}, "prompts_module": "partial_prompts"})
    proc = run_workflow(tmp_path, {"GOOGLE_API_KEY": "k", "PYTHONPATH": str(tmp_path)}, check=False)
    assert proc.returncode != 0
    assert "lacks the prompt keys" in proc.stderr + proc.stdout and "anomaly_mcq" in proc.stderr + proc.stdout


def test_tao_prompts_module_drop_in(tmp_path, standin):
    """A TAO prompts module (free-text answers in ===== blocks) runs end to end."""
    from video_reasoning.config import Settings
    from video_reasoning.prompts import PLACEHOLDERS, PROMPT_KEYS
    from video_reasoning.steps import required_prompt_keys as required_keys

    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    copy(clip("carphone_pristine.mp4"), tmp_path / "videos" / "carphone.mp4")
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    tao = Settings(prompts_module="my_tao_prompts")  # TAO's separate calls: its keys, not our combined ones
    templates = {k: f"[[{k}]] " + " ".join("{" + p + "}" for p in PLACEHOLDERS[k])
                 for k in required_keys(tao) if PROMPT_KEYS[k].tao}
    (tmp_path / "my_tao_prompts.py").write_text(f"PROMPT_TEMPLATES = {templates!r}\n")
    write_spec(tmp_path, {"data": {"video_root": "videos"}, "prompts_module": "my_tao_prompts"})
    run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url,
                            "PYTHONPATH": str(tmp_path)})
    counts = assert_dataset_valid(tmp_path / "results")
    assert all(counts[t] == 2 for t in ALL_TASKS), counts
    # TAO's keys answer in free text; our verification keys (TAO has none) in JSON
    for c in standin.calls("gemini"):
        assert (c.get("schema") is None) == (not c["prompt"].startswith(VERIFICATION)), c["prompt"][:80]
    tl = load(tmp_path / "results" / "step_4_output" / "temporal_localization.json")
    assert {json.loads(i["answer"])["end"] for i in tl["items"]} == {"00:03"}
    s0 = load(next((tmp_path / "results" / "step_0").glob("bikes-*.json")))
    assert s0["mode"] == "anomaly"
    # TAO's call pattern: filter and classification, global and dense caption, each a call
    assert [c["prompt_key"] for c in s0["calls"]] == ["video_filtering", "video_anomaly_classification"]
    s1a = load(next((tmp_path / "results" / "step_1a").glob("bikes-*.json")))
    assert sorted(c["prompt_key"] for c in s1a["calls"]) == ["anomaly_dense_caption", "anomaly_global_caption"]


def test_max_workers_caps_concurrent_calls_per_backend(tmp_path, standin):
    for i in range(6):  # distinct videos (distinct content), 3-4 s each
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bikes.mp4"), "-t", str(3 + 0.2 * i),
                        "-c", "copy", str(tmp_path / f"v{i}.mp4")], check=True)
    (tmp_path / "videos").mkdir()
    for f in tmp_path.glob("v*.mp4"):
        f.rename(tmp_path / "videos" / f.name)
    standin.latency = 0.3
    write_spec(tmp_path, {"data": {"video_root": "videos"},
                          "workflow": {"max_workers": 2, "chunk_duration_options": [1]}})
    run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}, args=("--cores", "8"))
    assert standin.max_in_flight == {"media": 2, "text": 2}


def test_steps_and_mode_select_work_and_backend_changes_rerun_their_work(tmp_path, standin):
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    (tmp_path / "videos" / "notes.mp4").write_text("not a video")
    vra = {"data": {"video_root": "videos"}, "workflow": {"mode": "anomaly", "steps": ["1a", "2", "3", "4"],
                                                          "qa_types": ["bcq", "temporal_localization"]}}
    write_spec(tmp_path, vra)
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    run_workflow(tmp_path, env)
    results = tmp_path / "results"
    prompts = [c["prompt"] for c in standin.calls("gemini")]
    assert not any(p.startswith(("Decide whether", "Watch the video")) for p in prompts)   # no step 0 calls
    assert not (results / "step_1b").exists() and not (results / "step_1c").exists()
    assert sorted(p.name for p in (results / "step_4_output").glob("*.json")) == [
        "bcq.json", "bcq_openended.json", "temporal_localization.json"]
    s0 = load(next((results / "step_0").glob("bikes-*.json")))
    assert s0["mode"] == "anomaly" and s0["calls"] == []
    status = {Path(v["path"]).name: v["status"] for v in load(results / "summary.json")["videos"]}
    assert status == {"bikes.mp4": "annotated", "notes.mp4": "rejected"}  # even without step 0 in steps
    # summary.json is a rule's output: a run rebuilds it when it is missing, at no cost
    summary = load(results / "summary.json")
    (results / "summary.json").unlink()
    standin.reset()
    run_workflow(tmp_path, env)
    again = load(results / "summary.json")
    assert standin.calls() == [] and again["cost"]["this_run"]["calls_sent"] == 0
    assert again["cost"]["all_runs"]["runs"] == 1  # runs that asked anything
    for s in (summary, again):  # all but what differs from run to run
        del s["cost"]["this_run"], s["cost"]["all_runs"]["runs"]
    assert again == summary
    # a new LLM temperature reruns the LLM's work only
    standin.reset()
    vra["llm"] = {"backend": "gemini", "gemini": {"temperature": 0.9}}
    write_spec(tmp_path, vra)
    run_workflow(tmp_path, env)
    calls = standin.calls("gemini")
    assert calls and all(c["media_sha"] is None for c in calls)
    steps = [c for c in calls if not c["prompt"].startswith(VERIFICATION)]
    assert len(steps) == 3  # description + two QA types
    assert len(calls) - len(steps) == 2  # and the LLM's two blind probes (the VLM's answers are cached)


def test_identical_text_prompts_of_two_videos_are_asked_for_each(tmp_path, standin):
    """Two different 4.0 s videos whose captions (and so whose description and QA prompts)
    come out identical still get their own description and QA calls, not each other's."""
    for src, name in (("bikes.mp4", "a.mp4"), ("carphone_pristine.mp4", "b.mp4")):
        (tmp_path / "videos").mkdir(exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip(src), "-t", "4", "-r", "25", "-an",
                        "-c:v", "libx264", "-preset", "ultrafast", str(tmp_path / "videos" / name)], check=True)
    write_spec(tmp_path, {"data": {"video_root": "videos"},
                          "workflow": {"mode": "normal", "steps": ["1a", "2", "3", "4"], "qa_types": ["bcq"]}})
    run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url})
    text = [c["prompt"] for c in standin.calls("gemini")
            if c["media_sha"] is None and not c["prompt"].startswith(VERIFICATION)]
    assert len(text) == 4 and len(set(text)) == 2  # same two prompts, asked once per video


def test_export_media_root_modes_make_a_movable_dataset(tmp_path, standin):
    """absolute (TAO's), relative, copy and link: each DAFT-valid with its media found by
    path; switching modes makes no model call; copy and link make the results folder
    self-contained: moved elsewhere, it is still valid."""
    copy(clip("bikes.mp4"), tmp_path / "videos" / "a" / "bikes.mp4")
    copy(clip("carphone_pristine.mp4"), tmp_path / "videos" / "carphone.mp4")
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    tasks = ["bcq", "bcq_openended"]
    for mode in ("absolute", "relative", "copy", "link"):
        write_spec(tmp_path, {"data": {"video_root": "videos"}, "workflow": {"qa_types": ["bcq"]},
                              "export": {"media_root": mode}})
        if mode != "absolute":
            standin.reset()
        run_workflow(tmp_path, env)
        assert mode == "absolute" or standin.calls() == []
        results = tmp_path / "results"
        assert assert_dataset_valid(results, tasks)["bcq"] > 0
        root = load(results / "step_4_output" / "bcq.json")["media_root"]
        assert Path(root).is_absolute() == (mode == "absolute")
        if mode in ("copy", "link"):
            assert root == "../media"
            staged = results / "media" / "a" / "bikes.mp4"
            same_file = staged.stat().st_ino == (tmp_path / "videos" / "a" / "bikes.mp4").stat().st_ino
            assert same_file == (mode == "link")
            moved = tmp_path / "elsewhere" / mode
            shutil.copytree(results, moved, symlinks=True)
            assert assert_dataset_valid(moved, tasks)["bcq"] > 0

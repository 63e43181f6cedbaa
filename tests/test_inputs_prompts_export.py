"""Discovery and ids, the prompt set, TAO free-text parsing, and step-4 items."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter

import pytest

from support import clip, copy
from video_reasoning.config import ConfigError, DataSettings, Settings
from video_reasoning.export import envelope, items_for, split_of, validate_with_daft
from video_reasoning.inputs import discover, media_root_for, video_id_for
from video_reasoning.models import ClassificationAnswer, MCQAnswer, parse_tao
from video_reasoning.prompts import (
    DEFAULT_PROMPTS,
    PLACEHOLDERS,
    PROMPT_KEYS,
    model_for_key,
    placeholders_in,
)
from video_reasoning.qa_types import permute_options
from video_reasoning.records import SelectedItem, SelectionRecord, Status
from video_reasoning.steps import prompt_set, required_prompt_keys


def test_ids_stable_safe_and_unique(tmp_path):
    a = copy(clip("bikes.mp4"), tmp_path / "x" / "clip.mp4")
    b = copy(clip("bikes.mp4"), tmp_path / "y" / "clip.mp4")
    c = copy(clip("bikes.mp4"), tmp_path / "y" / "Straße & \"quotes\" $HOME.mp4")
    ids = [video_id_for(str(p), str(tmp_path)) for p in (a, b, c)]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) for i in ids)
    assert ids[0] == video_id_for(str(a), str(tmp_path))  # stable
    assert ids[0].startswith("x__clip-")


def test_discover_merges_dedups_and_reports(tmp_path):
    root = tmp_path / "videos"
    a = copy(clip("bikes.mp4"), root / "a.mp4")
    copy(clip("bigbuckbunny.mp4"), root / "sub" / "b.MOV")
    (root / "readme.txt").write_text("not listed")
    (tmp_path / "link.mp4").symlink_to(a)
    outside = copy(clip("carphone_pristine.mp4"), tmp_path / "other" / "c.mp4")
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"video_path": str(a), "keep": True}),               # same file as video_root's
        json.dumps({"video": str(tmp_path / "link.mp4"), "keep": True}),  # same file through a symlink
        json.dumps({"video_path": str(outside), "keep": True, "extra": 1}),
        json.dumps({"video_path": str(tmp_path / "skipped.mp4"), "keep": False}),
        json.dumps({"keep": True}),                                      # no path
        "{not json",                                                     # malformed, line 6
    ]) + "\n")
    entries = discover(DataSettings(video_root=str(root), input_jsonl_files=(str(jsonl),), filter_field="keep"))
    paths = [e.path for e in entries if e.path]
    assert sorted(os.path.basename(p) for p in paths) == ["a.mp4", "b.MOV", "c.mp4"]
    problems = sorted(e.problem for e in entries if e.problem)
    assert len(problems) == 2
    assert any(f"{jsonl}:5" in p and "video_path" in p for p in problems)
    assert any(f"{jsonl}:6" in p and "not valid JSON" in p for p in problems)
    assert media_root_for(entries, str(root)) == str(tmp_path)


def test_default_prompts_cover_tao_keys_with_tao_placeholders():
    assert set(DEFAULT_PROMPTS) == set(PLACEHOLDERS)
    for key, text in DEFAULT_PROMPTS.items():
        assert placeholders_in(text) <= set(PLACEHOLDERS[key]), key
        model_for_key(key)  # every key has an answer model


def test_prompt_overrides_and_errors():
    s = Settings(prompts={"anomaly_mcq": "Ask about {step_2_output}"})
    ps = prompt_set(s)
    assert ps.render("anomaly_mcq", step_2_output="X", video_length="3") == "Ask about X"
    assert not ps.tao_keys
    with pytest.raises(ConfigError, match="anomaly_mcqq"):
        prompt_set(Settings(prompts={"anomaly_mcqq": "x"}))
    with pytest.raises(ConfigError, match="colour"):
        prompt_set(Settings(prompts={"anomaly_mcq": "x {colour}"}))
    # a template without placeholders is sent as is, braces included
    raw = prompt_set(Settings(prompts={"video_filtering": 'Answer {"ok": true}'})).render("video_filtering")
    assert raw == 'Answer {"ok": true}'


def test_prompts_module_drop_in(tmp_path, monkeypatch):
    mod = tmp_path / "my_tao_prompts.py"
    # TAO's keys (with a module, steps 0 and 1a make TAO's separate calls); our verification keys are never asked
    keys = [k for k in required_prompt_keys(Settings(prompts_module="my_tao_prompts")) if PROMPT_KEYS[k].tao]
    assert "video_filtering" in keys and "video_screening" not in keys and "blind_probe" not in keys
    mod.write_text("PROMPT_TEMPLATES = {\n" + "".join(f"    {k!r}: 'custom {k}',\n" for k in keys) + "}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ps = prompt_set(Settings(prompts_module="my_tao_prompts"))
    assert ps.is_tao("normal_bcq") and ps.templates["normal_bcq"] == "custom normal_bcq"
    # TAO has no verification: its keys are not asked of the module and keep our JSON templates
    assert not ps.is_tao("blind_probe") and ps.templates["blind_probe"] == DEFAULT_PROMPTS["blind_probe"]
    partial = tmp_path / "partial_prompts.py"
    partial.write_text("PROMPT_TEMPLATES = {'video_filtering': 'x'}\n")
    with pytest.raises(ConfigError, match="lacks the prompt keys.*anomaly_mcq"):
        prompt_set(Settings(prompts_module="partial_prompts"))


def test_parse_tao_blocks():
    mcq = ("=====\nMultiple-Choice Question: What hits the shelf?\nA. A forklift\nB. A cart\nC. A person\n"
           "D. A drone\n======\nAnswer: A\n=====\nReasoning: The forklift turns and hits it.")
    parsed = MCQAnswer.model_validate(parse_tao(model_for_key("anomaly_mcq"), mcq))
    assert parsed.items[0].options[0] == "A forklift" and parsed.items[0].correct_option == "A"
    tl = "Question: When does it fall?\n=====\nAnswer: Start_Time: 00:03, End_Time: 00:07\n=====\nReasoning: r"
    item = parse_tao(model_for_key("normal_temporal_localization"), tl)["items"][0]
    assert (item["start_sec"], item["end_sec"]) == (3.0, 7.0)
    bcq = "Question: Is it raining?\n=====\nAnswer: No, the road is dry.\n=====\nReasoning: dry road"
    assert parse_tao(model_for_key("normal_bcq"), bcq)["items"][0]["answer"] == "No"
    assert parse_tao(ClassificationAnswer, "I see cars.\nAnomaly")["label"] == "anomaly"
    with pytest.raises(ValueError):
        parse_tao(MCQAnswer, "no blocks here")


def test_mcq_permutation_spreads_letters_and_keeps_answer():
    letters = Counter()
    for i in range(400):
        opts = [f"right {i}", "w1", "w2", "w3"]
        new, k = permute_options(opts, 0, f"video{i}\nquestion")
        assert new[k] == f"right {i}" and sorted(new) == sorted(opts)
        letters["ABCD"[k]] += 1
    assert set(letters) == set("ABCD") and min(letters.values()) > 60
    assert permute_options(["a", "b", "c", "d"], 2, "seed") == permute_options(["a", "b", "c", "d"], 2, "seed")


def test_items_and_envelope_are_daft_valid(tmp_path):
    video = copy(clip("bikes.mp4"), tmp_path / "media" / "v.mp4")
    def kept(qa_type, item):
        return SelectionRecord(status=Status.DONE, qa_type=qa_type, policy="drop", kept=[
            SelectedItem(qa_type=qa_type, index=0, item=item, vid="v-1", path=str(video), sha256="0" * 64)])

    out = items_for(kept("mcq", {"question": "What?", "options": ["a", "b", "c", "d"], "correct_option": "B",
                                 "reasoning": "r"}), str(video.parent))
    assert out["mcq"][0]["answer"] in "ABCD" and out["mcq"][0]["video_id"] == "v.mp4"
    assert out["mcq_openended"][0]["answer"].endswith(". b")
    tl = items_for(kept("temporal_localization", {"question": "When?", "start_sec": 3, "end_sec": 67,
                                                  "reasoning": "r"}), str(video.parent))
    assert json.loads(tl["temporal_localization"][0]["answer"]) == {"start": "00:03", "end": "01:07"}
    path = tmp_path / "out" / "mcq.json"
    path.parent.mkdir()
    path.write_text(json.dumps(envelope("mcq", out["mcq"], str(video.parent), "", "")))
    assert validate_with_daft(str(path)) == []
    bad = envelope("mcq", [{**out["mcq"][0], "video_id": "missing.mp4"}], str(video.parent), "", "")
    path.write_text(json.dumps(bad))
    assert any("media not found" in e for e in validate_with_daft(str(path)))


def test_split_of_follows_the_shares_and_ignores_key_order():
    shares = {"train": 0.8, "val": 0.1, "test": 0.1}
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)]
    got = [split_of(h, shares) for h in hashes]
    for name, share in shares.items():
        assert abs(got.count(name) / len(got) - share) < 0.01, name
    reordered = {"test": 0.1, "train": 0.8, "val": 0.1}
    assert [split_of(h, reordered) for h in hashes] == got  # the spec's key order does not matter
    assert split_of("f" * 64, shares) == "val" and split_of("0" * 64, shares) == "test"  # the range ends

"""What a run costs: accounting against what the stand-in received, prices, the estimate
before any call, the budget, and the combined whole-video calls (issue: cost)."""

from __future__ import annotations

import pytest

from support import API_KEY, all_tasks, assert_dataset_valid, clip, copy, load, run_workflow, sha256, write_spec

#: A price table for the stand-in's Gemini model (USD per 1M tokens).
PRICE = {"input": 1.0, "cached_input": 0.1, "output": 2.0}
MODEL = "gemini-3.1-flash-lite-preview"


def _videos(tmp_path):
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    copy(clip("carphone_pristine.mp4"), tmp_path / "videos" / "carphone.mp4")
    (tmp_path / "videos" / "notes.mp4").write_text("not a video")


def _received(standin) -> dict:
    """What the stand-in received and reported: model calls, tokens, and their USD at PRICE."""
    calls = standin.calls("gemini")
    u = [c["usage"] for c in calls]
    t_in = sum(x["promptTokenCount"] for x in u)
    cached = sum(x["cachedContentTokenCount"] for x in u)
    out = sum(x["candidatesTokenCount"] for x in u)
    usd = ((t_in - cached) * PRICE["input"] + cached * PRICE["cached_input"] + out * PRICE["output"]) / 1e6
    return {"attempts": len(calls), "input_tokens": t_in, "cached_input_tokens": cached, "output_tokens": out,
            "cost_usd": usd}


def _check_run(cost: dict, got: dict) -> None:
    for k in ("attempts", "input_tokens", "cached_input_tokens", "output_tokens"):
        assert cost[k] == got[k], (k, cost[k], got[k])
    assert cost["cost_usd"] == pytest.approx(got["cost_usd"], abs=1e-5)


def test_accounting_counts_what_was_sent_and_what_came_from_the_cache(tmp_path, standin):
    _videos(tmp_path)
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    spec = {"data": {"video_root": "videos"}, "pricing": {MODEL: PRICE}}
    write_spec(tmp_path, spec)
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    proc = run_workflow(tmp_path, env)
    results = tmp_path / "results"
    s = load(results / "summary.json")
    cost, got = s["cost"], _received(standin)
    _check_run(cost["this_run"], got)
    assert cost["this_run"]["calls_from_cache"] == 0 and got["cached_input_tokens"] > 0  # the provider's own cache
    assert cost["this_run"]["calls_sent"] == cost["dataset"]["answers"]  # no re-ask with the good stand-in
    assert sum(t["calls_sent"] for t in cost["this_run"]["by_step"].values()) == cost["this_run"]["calls_sent"]
    assert cost["all_runs"]["runs"] == 1 and cost["all_runs"]["cost_usd"] == cost["this_run"]["cost_usd"]
    per_video = sum(v for e in s["videos"] for v in e["cost_usd"].values())
    assert per_video == pytest.approx(got["cost_usd"], abs=1e-5)
    kept = sum(s["tasks"].values())
    assert cost["dataset"]["kept_items"] == kept > 0
    assert cost["dataset"]["cost_per_kept_item_usd"] == pytest.approx(got["cost_usd"] / kept, abs=1e-6)
    assert cost["prices"] == {MODEL: PRICE}
    assert f"this run: {got['attempts']} calls sent" in proc.stderr  # the run's last line
    first = cost["this_run"]

    # a rerun of every job: every answer from the response cache, nothing sent
    standin.reset()
    run_workflow(tmp_path, env, args=("--forceall",))
    cost = load(results / "summary.json")["cost"]
    assert standin.calls() == [] and cost["this_run"]["calls_sent"] == cost["this_run"]["attempts"] == 0
    assert cost["this_run"]["calls_from_cache"] == first["calls_sent"] and cost["this_run"]["cost_usd"] == 0
    assert cost["all_runs"]["runs"] == 2 and cost["all_runs"]["cost_usd"] == pytest.approx(first["cost_usd"])

    # a prompt edit: only the edited calls are sent, and counted
    standin.reset()
    spec["prompts"] = {k: "Write {num_items} multiple-choice questions (edited). {step_2_output}"
                       for k in ("anomaly_mcq", "normal_mcq")}
    write_spec(tmp_path, spec)
    run_workflow(tmp_path, env)
    cost, got = load(results / "summary.json")["cost"], _received(standin)
    _check_run(cost["this_run"], got)
    sent = {k for k, v in cost["this_run"]["by_step"].items() if v["calls_sent"]}
    assert sent == {"3", "verify"} and cost["this_run"]["by_step"]["2"]["calls_from_cache"] == 2
    assert cost["this_run"]["by_step"]["3"]["calls_sent"] == 2  # one mcq call per annotated video
    assert cost["all_runs"]["attempts"] == first["attempts"] + got["attempts"]
    assert_dataset_valid(results)


def test_unknown_price_is_unknown_never_zero(tmp_path, standin):
    copy(clip("bikes.mp4"), tmp_path / "videos" / "bikes.mp4")
    block = {"backend": "openai", "openai": {"base_url": standin.url + "/v1", "model_name": "m"}}
    write_spec(tmp_path, {"vlm": block, "llm": block, "data": {"video_root": "videos"},
                          "workflow": {"qa_types": ["mcq"]}})
    proc = run_workflow(tmp_path, {"OPENAI_API_KEY": API_KEY})
    s = load(tmp_path / "results" / "summary.json")
    cost = s["cost"]
    assert cost["prices"] == {"m": "unknown"}
    assert cost["this_run"]["cost_usd"] == cost["all_runs"]["cost_usd"] == "unknown"
    assert cost["dataset"]["cost_usd"] == cost["dataset"]["cost_per_kept_item_usd"] == "unknown"
    assert set(s["videos"][0]["cost_usd"].values()) == {"unknown"}
    assert cost["this_run"]["input_tokens"] > 0 and "cost unknown" in proc.stderr
    # a budget needs every model's price: an error naming the key to add, before any call
    standin.reset()
    write_spec(tmp_path, {"vlm": block, "llm": block, "data": {"video_root": "videos"},
                          "workflow": {"max_cost_usd": 5}})
    proc = run_workflow(tmp_path, {"OPENAI_API_KEY": API_KEY}, check=False)
    assert proc.returncode != 0 and "video_reasoning_annotation.pricing.m" in proc.stderr
    assert standin.calls("openai") == []


def test_estimate_needs_no_server_and_plans_the_calls_made(tmp_path, standin):
    _videos(tmp_path)
    copy(clip("bikes.mp4"), tmp_path / "videos" / "copy_of_bikes.mp4")  # an exact duplicate: no call
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    write_spec(tmp_path, {"data": {"video_root": "videos"}})
    results = tmp_path / "results"
    # no key, nothing listening: the estimate needs neither
    proc = run_workflow(tmp_path, {"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"}, args=("--cores", "1", "estimate"))
    est = load(results / "estimate.json")
    assert "calls:" in proc.stderr and "cost:" in proc.stderr
    assert est["videos"] == {**est["videos"], "total": 4, "accepted": 2, "rejected": 1, "duplicates": 1}
    assert est["videos"]["rejected_videos"][0]["path"].endswith("notes.mp4")
    assert not (results / "step_0").exists() and not (results / "summary.json").exists()
    usd = est["cost_usd"]
    assert isinstance(usd["expected"], float) and usd["upper_bound"] > usd["expected"] > 0
    assert est["media"]["frames"] > 0 and set(est["wall_time_s"]["by_latency_s"]) == {"1", "5", "10", "30"}
    # step 0, step 1a, the chunks and the grounded re-answer each show the whole video once
    assert est["media"]["passes_per_video"] == pytest.approx(4.0, abs=0.05)

    run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url})
    made = {k: v["calls_sent"] for k, v in load(results / "summary.json")["cost"]["this_run"]["by_step"].items()}
    made["total"] = sum(made.values())
    assert made["total"] == len(standin.calls("gemini"))  # no re-ask: calls made = requests received
    # auto mode: expected counts bikes as normal (no step 1c), the upper bound as an anomaly
    assert est["calls"]["expected"] == {k: v for k, v in made.items() if k != "1c"} | {
        "total": made["total"] - made["1c"]}
    assert est["calls"]["upper_bound"]["total"] >= made["total"]
    # once step 0 has run, the estimate uses its labels: exactly the calls made
    run_workflow(tmp_path, {"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"}, args=("--cores", "1", "estimate"))
    assert load(results / "estimate.json")["calls"]["expected"] == made


def test_budget_stops_new_calls_and_a_higher_budget_resumes(tmp_path, standin):
    _videos(tmp_path)
    price = {"input": 20.0, "cached_input": 2.0, "output": 40.0}  # a few cents a call
    spec = {"data": {"video_root": "videos"}, "pricing": {MODEL: price}, "workflow": {"max_cost_usd": 0.2}}
    write_spec(tmp_path, spec)
    env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url}
    proc = run_workflow(tmp_path, env, check=False)
    results = tmp_path / "results"
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "budget of $0.20 reached after $" in last and "Raise workflow.max_cost_usd" in last
    s = load(results / "summary.json")
    assert s["cost"]["budget"]["reached"] and s["cost"]["budget"]["spent_usd"] >= 0.2
    first = [c for c in standin.calls("gemini")]
    # no call started after the budget was reached: at most the calls then in flight (4 per backend) overshoot
    assert s["cost"]["this_run"]["attempts"] == len(first)
    assert s["totals"]["failed"] == 2 and "budget of $0.20 reached" in str(s["videos"])

    standin.reset()
    spec["workflow"]["max_cost_usd"] = 1000
    write_spec(tmp_path, spec)
    run_workflow(tmp_path, env)
    second = standin.calls("gemini")
    s = load(results / "summary.json")
    assert s["totals"]["annotated"] == 2 and not s["cost"]["budget"]["reached"]
    asked = {(c["prompt"], c["media_sha"], str(c["video_metadata"])) for c in first}
    again = [c for c in second if (c["prompt"], c["media_sha"], str(c["video_metadata"])) in asked]
    assert again == []  # nothing answered before is paid twice
    assert s["cost"]["all_runs"]["attempts"] == len(first) + len(second)
    assert_dataset_valid(results)


def test_our_prompts_show_each_video_whole_twice_before_verification(tmp_path, standin):
    """Step 0 (suitability + label) and step 1a (global + dense caption) are one call each,
    the video first and byte-identical, the second one right after the first (so the
    providers' implicit prefix cache can serve it); each step keeps its own record."""
    _videos(tmp_path)
    standin.labels = {sha256(clip("bikes.mp4")): "anomaly"}
    write_spec(tmp_path, {"data": {"video_root": "videos"}})
    run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": standin.url})
    results = tmp_path / "results"
    s0 = load(next((results / "step_0").glob("bikes-*.json")))
    s1a = load(next((results / "step_1a").glob("bikes-*.json")))
    assert [c["prompt_key"] for c in s0["calls"]] == ["video_screening"] and s0["mode"] == "anomaly"
    assert s0["filter"]["suitable"] and s0["classification"]["label"] == "anomaly"
    assert [c["prompt_key"] for c in s1a["calls"]] == ["anomaly_captions"]
    assert s1a["global_caption"] and s1a["dense_events"]
    whole = [c for c in standin.calls("gemini") if c["media_sha"] == sha256(clip("bikes.mp4"))
             and not c["video_metadata"]]
    assert len(whole) == 3  # step 0, step 1a, the grounded re-answer
    assert whole[1]["media_cached"]  # step 1a's video was in the (emulated) prefix cache
    assert s1a["calls"][0]["cached_input_tokens"] > 0
    assert assert_dataset_valid(results, all_tasks())

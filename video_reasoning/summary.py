"""``summary.json``: what became of every video, read from the step records on disk."""

from __future__ import annotations

import json

from video_reasoning.config import Settings
from video_reasoning.costs import prices
from video_reasoning.export import split_of, video_hash
from video_reasoning.ledger import Ledger, budget_message, run_id, summarize
from video_reasoning.qa_types import all_tasks
from video_reasoning.quality import quality, write_rejected_items
from video_reasoning.records import Status, read_record
from video_reasoning.steps import STEPS, cache_path, duplicates_path, roles_in_use, step_path, summary_path, task_path
from video_reasoning.store import atomic_write_json, read_json

#: Per-video outcomes, in the order ``totals`` lists them.
OUTCOMES = ("annotated", "rejected", "duplicate", "unsuitable", "blocked", "failed", "pending")


def _video_records(results_dir: str, vid: str, steps: list[str], qa_types: list[str]) -> list[tuple[str, object]]:
    """``(step, record or None)`` of every record the run writes for ``vid`` (step 3 once
    per QA type); step 0's record (the probe) is written whichever steps run."""
    out = []
    for name, step in STEPS.items():
        if name != "0" and name not in steps:
            continue
        for q in (qa_types if step.per_qa_type else (None,)):
            out.append((name, read_record(step_path(results_dir, name, vid, q), step.record)))
    return out


def _usd(value) -> float | str:
    """A USD figure as written: rounded to 1e-6, or ``"unknown"`` (a model without a price)."""
    return "unknown" if value is None else round(value, 6)


def video_entry(results_dir: str, vid: str, path: str, source: str, steps: list[str], qa_types: list[str]) -> dict:
    """One video's summary: ``status`` (one of :data:`OUTCOMES`) with ``reason`` or
    ``error``; per step, the model answers its records hold (``calls``), their ``tokens``
    (input, cached_input, output; all attempts) and ``cost_usd`` (what they cost when first
    asked, ``"unknown"`` without a price); ``items`` per QA type."""
    entry = {"video_id": vid, "path": path, "source": source, "calls": {}, "tokens": {}, "cost_usd": {},
             "items": {}}
    records = _video_records(results_dir, vid, steps, qa_types)
    costs: dict[str, float | None] = {}
    for name, rec in records:
        if rec is None:
            continue
        entry["calls"][name] = entry["calls"].get(name, 0) + len(rec.calls)
        tok = entry["tokens"].setdefault(name, {"input": 0, "cached_input": 0, "output": 0})
        tok["input"] += sum(c.input_tokens for c in rec.calls)
        tok["cached_input"] += sum(c.cached_input_tokens for c in rec.calls)
        tok["output"] += sum(c.output_tokens for c in rec.calls)
        for c in rec.calls:
            known = costs.get(name, 0.0)
            costs[name] = None if known is None or c.cost_usd is None else known + c.cost_usd
        if name == "3" and rec.status is Status.DONE:
            entry["items"][rec.qa_type] = len(rec.items)
    entry["cost_usd"] = {name: _usd(v) for name, v in costs.items()}
    present = [r for _, r in records if r is not None]
    errors = list(dict.fromkeys(r.reason for r in present if r.status is Status.FAILED))
    s0 = records[0][1]
    blocked = [r.reason for r in present if r.status is Status.BLOCKED]
    if errors:
        entry["status"], entry["error"] = "failed", errors[0] if len(errors) == 1 else errors
    elif s0 is not None and s0.status in (Status.REJECTED, Status.DUPLICATE, Status.UNSUITABLE, Status.BLOCKED):
        entry["status"], entry["reason"] = s0.status.value, s0.reason
    elif blocked:
        entry["status"], entry["reason"] = "blocked", blocked[0]
    elif len(present) == len(records):
        entry["status"] = "annotated"
    else:
        entry["status"] = "pending"
    return entry


def cost_section(results_dir: str, settings: Settings, answers: dict, kept_items: int) -> dict:
    """The ``cost`` section of ``summary.json``.

    ``this_run`` and ``all_runs`` come from the cost ledger (:func:`video_reasoning.ledger.summarize`):
    calls sent (answered by the backend) and served from the response cache, attempts,
    tokens and USD, in total and ``by_step``. ``dataset`` is what the answers behind the
    current records cost when first asked (``answers``), with the dataset's ``kept_items``
    and ``cost_per_kept_item_usd`` (all runs' USD over the items in step_4_output).
    ``prices`` are those of the models in use (USD per 1M tokens, ``"unknown"`` when the
    table has none); ``budget`` is there when ``workflow.max_cost_usd`` is set. A USD figure
    that includes an unpriced attempt is ``"unknown"``.
    """
    led = Ledger(cache_path(results_dir))
    cost = summarize(led, run_id())
    for part in ("this_run", "all_runs"):
        t = cost[part]
        t["cost_usd"] = "unknown" if t.pop("unpriced_attempts") else round(t["cost_usd"], 6)
        for step in t["by_step"].values():
            step["cost_usd"] = "unknown" if step.pop("unpriced_attempts") else round(step["cost_usd"], 6)
    paid, behind = cost["all_runs"]["cost_usd"], answers["cost_usd"]
    per_item = None if not kept_items else "unknown" if paid == "unknown" else round(paid / kept_items, 6)
    cost["dataset"] = {**answers, "cost_usd": behind if behind == "unknown" else round(behind, 6),
                       "kept_items": kept_items, "cost_per_kept_item_usd": per_item}
    table = prices(settings)
    models = {getattr(settings, r).model for r in roles_in_use(settings)}
    cost["prices"] = {m: table[m].model_dump() if m in table else "unknown" for m in sorted(models)}
    budget = settings.workflow.max_cost_usd
    if budget is not None:
        spent = led.spent_usd()
        cost["budget"] = {"max_cost_usd": budget, "spent_usd": round(spent, 6), "reached": spent >= budget,
                          **({"message": budget_message(budget, spent)} if spent >= budget else {})}
    return cost


def cost_line(results_dir: str) -> str:
    """One line on what this run sent, took from the cache and cost, and all runs' cost."""
    cost = summarize(Ledger(cache_path(results_dir)), run_id())
    this, every = cost["this_run"], cost["all_runs"]

    def usd(t):
        return "cost unknown (a model has no price)" if t["unpriced_attempts"] else f"${t['cost_usd']:.4f}"

    return (f"this run: {this['calls_sent']} calls sent ({this['attempts']} attempts), {this['calls_from_cache']} "
            f"answered from the cache, {this['input_tokens']:,} input tokens ({this['cached_input_tokens']:,} "
            f"cached by the provider), {this['output_tokens']:,} output tokens, {usd(this)}; all runs "
            f"({every['runs']} that called a model): {usd(every)}")


def write_summary(results_dir: str, videos: list[tuple[str, str, str]], qa_types: list[str], steps: list[str],
                  settings: Settings, log_file: str | None = None, media_root: str | None = None) -> dict:
    """Write ``<results_dir>/summary.json`` from the step records, task files and cost
    ledger on disk (and its totals and :func:`cost_line` to ``log_file``), and
    ``quality/rejected_items.jsonl`` (empty when step 4 does not run).

    ``videos`` are ``(video_id, path, source)``. Returns the summary: ``totals`` (videos
    per outcome, items per QA type as step 3 wrote them), ``cost`` (:func:`cost_section`),
    ``tasks`` (items per task, all splits), ``splits`` (with ``export.splits``: videos,
    items and items per task of each split; annotated videos get their ``split``), ``quality`` (when step 4 ran:
    :func:`video_reasoning.quality.quality`, with ``rejected_items``: lines written) and
    ``videos`` (one :func:`video_entry` each).
    """
    totals = {"videos": len(videos), **{o: 0 for o in OUTCOMES}, "near_duplicates": 0, "items": {}}
    answers = {"answers": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    per_video = []
    dups = read_json(duplicates_path(results_dir)) or {}
    for vid, path, source in videos:
        entry = video_entry(results_dir, vid, path, source, steps, qa_types)
        if vid in dups:  # exact copies and near-duplicates, kept or skipped: each names its original
            entry["duplicate_of"] = dups[vid]
            totals["near_duplicates"] += dups[vid]["kind"] == "near"
        totals[entry["status"]] += 1
        answers["answers"] += sum(entry["calls"].values())
        for field in ("input", "cached_input", "output"):
            answers[f"{field}_tokens"] += sum(t[field] for t in entry["tokens"].values())
        for v in entry["cost_usd"].values():
            answers["cost_usd"] = "unknown" if "unknown" in (v, answers["cost_usd"]) else answers["cost_usd"] + v
        for q, n in entry["items"].items():
            totals["items"][q] = totals["items"].get(q, 0) + n
        per_video.append(entry)
    splits = settings.export.splits
    tasks, per_split = {}, {s: {} for s in splits}
    for name in all_tasks(qa_types):
        for split in splits or [None]:
            data = read_json(task_path(results_dir, name, split))
            if isinstance(data, dict):
                tasks[name] = tasks.get(name, 0) + len(data.get("items", []))
                if split:
                    per_split[split][name] = len(data.get("items", []))
    summary = {"totals": totals, "cost": cost_section(results_dir, settings, answers, sum(tasks.values())),
               "tasks": tasks}
    if splits:
        for entry in per_video:
            s0 = read_record(step_path(results_dir, "0", entry["video_id"]), STEPS["0"].record)
            if entry["status"] == "annotated" and s0 is not None and s0.probe is not None:
                entry["split"] = split_of(video_hash(s0.probe.path, s0.probe.sha256), splits)
        summary["splits"] = {s: {"videos": sum(e.get("split") == s for e in per_video),
                                 "items": sum(per_split[s].values()), "tasks": per_split[s]} for s in splits}
    summary["videos"] = per_video
    rejected = write_rejected_items(results_dir, qa_types if "4" in steps else [], media_root)
    if "4" in steps:
        names = all_tasks(qa_types)
        summary["quality"] = {**quality(results_dir, [v for v, _, _ in videos], qa_types, names, list(splits)),
                              "rejected_items": rejected}
    atomic_write_json(summary_path(results_dir), summary)
    if log_file:
        with open(log_file, "w", encoding="utf-8") as fh:
            fh.write(f"{summary_path(results_dir)}: {json.dumps(totals)}\n{cost_line(results_dir)}\n")
    return summary


class FailedVideos(RuntimeError):
    """Videos failed in this run; the message names each with its error."""


def check_failures(summary_file: str, log_file: str) -> None:
    """Log the failed videos of ``summary_file`` to ``log_file`` and raise when there are any.

    Raises:
        FailedVideos: naming every failed video with its error, and saying that the next run
            retries them.
    """
    summary = read_json(summary_file)
    failed = [v for v in summary["videos"] if v["status"] == "failed"]
    lines = [f"{v['path'] or v['source']}: {v['error']}" for v in failed]
    with open(log_file, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n" if lines else "no video failed\n")
    if failed:
        raise FailedVideos(f"{len(failed)} of {len(summary['videos'])} videos failed (see {summary_file}); "
                           "the next run retries them:\n" + "\n".join(lines))


def run_outcome(summary_file: str) -> str:
    """The last line of a run that failed: how many videos failed and how to retry them
    (empty when the summary lists no failed video or does not exist)."""
    summary = read_json(summary_file)
    if not isinstance(summary, dict):
        return ""
    failed = [v for v in summary.get("videos", []) if v["status"] == "failed"]
    if not failed:
        return ""
    budget = summary.get("cost", {}).get("budget", {})
    if budget.get("reached"):
        return (f"{budget['message']} {len(failed)} of {len(summary['videos'])} videos are not finished; the "
                "dataset holds the others.")
    return (f"{len(failed)} of {len(summary['videos'])} videos failed (errors in {summary_file}); the dataset holds "
            "the others. Run the same command again to retry the failed videos.")

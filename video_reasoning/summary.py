"""``summary.json``: what became of every video, read from the step records on disk."""

from __future__ import annotations

import json

from video_reasoning.qa_types import all_tasks
from video_reasoning.quality import quality, write_rejected_items
from video_reasoning.records import Status, read_record
from video_reasoning.steps import STEPS, duplicates_path, step_path, summary_path, task_path
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


def video_entry(results_dir: str, vid: str, path: str, source: str, steps: list[str], qa_types: list[str]) -> dict:
    """One video's summary: ``status`` (one of :data:`OUTCOMES`) with ``reason`` or
    ``error``, model ``calls`` and ``tokens`` (input/output) per step, ``items`` per QA type."""
    entry = {"video_id": vid, "path": path, "source": source, "calls": {}, "tokens": {}, "items": {}}
    records = _video_records(results_dir, vid, steps, qa_types)
    for name, rec in records:
        if rec is None:
            continue
        entry["calls"][name] = entry["calls"].get(name, 0) + len(rec.calls)
        tok = entry["tokens"].setdefault(name, {"input": 0, "output": 0})
        tok["input"] += sum(c.input_tokens for c in rec.calls)
        tok["output"] += sum(c.output_tokens for c in rec.calls)
        if name == "3" and rec.status is Status.DONE:
            entry["items"][rec.qa_type] = len(rec.items)
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


def write_summary(results_dir: str, videos: list[tuple[str, str, str]], qa_types: list[str], steps: list[str],
                  log_file: str | None = None, media_root: str | None = None) -> dict:
    """Write ``<results_dir>/summary.json`` from the step records and task files on disk
    (and its totals to ``log_file``), and ``quality/rejected_items.jsonl`` (empty when step 4
    does not run).

    ``videos`` are ``(video_id, path, source)``. Returns the summary: ``totals`` (videos
    per outcome, calls, input/output tokens, items per QA type as step 3 wrote them),
    ``tasks`` (items per task file written), ``quality`` (when step 4 ran:
    :func:`video_reasoning.quality.quality`, with ``rejected_items``: lines written) and
    ``videos`` (one :func:`video_entry` each).
    """
    totals = {"videos": len(videos), **{o: 0 for o in OUTCOMES}, "near_duplicates": 0, "calls": 0,
              "input_tokens": 0, "output_tokens": 0, "items": {}}
    per_video = []
    dups = read_json(duplicates_path(results_dir)) or {}
    for vid, path, source in videos:
        entry = video_entry(results_dir, vid, path, source, steps, qa_types)
        if vid in dups:  # exact copies and near-duplicates, kept or skipped: each names its original
            entry["duplicate_of"] = dups[vid]
            totals["near_duplicates"] += dups[vid]["kind"] == "near"
        totals[entry["status"]] += 1
        totals["calls"] += sum(entry["calls"].values())
        totals["input_tokens"] += sum(t["input"] for t in entry["tokens"].values())
        totals["output_tokens"] += sum(t["output"] for t in entry["tokens"].values())
        for q, n in entry["items"].items():
            totals["items"][q] = totals["items"].get(q, 0) + n
        per_video.append(entry)
    tasks = {}
    for name in all_tasks(qa_types):
        data = read_json(task_path(results_dir, name))
        if isinstance(data, dict):
            tasks[name] = len(data.get("items", []))
    summary = {"totals": totals, "tasks": tasks, "videos": per_video}
    rejected = write_rejected_items(results_dir, qa_types if "4" in steps else [], media_root)
    if "4" in steps:
        names = all_tasks(qa_types)
        summary["quality"] = {**quality(results_dir, [v for v, _, _ in videos], qa_types, names),
                              "rejected_items": rejected}
    atomic_write_json(summary_path(results_dir), summary)
    if log_file:
        with open(log_file, "w", encoding="utf-8") as fh:
            fh.write(f"{summary_path(results_dir)}: {json.dumps(totals)}\n")
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
    return (f"{len(failed)} of {len(summary['videos'])} videos failed (errors in {summary_file}); the dataset holds "
            "the others. Run the same command again to retry the failed videos.")

"""Progress of a run: one line per finished video, with the run's totals and an ETA.

When a run starts (Snakefile ``onstart``), :func:`start` writes how many videos it has to
finish; the last job of each video (:func:`video_reasoning.steps.last_job`) then calls
:func:`finished`, which counts the video under a lock, prints one line to the terminal
(stderr) and appends it to ``<results_dir>/logs/progress.log``::

    [12/100 videos] videos/bikes.mp4: annotated, 14 items kept, 17 calls, $0.0120 | run: 180 calls
    sent, $0.1400, 3m12s, ETA 23m40s   (one line)

The ETA assumes the remaining videos take as long on average as the finished ones.
"""

from __future__ import annotations

import os
import sys
import time

from video_reasoning.ledger import Ledger, run_id, summarize
from video_reasoning.records import Status, VerificationRecord, read_record
from video_reasoning.steps import VERIFY, cache_path, progress_log_path, step_path
from video_reasoning.store import atomic_write_json, locked, read_json


def _state_path(results_dir: str) -> str:
    return os.path.join(cache_path(results_dir), "progress", f"{run_id()}.json")


def start(results_dir: str, pending: int, total: int) -> None:
    """Note the start of this run: ``pending`` videos to finish (of ``total`` in the spec),
    the clock starting now. The progress log is started afresh."""
    atomic_write_json(_state_path(results_dir), {"started": time.time(), "pending": pending, "total": total,
                                                 "finished": []})
    os.makedirs(os.path.dirname(progress_log_path(results_dir)), exist_ok=True)
    with open(progress_log_path(results_dir), "w", encoding="utf-8"):
        pass


def shown(path: str) -> str:
    """A video's path as shown: relative to the working folder when under it."""
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m12s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def usd(value) -> str:
    """A USD figure as shown (``$0.0120``), or ``$?`` when unknown (a model without a price)."""
    return "$?" if value is None or value == "unknown" else f"${value:.4f}"


def video_line(name: str, status: str, detail: str, kept: int, calls: int, cost, done: int, pending: int | None,
               run_calls: int, run_cost, elapsed_s: float) -> str:
    """One video's progress line (see the module doc). ``pending``: videos this run has to
    finish (None: unknown, no count or ETA shown); ``elapsed_s``: seconds since the run
    started; ``cost``/``run_cost`` in USD (None or ``"unknown"``: not priced)."""
    count = f"[{done}/{pending} videos]" if pending else f"[{done} videos]"
    what = status if not detail else f"{status} ({detail[:120]})"
    run = f"run: {run_calls} calls sent, {usd(run_cost)}, {duration(elapsed_s)}"
    if pending and done < pending:
        run += f", ETA {duration(elapsed_s / done * (pending - done))}"
    elif pending:
        run += ", all videos done"
    return f"{count} {name}: {what}, {kept} items kept, {calls} calls, {usd(cost)} | {run}"


def kept_items(results_dir: str, vid: str, entry: dict) -> int:
    """Items of a video that passed verification (before the dataset-wide selection), or
    step 3's items when verification does not run."""
    rec = read_record(step_path(results_dir, VERIFY, vid), VerificationRecord)
    if rec is not None:
        return sum(not it.failed for it in rec.items) if rec.status is Status.DONE else 0
    return sum(entry["items"].values())


def finished(results_dir: str, vid: str, path: str, source: str, steps, qa_types) -> str:
    """Count ``vid`` as finished in this run and print and log its progress line; returns it.

    The video's status, calls and USD come from its records (:func:`video_reasoning.summary.video_entry`),
    the run's calls and USD from the cost ledger.
    """
    from video_reasoning.summary import video_entry

    entry = video_entry(results_dir, vid, path, source, list(steps), list(qa_types))
    run = summarize(Ledger(cache_path(results_dir)), run_id())["this_run"]
    costs = list(entry["cost_usd"].values())
    cost = None if "unknown" in costs else sum(costs)
    detail = str(entry.get("error") or entry.get("reason") or "")
    kept, calls = kept_items(results_dir, vid, entry), sum(entry["calls"].values())
    state_file = _state_path(results_dir)
    with locked(state_file + ".lock"):  # one count, and lines in the log in that order
        state = read_json(state_file) or {"started": None, "pending": None, "finished": []}
        if vid not in state["finished"]:
            state["finished"].append(vid)
            atomic_write_json(state_file, state)
        line = video_line(shown(path or source), entry["status"], detail, kept, calls, cost, len(state["finished"]),
                          state.get("pending"), run["calls_sent"],
                          None if run["unpriced_attempts"] else run["cost_usd"],
                          time.time() - (state.get("started") or time.time()))
        print(line, file=sys.stderr, flush=True)
        os.makedirs(os.path.dirname(progress_log_path(results_dir)), exist_ok=True)
        with open(progress_log_path(results_dir), "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return line

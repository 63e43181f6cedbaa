"""The cost ledger: every answer of every run of a results folder, sent or from the cache.

``<results_dir>/.cache/ledger/calls.jsonl`` gets one line per attempt sent to a backend
(its tokens and USD), and ``totals.json`` the tallies per run and step, both updated under
one ``flock`` by every job of every run (on a cluster: the shared filesystem's locks). The tallies
answer, cheaply and at any time: what this run sent and took from the response cache, what
all runs together cost, and whether ``workflow.max_cost_usd`` is reached (checked before
each attempt starts: no new call starts after that).

A run is named by ``VRA_RUN_ID``, which the Snakefile sets once per ``snakemake`` command
(job processes inherit it).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Optional

from video_reasoning.costs import Usage
from video_reasoning.retry import ModelCallError
from video_reasoning.store import atomic_write_json, locked, read_json

#: The environment variable naming the current run.
RUN_ENV = "VRA_RUN_ID"

#: Counters of one tally, in the order they are reported.
FIELDS = ("calls_sent", "calls_from_cache", "attempts", "input_tokens", "cached_input_tokens", "output_tokens",
          "cost_usd", "unpriced_attempts")


def run_id() -> str:
    """The current run's id (``VRA_RUN_ID``), set here when no Snakefile set it."""
    if not os.environ.get(RUN_ENV):
        os.environ[RUN_ENV] = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    return os.environ[RUN_ENV]


def blank() -> dict:
    """An empty tally (every counter of :data:`FIELDS` at 0)."""
    return {f: 0 for f in FIELDS}


def add_tally(into: dict, other: dict) -> dict:
    """``into`` plus ``other``, counter by counter (in place; returned)."""
    for f in FIELDS:
        into[f] = into.get(f, 0) + other.get(f, 0)
    return into


def _tally(data: dict, run: str, step: str) -> dict:
    """The tally of ``step`` of ``run`` in the ledger's ``data`` (created empty)."""
    entry = data["runs"].setdefault(run, {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": {}})
    return entry["steps"].setdefault(step, blank())


class BudgetReached(ModelCallError):
    """``workflow.max_cost_usd`` is reached: no new call starts."""


class Ledger:
    """The ledger of the results folder whose cache is ``cache_dir``."""

    def __init__(self, cache_dir: str):
        self.folder = os.path.join(cache_dir, "ledger")
        self.calls = os.path.join(self.folder, "calls.jsonl")
        self.totals_path = os.path.join(self.folder, "totals.json")

    def totals(self) -> dict:
        """``{"runs": {run id: {"started": ISO time, "steps": {step: tally}}}}`` (empty at first)."""
        data = read_json(self.totals_path)
        return data if isinstance(data, dict) and "runs" in data else {"runs": {}}

    def record(self, step: str, *, sent: bool, usage: Optional[Usage] = None, cost: Optional[float] = None,
               detail: Optional[dict] = None, count: int = 1) -> None:
        """Count one attempt sent (``sent``; with its ``usage`` and ``cost``, None when
        unpriced) or ``count`` answers served from the response cache, under ``step`` of this run."""
        run = run_id()
        with locked(os.path.join(self.folder, ".lock")):
            data = self.totals()
            t = _tally(data, run, step)
            if not sent:
                t["calls_from_cache"] += count
            else:
                usage = usage or Usage()
                t["attempts"] += 1
                t["input_tokens"] += usage.input
                t["cached_input_tokens"] += usage.cached_input
                t["output_tokens"] += usage.output
                if cost is None:
                    t["unpriced_attempts"] += 1
                else:
                    t["cost_usd"] += cost
                with open(self.calls, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"run": run, "step": step, "input_tokens": usage.input,
                                         "cached_input_tokens": usage.cached_input, "output_tokens": usage.output,
                                         "cost_usd": cost, **(detail or {})}) + "\n")
            atomic_write_json(self.totals_path, data)

    def answered(self, step: str) -> None:
        """Count one call answered by the backend (its attempts are counted by :meth:`record`)."""
        with locked(os.path.join(self.folder, ".lock")):
            data = self.totals()
            _tally(data, run_id(), step)["calls_sent"] += 1
            atomic_write_json(self.totals_path, data)

    def spent_usd(self) -> float:
        """USD of every priced attempt of every run."""
        return sum(t["cost_usd"] for r in self.totals()["runs"].values() for t in r["steps"].values())

    def check_budget(self, max_cost_usd: Optional[float]) -> None:
        """Raise when the calls so far cost ``max_cost_usd`` or more (no limit when None).

        Raises:
            BudgetReached: with the budget, what was spent, and how to go on.
        """
        if max_cost_usd is None:
            return
        spent = self.spent_usd()
        if spent >= max_cost_usd:
            raise BudgetReached(budget_message(max_cost_usd, spent))


def budget_message(max_cost_usd: float, spent: float) -> str:
    """The line a stopped call, the summary and the run's last word say."""
    return (f"budget of ${max_cost_usd:.2f} reached after ${spent:.4f} (workflow.max_cost_usd): no new model call "
            "started. Raise workflow.max_cost_usd and run the same command again; answered calls are not paid again.")


def summarize(ledger: Ledger, run: str) -> dict:
    """The ``cost`` figures of ``summary.json`` from the ledger: ``this_run`` and ``all_runs``
    (each: the :data:`FIELDS` counters and ``by_step``), and ``runs`` (how many)."""
    runs = ledger.totals()["runs"]

    def fold(selected: list[dict]) -> dict:
        out, by_step = blank(), {}
        for r in selected:
            for step, t in r["steps"].items():
                add_tally(by_step.setdefault(step, blank()), t)
                add_tally(out, t)
        return {**out, "by_step": by_step}

    return {"this_run": {"run": run, **fold([runs[run]] if run in runs else [])},
            "all_runs": {"runs": len(runs), **fold(list(runs.values()))}}

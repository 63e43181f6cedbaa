"""The ``quality`` section of ``summary.json`` and ``quality/rejected_items.jsonl``.

Read from the records on disk: every video's verification record (what each check found),
each QA type's selection record (what went into the dataset, what was left out and why),
the step-3 records (re-asks spent on structure problems at generation) and the task files
(the correct letters as the dataset has them).
"""

from __future__ import annotations

import json
from collections import Counter

from scipy.special import chdtrc

from video_reasoning import verification
from video_reasoning.export import video_id_of
from video_reasoning.qa_types import LETTERS, QA_TYPES, qa_type_of_task
from video_reasoning.records import QARecord, SelectionRecord, Status, VerificationRecord, read_record
from video_reasoning.steps import VERIFY, rejected_items_path, selection_path, step_path, task_files
from video_reasoning.store import atomic_write_text, read_json

#: The answer values whose spread is reported, per item kind.
_VALUES = {"choice": tuple(LETTERS), "yes_no": ("Yes", "No")}


def spread(values: list[str], kind: str) -> dict:
    """How ``values`` (correct letters, or Yes/No) spread: counts per value, and the p-value
    of Pearson's chi-square test against an even spread (the statistic's upper tail with
    k - 1 degrees of freedom, ``scipy.special.chdtrc``, what ``scipy.stats.chisquare``
    computes, without importing ``scipy.stats``: a second of CPU in the run's last job; None
    for fewer than two values). A small p (say < 0.05) means the position of the correct
    answer is guessable."""
    counts = Counter(values)
    observed = [counts.get(v, 0) for v in _VALUES[kind]]
    p = None
    if sum(observed) >= 2:
        expected = sum(observed) / len(observed)
        statistic = sum((o - expected) ** 2 / expected for o in observed)
        p = float(chdtrc(len(observed) - 1, statistic))
    return {"counts": dict(zip(_VALUES[kind], observed)), "chi_square_p": p}


def _answer_value(kind: str, answer: str) -> str:
    """The correct letter or Yes/No of a dataset item's answer (``B``, ``B. text``, ``Yes. ...``)."""
    return answer.strip()[:1] if kind == "choice" else answer.strip().split(".")[0].split(",")[0].split()[0]


def _key_value(kind: str, item: dict) -> str:
    return item["correct_option"] if kind == "choice" else item["answer"]


def _longest(item: dict) -> bool:
    """True when the correct option is strictly the longest of the four."""
    opts = item["options"]
    key = LETTERS.index(item["correct_option"])
    return all(len(opts[key]) > len(o) for i, o in enumerate(opts) if i != key)


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def quality(results_dir: str, vids: list[str], qa_types: list[str], tasks: list[str], splits=()) -> dict:
    """The quality section: per check and per QA type and task, items checked, failed,
    removed and kept; the blind-answerable rate; the grounded agreement rate (choice,
    yes/no and localization items); the spread of correct letters and Yes/No per task
    before verification (as generated) and after (as the dataset has them); the share of
    multiple-choice items whose correct option is the longest, before and after; times out
    of range found (problems sent back to the LLM at generation, and items that still had
    one at verification); and the structure problems step 3 sent back per kind. Task
    files are read from every split of ``splits`` (names; none: the one file per task).
    """
    ver = {v: read_record(step_path(results_dir, VERIFY, v), VerificationRecord) for v in vids}
    ver = {v: r for v, r in ver.items() if r is not None and r.status is Status.DONE}
    sel = {q: read_record(selection_path(results_dir, q), SelectionRecord) for q in qa_types}
    checks = {c: {"checked": 0, "failed": 0} for c in verification.CHECKS}
    per_type = {}
    before = {q: [] for q in qa_types}
    for q in qa_types:
        kind = QA_TYPES[q].verify
        row = {c: {"checked": 0, "failed": 0} for c in verification.CHECKS}
        for rec in ver.values():
            for it in (i for i in rec.items if i.qa_type == q):
                before[q].append(it.item)
                for c in rec.checks:
                    if c == "duplicates" or (c == "blind_probe" and kind not in _VALUES) or (
                            c == "judge" and kind != "open"):
                        continue
                    row[c]["checked"] += 1
                    row[c]["failed"] += c in it.failed
        s = sel[q]
        if s is not None and any("duplicates" in r.checks for r in ver.values()):
            row["duplicates"]["checked"] = len(s.kept) + len(s.removed)
            row["duplicates"]["failed"] = sum("duplicates" in i.failed for i in s.kept + s.removed)
        for c in verification.CHECKS:
            checks[c]["checked"] += row[c]["checked"]
            checks[c]["failed"] += row[c]["failed"]
        per_type[q] = {"generated": len(before[q]), "checks": row,
                       "removed": len(s.removed) if s else 0,
                       "surplus": sum(i.failed == ["surplus"] for i in s.removed) if s else 0,
                       "flagged": sum(bool(i.failed) for i in s.kept) if s else 0,
                       "kept": len(s.kept) if s else 0}
    closed = [(r, it) for r in ver.values() for it in r.items
              if "grounded_reanswer" in r.checks and QA_TYPES[it.qa_type].verify != "open"]
    task_rows, letters = {}, {}
    for t in tasks:
        q = qa_type_of_task(t).name
        data = {"items": [i for p in task_files(results_dir, t, splits) for i in (read_json(p) or {}).get("items", [])]}
        task_rows[t] = {"generated": per_type[q]["generated"], "removed": per_type[q]["removed"],
                        "kept": len(data["items"])}
        kind = QA_TYPES[q].verify
        if kind in _VALUES:
            letters[t] = {"before": spread([_key_value(kind, i) for i in before[q]], kind),
                          "after": spread([_answer_value(kind, i["answer"]) for i in data["items"]], kind)}
    mcq = [q for q in qa_types if QA_TYPES[q].verify == "choice"]
    reasks = _generation_reasks(results_dir, list(ver), qa_types)
    return {
        "checks": checks,
        "qa_types": per_type,
        "tasks": task_rows,
        "blind_answerable_rate": _rate(checks["blind_probe"]["failed"], checks["blind_probe"]["checked"]),
        "grounded_agreement_rate": _rate(sum("grounded_reanswer" not in it.failed for _, it in closed), len(closed)),
        "correct_answer_spread": letters,
        "longest_option_share": {
            "before": _share([_longest(i) for q in mcq for i in before[q]]),
            "after": _share([_longest(i.item) for q in mcq if sel[q] for i in sel[q].kept])},
        "times_out_of_range": {
            "sent_back_at_generation": reasks.get("time", 0),
            "failed_verification": sum(any(f.startswith("structure: [time]") for f in it.findings)
                                       for r in ver.values() for it in r.items)},
        "reasks_at_generation": reasks,
    }


def _generation_reasks(results_dir: str, vids: list[str], qa_types: list[str]) -> dict[str, int]:
    """Structure problems sent back to the LLM by step 3, per kind (``time``, ``length``, ...;
    one per problem per re-ask)."""
    kinds: Counter = Counter()
    for v in vids:
        for q in qa_types:
            rec = read_record(step_path(results_dir, "3", v, q), QARecord)
            if rec is not None:
                kinds.update(verification.problem_kinds(p for c in rec.calls for p in c.reasks))
    return dict(sorted(kinds.items()))


def write_rejected_items(results_dir: str, qa_types: list[str], media_root: str | None) -> int:
    """Write ``quality/rejected_items.jsonl``: one line per item a check failed or that was
    left out, with ``action`` (``dropped`` or, under ``policy: flag``, ``flagged``), the
    ``checks`` it failed, their ``findings``, the models' ``answers`` and the ``item``.
    Returns the line count."""
    lines = []
    for q in qa_types:
        s = read_record(selection_path(results_dir, q), SelectionRecord)
        if s is None:
            continue
        rows = [("dropped", i) for i in s.removed] + [("flagged", i) for i in s.kept if i.failed]
        for action, it in rows:
            video_id = video_id_of(it.path, media_root)
            lines.append(json.dumps({
                "video_id": video_id, "qa_type": q, "item_index": f"{video_id}:{q}:{it.index}", "action": action,
                "checks": it.failed, "findings": it.findings, "answers": it.answers, "item": it.item},
                sort_keys=True, ensure_ascii=False))
    atomic_write_text(rejected_items_path(results_dir), "".join(line + "\n" for line in lines))
    return len(lines)

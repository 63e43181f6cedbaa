"""Step 4 and the run summary: tao-vl-reason-v1.0 task files and ``summary.json``.

Task names and the QA-type -> task mapping are TAO's (step 4 of ``nvidia-tao-ds``): mcq
and bcq each yield a short-answer and an open-ended task; temporal_event_desc is written
as ``temporal_description`` and event_summary as ``video_summarization``. The envelope is
DAFT's ``tao-vl-reason-v1.0`` (``nvidia-tao-daft``), and every file is validated with
DAFT's own validator before it is put in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from video_reasoning.store import atomic_write_json, read_json

FORMAT = "tao-vl-reason-v1.0"
#: QA type -> output task names (TAO's step-4 mapping).
TASKS: dict[str, tuple[str, ...]] = {
    "mcq": ("mcq", "mcq_openended"),
    "bcq": ("bcq", "bcq_openended"),
    "open_qa": ("open_qa",),
    "causal_linkage": ("causal_linkage",),
    "temporal_localization": ("temporal_localization",),
    "temporal_event_desc": ("temporal_description",),
    "scene_description": ("scene_description",),
    "event_summary": ("video_summarization",),
}
DESCRIPTIONS = {
    "mcq": "Multiple-choice video QA with four options; the answer is the correct option's letter.",
    "mcq_openended": "Multiple-choice video QA; the answer is the correct option with its text.",
    "bcq": "Yes/no video QA; the answer is Yes or No.",
    "bcq_openended": "Yes/no video QA; the answer is Yes or No followed by a short explanation.",
    "open_qa": "Open-ended video QA with free-text answers.",
    "causal_linkage": "Causal linkage: how an event at one time leads to the situation at another.",
    "temporal_localization": 'Temporal localization: the answer is {"start": "MM:SS", "end": "MM:SS"} of the event.',
    "temporal_description": "Temporal event description: what happens within a given time window.",
    "scene_description": "Scene description: the place, layout, conditions, actors and objects.",
    "video_summarization": "Video summarization: the main events in order, including any anomaly.",
}
INSTRUCTIONS = {
    "mcq": "Answer with the option's letter only.",
    "mcq_openended": "Answer with the correct option's letter and text.",
    "bcq": "Answer Yes or No.",
    "bcq_openended": "Answer Yes or No, then explain briefly.",
    "temporal_localization": 'Answer with the start and end time as {"start": "MM:SS", "end": "MM:SS"}.',
}
LETTERS = "ABCD"


def mmss(seconds: float) -> str:
    """``MM:SS`` (minutes may exceed 59)."""
    s = max(0, int(round(seconds)))
    return f"{s // 60:02d}:{s % 60:02d}"


def permute_options(options: list[str], correct: int, seed: str) -> tuple[list[str], int]:
    """Deterministically move the correct option to a seed-chosen position.

    The target position is ``SHA-256(seed) mod 4``, so correct letters spread evenly over
    A-D across items whatever position the model favoured; the wrong options keep their
    relative order. Returns ``(options, new correct index)``.
    """
    target = int(hashlib.sha256(seed.encode("utf-8")).hexdigest(), 16) % len(options)
    others = [o for i, o in enumerate(options) if i != correct]
    others.insert(target, options[correct])
    return others, target


def items_for(qa_type: str, record: dict, video_id: str) -> dict[str, list[dict]]:
    """Dataset items of one video's step-3 record, per output task of ``qa_type``.

    ``video_id`` is the video's path under ``media_root``. Items get ``item_index``
    ``<video_id>:<qa_type>:<n>``; MCQ options are permuted with the video's SHA-256 and the
    question as seed, so the same video and question give the same letters wherever the
    dataset is built.
    """
    out = {task: [] for task in TASKS[qa_type]}
    content = record.get("sha256") or video_id
    for n, it in enumerate(record.get("items", [])):
        base = {"video_id": video_id, "reasoning": it["reasoning"], "item_index": f"{video_id}:{qa_type}:{n}"}
        q = it["question"].strip()
        if qa_type == "mcq":
            options, k = permute_options(it["options"], LETTERS.index(it["correct_option"]), f"{content}\n{q}")
            body = q + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
            out["mcq"].append({**base, "question": f"{body}\n{INSTRUCTIONS['mcq']}", "answer": LETTERS[k]})
            out["mcq_openended"].append({**base, "question": f"{body}\n{INSTRUCTIONS['mcq_openended']}",
                                         "answer": f"{LETTERS[k]}. {options[k]}"})
        elif qa_type == "bcq":
            out["bcq"].append({**base, "question": f"{q}\n{INSTRUCTIONS['bcq']}", "answer": it["answer"]})
            expl = it["explanation"].strip()
            if not expl.lower().startswith(it["answer"].lower()):
                expl = f"{it['answer']}. {expl}"
            out["bcq_openended"].append({**base, "question": f"{q}\n{INSTRUCTIONS['bcq_openended']}", "answer": expl})
        elif qa_type == "temporal_localization":
            answer = json.dumps({"start": mmss(it["start_sec"]), "end": mmss(it["end_sec"])})
            out["temporal_localization"].append({**base, "question": f"{q}\n{INSTRUCTIONS['temporal_localization']}",
                                                 "answer": answer})
        elif qa_type == "temporal_event_desc":
            window = f"({mmss(it['start_sec'])}-{mmss(it['end_sec'])})"
            question = q if it["end_sec"] <= 0 or mmss(it["start_sec"]) in q else f"{q} {window}"
            out["temporal_description"].append({**base, "question": question, "answer": it["answer"]})
        else:
            out[TASKS[qa_type][0]].append({**base, "question": q, "answer": it["answer"]})
    return out


def envelope(task: str, items: list[dict], media_root: str | None, license_: str, description_extra: str) -> dict:
    """A tao-vl-reason-v1.0 annotation file for ``task``."""
    description = DESCRIPTIONS[task] + (f" {description_extra}" if description_extra else "")
    return {
        "format": FORMAT,
        "metadata": {"type": "annotation", "task": task, "date": date.today().isoformat(),
                     "description": description, "license": license_ or ""},
        "media_root": media_root,
        "items": items,
    }


def validate_with_daft(path: str) -> list[str]:
    """Errors DAFT's ``tao-vl-reason-v1.0`` validator finds in one annotation file
    (schema, and every item's media resolving to an existing file); empty when valid."""
    from nvidia_tao_daft.validators.tao_vl_reason_v1_0 import TaoVlReasonV1_0Validator

    folder = tempfile.mkdtemp(prefix="daft-")
    try:
        shutil.copy(path, os.path.join(folder, os.path.basename(path)))
        with contextlib.redirect_stdout(io.StringIO()):
            result = TaoVlReasonV1_0Validator().validate_dataset(Path(folder))
        if result.files_checked != 1:
            return [f"{path}: DAFT did not recognise it as a {FORMAT} file"]
        return list(result.errors)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def task_qa_type(task: str) -> str:
    """The QA type whose step-3 files feed ``task``."""
    return next(q for q, tasks in TASKS.items() if task in tasks)


def write_task(task: str, step3_files: list[str], output: str, media_root: str | None,
               license_: str, description_extra: str) -> int:
    """Write the tao-vl-reason-v1.0 file of ``task`` from its step-3 files; returns its item count.

    Videos whose step-3 record is not ``done`` (rejected, skipped, blocked) contribute no
    item. The file is written to a temporary path, validated with DAFT, then renamed.

    Raises:
        ValueError: DAFT rejects the file (the message lists its errors).
    """
    qa_type = task_qa_type(task)
    items = []
    for path in sorted(step3_files):
        rec = read_json(path)
        if not rec or rec.get("status") != "done":
            continue
        video_id = os.path.relpath(rec["path"], media_root) if media_root else rec["path"]
        items.extend(items_for(qa_type, rec, video_id)[task])
    tmp = output + ".check.json"
    atomic_write_json(tmp, envelope(task, items, media_root, license_, description_extra))
    errors = validate_with_daft(tmp)
    if errors:
        os.remove(tmp)
        raise ValueError(f"{output}: DAFT validation failed: " + "; ".join(errors[:10]))
    os.replace(tmp, output)
    return len(items)


# ---------------------------------------------------------------- summary


def write_summary(results_dir: str, videos: list[tuple[str, str, str]], qa_types: list[str], steps: list[str]) -> dict:
    """Write ``<results_dir>/summary.json`` from the step files and failure records on disk.

    ``videos`` are ``(video_id, path, source)``. Per video: ``status`` (``annotated``,
    ``rejected``/``unsuitable``/``blocked`` with ``reason``, ``failed`` with ``error``, or
    ``pending``), items per QA type, and model calls and tokens per step. Returns the dict.
    """
    step_dirs = {"0": "step_0", "1a": "step_1a", "1b": "step_1b", "1c": "step_1c", "2": "step_2"}
    per_video, totals = [], {"videos": len(videos), "annotated": 0, "rejected": 0, "unsuitable": 0,
                             "blocked": 0, "failed": 0, "pending": 0, "calls": 0, "input_tokens": 0,
                             "output_tokens": 0, "items": {}}
    for vid, path, source in videos:
        entry = {"video_id": vid, "path": path, "source": source, "calls": {}, "tokens": {}, "items": {}}
        status, reason = "pending", ""
        # step 0's file (the probe) is written whichever steps run
        records = {s: read_json(os.path.join(results_dir, d, vid + ".json"))
                   for s, d in step_dirs.items() if s == "0" or s in steps}
        for q in qa_types:
            records[f"3:{q}"] = read_json(os.path.join(results_dir, "step_3", q, vid + ".json")) if "3" in steps else None
        failures = [read_json(str(f))["error"] for f in sorted(Path(results_dir, "failures").glob(f"*/{vid}.json"))]
        for name, rec in records.items():
            if not rec:
                continue
            calls = rec.get("calls", [])
            step = name.split(":")[0]
            entry["calls"][step] = entry["calls"].get(step, 0) + len(calls)
            tok = entry["tokens"].setdefault(step, {"input": 0, "output": 0})
            tok["input"] += sum(c.get("input_tokens", 0) for c in calls)
            tok["output"] += sum(c.get("output_tokens", 0) for c in calls)
            if name.startswith("3:") and rec.get("status") == "done":
                entry["items"][name[2:]] = len(rec.get("items", []))
        s0 = records.get("0")
        if failures:
            status, entry["error"] = "failed", failures[0] if len(failures) == 1 else failures
        elif s0 and s0.get("status") in ("rejected", "unsuitable", "blocked"):
            status, reason = s0["status"], s0.get("reason", "")
        elif any(r and r.get("status") == "blocked" for r in records.values()):
            status = "blocked"
            reason = next(r["reason"] for r in records.values() if r and r.get("status") == "blocked")
        elif all(records.get(n) for n in records):
            status = "annotated"
        entry["status"] = status
        if reason:
            entry["reason"] = reason
        totals[status] += 1
        totals["calls"] += sum(entry["calls"].values())
        totals["input_tokens"] += sum(t["input"] for t in entry["tokens"].values())
        totals["output_tokens"] += sum(t["output"] for t in entry["tokens"].values())
        for q, n in entry["items"].items():
            totals["items"][q] = totals["items"].get(q, 0) + n
        per_video.append(entry)
    tasks = {}
    for f in sorted(Path(results_dir, "step_4_output").glob("*.json")):
        data = read_json(str(f)) or {}
        if data.get("format") == FORMAT:
            tasks[data["metadata"]["task"]] = len(data.get("items", []))
    summary = {"totals": totals, "tasks": tasks, "videos": per_video}
    atomic_write_json(os.path.join(results_dir, "summary.json"), summary)
    return summary

"""The figures and pages of the HTML report (``snakemake --report report.html``).

Rule ``report_pages`` writes them under ``<results_dir>/report/`` from ``summary.json``,
the selection records and the task files, with no model call, key or server; the rule
marks each with Snakemake's ``report()`` (category, caption), and Snakemake packs them into
one HTML file or a zip. Plots are Matplotlib SVGs (text kept as text); the per-video table
and the sample pages are plain HTML, the sample frames JPEG thumbnails inlined as data URIs.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

from video_reasoning.export import video_id_of
from video_reasoning.media import MediaError, thumbnail
from video_reasoning.qa_types import LETTERS, QA_TYPES, qa_type_of_task
from video_reasoning.records import ProbeRecord, SelectionRecord, read_record
from video_reasoning.steps import STEPS, selection_path, step_path, task_files
from video_reasoning.store import atomic_write_text, read_json
from video_reasoning.verification import seconds_in

#: The figures, in report order (each ``<name>.svg``; drawn by :data:`_DRAW`).
FIGURES = ("overview", "quality_checks", "answer_spread", "lengths", "times", "cost")
#: Items shown per task on its sample page.
SAMPLES_PER_TASK = 4
#: Width of a sample frame, pixels.
THUMB_WIDTH = 320


# ------------------------------------------------------------------ the data behind the figures


def report_data(results_dir: str, summary: dict, qa_types: list[str], tasks: list[str], splits=()) -> dict:
    """What the figures show, read once: the ``summary``, each video's duration (s, from
    its step-0 probe), the kept items per QA type (selection records) and the dataset items
    per task (all splits)."""
    durations = {}
    for v in summary["videos"]:
        rec = read_record(step_path(results_dir, "0", v["video_id"]), ProbeRecord)
        if rec is not None and rec.probe is not None:
            durations[v["video_id"]] = rec.probe.duration
    kept = {}
    for q in qa_types:
        sel = read_record(selection_path(results_dir, q), SelectionRecord)
        kept[q] = list(sel.kept) if sel else []
    items = {t: [i for p in task_files(results_dir, t, splits) for i in (read_json(p) or {}).get("items", [])]
             for t in tasks}
    return {"summary": summary, "durations": durations, "kept": kept, "items": items}


def window_shares(data: dict) -> list[float]:
    """Temporal-localization (and other window) items kept: window length over video length."""
    out = []
    for q, kept in data["kept"].items():
        if QA_TYPES[q].verify != "window":
            continue
        for it in kept:
            d = data["durations"].get(it.vid)
            if d:
                out.append((it.item["end_sec"] - it.item["start_sec"]) / d)
    return out


# ------------------------------------------------------------------ figures


#: What the panels of the figure being drawn show: panel title -> series -> values.
_DRAWN: dict[str, dict[str, list]] = {}


@contextmanager
def _figure(path: str, panels: int, title: str):
    """A figure of ``panels`` side-by-side axes, saved as SVG to ``path`` (text as text),
    with the values its panels show as JSON in the SVG's ``dc:description`` metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False}):
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
        fig.suptitle(title, fontsize=11)
        _DRAWN.clear()
        yield list(axes[0])
        fig.tight_layout()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path, format="svg", metadata={"Title": title, "Description": json.dumps(_DRAWN)})
        plt.close(fig)


def _bars(ax, labels: list[str], series: dict[str, list[float]], title: str, ylabel: str = "",
          horizontal: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series; an empty chart says so."""
    ax.set_title(title)
    _DRAWN[title] = {name: dict(zip(labels, values)) for name, values in series.items()}
    if not labels:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        return
    n = len(series)
    width = 0.8 / n
    for k, (name, values) in enumerate(series.items()):
        pos = [i + (k - (n - 1) / 2) * width for i in range(len(labels))]
        bars = (ax.barh if horizontal else ax.bar)(pos, values, width, label=name)
        if n == 1:
            ax.bar_label(bars, fmt="%g", fontsize=7)
    if horizontal:
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
        ax.set_ylabel(ylabel)
    if n > 1:
        ax.legend(fontsize=7)


def _hist(ax, series: dict[str, list[float]], title: str, xlabel: str, bins: int = 20,
          span: tuple[float, float] | None = None) -> None:
    """Step histograms, one per series, over ``span`` (default: the data's range)."""
    ax.set_title(title)
    series = {k: v for k, v in series.items() if v}
    _DRAWN[title] = series
    if not series:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = span or (min(min(v) for v in series.values()), max(max(v) for v in series.values()))
    if hi - lo <= 1e-9 * max(abs(hi), 1.0):  # (nearly) one value: one bar around it
        pad = max(abs(hi) * 0.1, 1e-9)
        lo, hi, bins = lo - pad, hi + pad, 1
    for name, values in series.items():
        ax.hist(values, bins=bins, range=(lo, hi), histtype="step", linewidth=1.4, label=f"{name} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.legend(fontsize=7)


def _overview(data: dict, axes) -> None:
    s = data["summary"]
    t = s["totals"]
    outcomes = ["annotated", "rejected", "unsuitable", "duplicate", "blocked", "failed", "pending"]
    labels = [o for o in outcomes if t.get(o)] + (["near-duplicates"] if t.get("near_duplicates") else [])
    values = [t.get(o, 0) for o in labels if o != "near-duplicates"] + (
        [t["near_duplicates"]] if t.get("near_duplicates") else [])
    _bars(axes[0], labels, {"videos": values}, f"{t['videos']} videos found", "videos", horizontal=True)
    kinds = Counter(reason_kind(v) for v in s["videos"] if v["status"] in ("rejected", "unsuitable", "duplicate"))
    _bars(axes[1], sorted(kinds), {"videos": [kinds[k] for k in sorted(kinds)]}, "not annotated, by reason",
          "videos", horizontal=True)
    if not kinds:  # nothing rejected is a finding too
        _DRAWN.pop("not annotated, by reason")
    rows = s.get("quality", {}).get("tasks", {})
    names = sorted(rows)
    _bars(axes[2], names, {"generated": [rows[n]["generated"] for n in names],
                           "removed": [rows[n]["removed"] for n in names],
                           "kept": [rows[n]["kept"] for n in names]}, "items per task", "items")


def reason_kind(video: dict) -> str:
    """What kind of reason kept a video out of the dataset, from its summary entry: the
    reason without the file's path, details and numbers (``not a readable video``,
    ``truncated or corrupt``, ``N s is longer than workflow.max_video_length_sec``); the
    VLM's free-text reasons as ``unsuitable (VLM)``; duplicates as exact or near."""
    if video["status"] == "unsuitable":
        return "unsuitable (VLM)"
    reason = str(video.get("reason", ""))
    if video["status"] == "duplicate":
        return "near-duplicate" if "near-duplicate" in reason else "exact copy"
    for name in (video.get("path"), video.get("source")):
        if name and reason.startswith(f"{name}: "):
            reason = reason[len(name) + 2:]
    reason = re.split(r" \(|; |: ", reason, maxsplit=1)[0]
    return re.sub(r"\d+(?:\.\d+)?", "N", reason).strip() or "no reason given"


def _quality_checks(data: dict, axes) -> None:
    q = data["summary"].get("quality", {})
    per_type = q.get("qa_types", {})
    names = sorted(per_type)
    checks = list(q.get("checks", {}))
    _bars(axes[0], names, {c: [per_type[n]["checks"][c]["failed"] for n in names] for c in checks},
          "items failing each check, per QA type", "items")
    blind, grounded = q.get("blind_answerable_rate"), q.get("grounded_agreement_rate")
    _bars(axes[1], names, {"removed": [per_type[n]["removed"] for n in names],
                           "of which surplus": [per_type[n]["surplus"] for n in names],
                           "kept": [per_type[n]["kept"] for n in names]},
          f"blind-answerable {_pct(blind)}, grounded agreement {_pct(grounded)}", "items")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _answer_spread(data: dict, axes) -> None:
    q = data["summary"].get("quality", {})
    spread = q.get("correct_answer_spread", {})
    tasks = sorted(spread)
    ax = axes[0]
    ax.set_title("correct answer per task (after verification)")
    if tasks:
        values = [v for v in (*LETTERS, "Yes", "No") if any(v in spread[t]["after"]["counts"] for t in tasks)]
        rows = {v: [spread[t]["after"]["counts"].get(v, 0) for t in tasks] for v in values}
        labels = [f"{t}\np={spread[t]['after']['chi_square_p']:.2g}" if spread[t]["after"]["chi_square_p"]
                  is not None else t for t in tasks]
        _bars(ax, labels, rows, ax.get_title(), "items")
    else:
        _bars(ax, [], {}, ax.get_title())
    share = q.get("longest_option_share", {})
    _bars(axes[1], ["before verification", "after"],
          {"share": [100 * (share.get("before") or 0), 100 * (share.get("after") or 0)]},
          "MCQ whose correct option is the longest (%)", "% of MCQ")
    axes[1].axhline(25, color="grey", linestyle=":", linewidth=1)


def _lengths(data: dict, axes) -> None:
    _hist(axes[0], {t: [len(i["question"]) for i in items] for t, items in data["items"].items()},
          "question length per task", "characters")
    options = [len(o) for q, kept in data["kept"].items() if QA_TYPES[q].verify == "choice"
               for it in kept for o in it.item.get("options", [])]
    correct = [len(it.item["options"][LETTERS.index(it.item["correct_option"])])
               for q, kept in data["kept"].items() if QA_TYPES[q].verify == "choice" for it in kept]
    _hist(axes[1], {"all options": options, "correct options": correct}, "MCQ option length", "characters")


def _times(data: dict, axes) -> None:
    t = data["summary"].get("quality", {}).get("times_out_of_range", {})
    _bars(axes[0], ["sent back at generation", "failed verification"],
          {"times": [t.get("sent_back_at_generation", 0), t.get("failed_verification", 0)]},
          "timestamps out of the video's range", "times")
    _hist(axes[1], {"windows": window_shares(data)}, "temporal windows: length / video length", "share of video",
          bins=10, span=(0.0, 1.0))


def _cost(data: dict, axes) -> None:
    cost = data["summary"]["cost"]
    steps = cost["all_runs"]["by_step"]
    names = [s for s in (*STEPS, *steps) if s in steps]
    names = list(dict.fromkeys(names))
    _bars(axes[0], names, {"sent": [steps[s]["calls_sent"] for s in names],
                           "from the cache": [steps[s]["calls_from_cache"] for s in names]},
          "calls per step (all runs)", "calls")
    _bars(axes[1], names, {"input": [steps[s]["input_tokens"] - steps[s]["cached_input_tokens"] for s in names],
                           "cached input": [steps[s]["cached_input_tokens"] for s in names],
                           "output": [steps[s]["output_tokens"] for s in names]}, "tokens per step", "tokens")
    usd = [steps[s]["cost_usd"] for s in names]
    if any(u == "unknown" for u in usd):
        _bars(axes[2], [], {}, "USD per step: unknown (a model has no price)")
    else:
        per_item = cost["dataset"].get("cost_per_kept_item_usd")
        _bars(axes[2], names, {"USD": usd}, f"USD per step (total {sum(usd):.4f}, per kept item "
              f"{'n/a' if per_item in (None, 'unknown') else f'{per_item:.5f}'})", "USD")
    per_video = [sum(v["cost_usd"].values()) for v in data["summary"]["videos"]
                 if v["cost_usd"] and "unknown" not in v["cost_usd"].values()]
    _hist(axes[3], {"videos": per_video}, "cost per video (answers behind its records)", "USD", bins=10)
    axes[3].set_ylabel("videos")


_DRAW: dict[str, tuple[int, str, Callable]] = {
    "overview": (3, "Overview: videos and items", _overview),
    "quality_checks": (2, "Quality: what the checks removed", _quality_checks),
    "answer_spread": (2, "Quality: where the correct answer is", _answer_spread),
    "lengths": (2, "Quality: question and option lengths", _lengths),
    "times": (2, "Quality: timestamps and temporal windows", _times),
    "cost": (4, "Cost", _cost),
}


def write_figure(name: str, data: dict, path: str) -> None:
    """Draw figure ``name`` (one of :data:`FIGURES`) from :func:`report_data` to ``path`` (SVG)."""
    panels, title, draw = _DRAW[name]
    with _figure(path, panels, title) as axes:
        draw(data, axes)


# ------------------------------------------------------------------ pages

_STYLE = ("<style>body{font-family:sans-serif;font-size:13px;margin:12px}table{border-collapse:collapse}"
          "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
          "th{background:#eee;cursor:pointer}.item{display:flex;gap:12px;margin:0 0 18px}"
          ".item img{width:320px;flex:none}.item p{margin:2px 0}</style>")

_SORT = ("<script>document.querySelectorAll('th').forEach((th,i)=>th.onclick=()=>{const t=th.closest('table'),"
         "b=t.tBodies[0],r=[...b.rows],d=th.dataset.dir=th.dataset.dir==='a'?'d':'a',"
         "v=x=>{const s=x.cells[i].dataset.v??x.cells[i].textContent,n=parseFloat(s);return isNaN(n)?s:n};"
         "r.sort((x,y)=>(v(x)>v(y)?1:v(x)<v(y)?-1:0)*(d==='a'?1:-1));r.forEach(x=>b.appendChild(x))})</script>")


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{_STYLE}"
            f"</head><body><h2>{html.escape(title)}</h2>{body}{script}</body></html>\n")


def video_rows(results_dir: str, summary: dict, media_root: str | None) -> list[dict]:
    """One row per video: ``video`` (its video_id), ``status``, ``why`` (reason or error),
    ``kept`` (items of it in the dataset), ``calls``, ``cost_usd`` and ``records`` (paths
    relative to ``results_dir``)."""
    qa_types = list(summary.get("quality", {}).get("qa_types", {})) or list(QA_TYPES)
    kept_by_vid: dict[str, int] = {}
    for q in summary.get("quality", {}).get("qa_types", {}):
        sel = read_record(selection_path(results_dir, q), SelectionRecord)
        for it in sel.kept if sel else []:
            kept_by_vid[it.vid] = kept_by_vid.get(it.vid, 0) + len(QA_TYPES[q].tasks)
    rows = []
    for v in summary["videos"]:
        costs = list(v["cost_usd"].values())
        why = v.get("error") or v.get("reason") or ""
        rows.append({"video": video_id_of(v["path"], media_root) if v["path"] else v["source"],
                     "status": v["status"], "why": why if isinstance(why, str) else "; ".join(why),
                     "kept": kept_by_vid.get(v["video_id"], 0), "calls": sum(v["calls"].values()),
                     "cost_usd": "unknown" if "unknown" in costs else round(sum(costs), 6),
                     "split": v.get("split", ""),
                     "records": [os.path.relpath(p, results_dir) for p in record_paths(results_dir, v["video_id"],
                                                                                        qa_types)]})
    return rows


def record_paths(results_dir: str, vid: str, qa_types: list[str]) -> list[str]:
    """The step records of a video that exist, in pipeline order."""
    paths = [step_path(results_dir, name, vid, q) for name, step in STEPS.items()
             for q in (qa_types if step.per_qa_type else (None,))]
    return [p for p in paths if os.path.isfile(p)]


def videos_page(results_dir: str, summary: dict, media_root: str | None) -> str:
    """The per-video table (click a header to sort), each video's records linked."""
    rows = video_rows(results_dir, summary, media_root)
    splits = any(r["split"] for r in rows)
    head = ["video", "status", "reason or error", "items in dataset", "calls", "USD", *(["split"] if splits else []),
            "records"]
    body = []
    for r in rows:
        links = " ".join(f"<a href='{html.escape(_file_uri(results_dir, p))}'>{html.escape(p)}</a>"
                         for p in r["records"])
        cells = [html.escape(r["video"]), r["status"], html.escape(r["why"]), r["kept"], r["calls"],
                 r["cost_usd"], *([r["split"]] if splits else []), links]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
             + "".join(body) + "</tbody></table>")
    note = (f"<p>{len(rows)} videos. Records are under the results folder ({html.escape(results_dir)}); "
            "the links open them on the machine that ran the workflow.</p>")
    return _page("Videos", note + table, _SORT)


def _file_uri(results_dir: str, rel: str) -> str:
    return "file://" + os.path.abspath(os.path.join(results_dir, rel))


def item_time(item: dict, duration: float) -> float:
    """The moment (s) a dataset item is about: the middle of its window when it has one,
    else of its first evidence event (long_reasoning), else the first time its question or
    reasoning names inside the video, else the video's middle."""
    if "start_sec" in item and "end_sec" in item:
        return (item["start_sec"] + item["end_sec"]) / 2
    if item.get("evidence"):
        first = item["evidence"][0]
        return (first["start_sec"] + first["end_sec"]) / 2
    for text in (item.get("question", ""), item.get("reasoning", "")):
        for _, t in seconds_in(text):
            if 0 <= t <= duration:
                return t
    return duration / 2


def pick_samples(items: list[dict], n: int = SAMPLES_PER_TASK) -> list[dict]:
    """Up to ``n`` items, one video after another (round robin over video_id, in item_index
    order): the same items for the same dataset."""
    by_video: dict[str, list[dict]] = {}
    for it in sorted(items, key=lambda i: i["item_index"]):
        by_video.setdefault(it["video_id"], []).append(it)
    out, k = [], 0
    while len(out) < n and any(k < len(v) for v in by_video.values()):
        out += [v[k] for v in by_video.values() if k < len(v)][: n - len(out)]
        k += 1
    return out


def samples_page(task: str, data: dict, media_root: str | None) -> str:
    """A task's sample items: each with a frame of its video at :func:`item_time`, the
    question, answer and reasoning."""
    q = qa_type_of_task(task).name
    source = {f"{video_id_of(it.path, media_root)}:{q}:{it.index}": it for it in data["kept"].get(q, [])}
    blocks = []
    for item in pick_samples(data["items"].get(task, [])):
        kept = source.get(item["item_index"])
        img, when = "<p>(no frame: the item's video is not in the selection)</p>", ""
        if kept is not None:
            duration = data["durations"].get(kept.vid, 0.0)
            t = item_time(kept.item, duration)
            when = f" at {t:.1f} s"
            try:
                jpeg = thumbnail(kept.path, t, THUMB_WIDTH)
                img = f"<img alt='frame{when}' src='data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}'>"
            except MediaError as exc:
                img = f"<p>(no frame: {html.escape(str(exc))})</p>"
        text = "".join(f"<p><b>{k}</b>: {html.escape(str(item[k])).replace(chr(10), '<br>')}</p>"
                       for k in ("question", "answer", "reasoning"))
        blocks.append(f"<div class='item'>{img}<div><p><i>{html.escape(item['video_id'])}{when}</i></p>"
                      f"{text}</div></div>")
    n = len(data["items"].get(task, []))
    body = f"<p>{len(blocks)} of the {n} items of {task}.</p>" + ("".join(blocks) or "<p>No item.</p>")
    return _page(f"Samples: {task}", body)


def write_report(results_dir: str, summary: dict, qa_types: list[str], tasks: list[str], splits: list[str],
                 media_root: str | None, outputs: dict) -> None:
    """Write every figure of :data:`FIGURES` (SVG), the per-video table and one sample page
    per task to ``outputs`` (figure or page name -> path; ``samples``: one path per task,
    in ``tasks`` order)."""
    data = report_data(results_dir, summary, qa_types, tasks, splits)
    for name in FIGURES:
        write_figure(name, data, outputs[name])
    atomic_write_text(outputs["videos"], videos_page(results_dir, summary, media_root))
    for t, path in zip(tasks, outputs.get("samples", [])):
        atomic_write_text(path, samples_page(t, data, media_root))

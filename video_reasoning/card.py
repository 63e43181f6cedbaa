"""``<results_dir>/DATASET.md``: the dataset card, in the Hugging Face dataset-card layout.

A YAML header (license, task categories, size category, configs: one per task, its files
per split, read with the JSON builder's ``field: items``) and sections: summary, how it was
generated (models, prompt set and its hash, steps, verification), counts, quality figures,
cost, known limitations, and how to load it with DAFT. Every figure comes from
``summary.json`` (the card's counts are the summary's). Layout: Hugging Face's dataset card
guide (``huggingface.co/docs/hub/datasets-cards``) and its ``size_categories`` buckets.
"""

from __future__ import annotations

import re

import yaml

from video_reasoning.config import Settings
from video_reasoning.qa_types import qa_type_of_task, task
from video_reasoning.steps import DATASET_FOLDER, effective_steps

#: Hugging Face's size_categories buckets: (upper bound exclusive, label).
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))
#: A p-value of the correct-answer spread below this says the answer's position is guessable.
SPREAD_P = 0.05


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` label of ``n`` items (``n<1K`` ... ``n>1T`` style)."""
    return next((label for bound, label in SIZE_CATEGORIES if n < bound), "n>100M")


def license_fields(text: str | None) -> dict:
    """The header's license: an identifier as given (``cc-by-4.0``), ``other`` with a
    ``license_name`` for free text, ``unknown`` when none was set."""
    text = (text or "").strip()
    if not text:
        return {"license": "unknown"}
    if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", text):
        return {"license": text}
    return {"license": "other", "license_name": re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "custom"}


def header(summary: dict, settings: Settings, tasks: list[str], name: str) -> dict:
    """The card's YAML header (a dict)."""
    splits = list(settings.export.splits)
    configs = []
    for t in tasks:
        files = ([{"split": s, "path": f"{DATASET_FOLDER}/{s}/{t}.json"} for s in splits] if splits
                 else [{"split": "all", "path": f"{DATASET_FOLDER}/{t}.json"}])
        configs.append({"config_name": t, "data_files": files, "field": "items"})
    return {**license_fields(settings.license), "pretty_name": name, "language": ["en"],
            "task_categories": ["video-text-to-text", "visual-question-answering"],
            "size_categories": [size_category(sum(summary.get("tasks", {}).values()))],
            "tags": ["video", "reasoning", "synthetic", "tao-vl-reason-v1.0"], "configs": configs}


def _table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _usd(x, digits: int = 4) -> str:
    return "unknown (a model has no price)" if x == "unknown" else "n/a" if x is None else f"${x:.{digits}f}"


def card(summary: dict, settings: Settings, tasks: list[str], prompt_set: str, prompt_hash: str,
         name: str) -> str:
    """The dataset card (Markdown with a YAML header) of a finished run.

    ``summary``: the run's ``summary.json``; ``tasks``: the task files written;
    ``prompt_set``: ``ours`` or the TAO prompts module; ``prompt_hash``: the hash of every
    template in use (:func:`prompt_set_hash`); ``name``: the pretty name.
    """
    t, q = summary["totals"], summary.get("quality", {})
    wf, ver = settings.workflow, settings.verification
    n_items = sum(summary.get("tasks", {}).values())
    splits = summary.get("splits", {})
    lines = ["---", yaml.safe_dump(header(summary, settings, tasks, name), sort_keys=False).rstrip(), "---", "",
             f"# {name}", "",
             f"{n_items} video question-answer items with reasoning traces in {len(tasks)} tasks, from "
             f"{t['annotated']} annotated videos ({t['videos']} found), in NVIDIA TAO's `tao-vl-reason-v1.0` "
             "format (one JSON file per task: `format`, `metadata`, `media_root`, `items` with `video_id`, "
             "`question`, `answer`, `reasoning`). Generated and checked by models, not written or reviewed by "
             "people.", "", "Tasks:", "", *[f"- {row}" for row in qa_type_rows(tasks)], "",
             "## How it was generated", "",
             f"- VLM (reads the video): `{settings.vlm.model}` via `{settings.vlm.backend}`; LLM (writes "
             f"descriptions and QA): `{settings.llm.model}` via `{settings.llm.backend}`.",
             f"- Prompt set: {prompt_set}, hash `{prompt_hash}` (every template in use).",
             f"- Steps: {', '.join(effective_steps(wf))} (TAO's video reasoning annotation: 0 screening, 1a-1c "
             "captions, chunks, highlights, 2 description, 3 QA, 4 export); mode `" + wf.mode + "`; QA types: "
             + ", ".join(f"`{x}`" for x in wf.qa_types) + f"; at most {wf.items_per_type} items per type and video.",
             f"- Verification: checks {', '.join(ver.checks()) or 'none'}; policy `{ver.policy}` (items failing a "
             "check are " + ("dropped" if ver.policy == "drop" else "kept and flagged") + "). The blind probe asks "
             "the LLM without the video; the grounded re-answer asks the VLM with it.",
             *([_long_line(settings)] if settings.long_path() else []),
             f"- Duplicate videos: exact copies annotated once; near-duplicates `{settings.data.near_duplicates}`.",
             "", "## Counts", "",
             _table(["videos", "count"], [[k, t[k]] for k in ("videos", "annotated", "rejected", "unsuitable",
                                                              "duplicate", "blocked", "failed", "pending")]
                    + [["near-duplicates", t["near_duplicates"]]]),
             "", _table(["task", "QA type", "generated", "removed", "items"],
                        [[x, qa_type_of_task(x).name, q.get("tasks", {}).get(x, {}).get("generated", "n/a"),
                          q.get("tasks", {}).get(x, {}).get("removed", "n/a"), summary["tasks"].get(x, 0)]
                         for x in tasks])]
    if splits:
        lines += ["", "Splits are by video (all items of a video in one split, chosen by the SHA-256 of its "
                  "content: adding videos moves none):", "",
                  _table(["split", "share", "videos", "items"],
                         [[s, settings.export.splits[s], v["videos"], v["items"]] for s, v in splits.items()])]
    spread = q.get("correct_answer_spread", {})
    guessable = [x for x, v in spread.items() if (v["after"]["chi_square_p"] or 1) < SPREAD_P]
    lines += ["", "## Quality", "",
              f"- Blind-answerable rate (items the LLM answered right without the video, before removal): "
              f"{_pct(q.get('blind_answerable_rate'))}; grounded agreement (the VLM re-answering with the video "
              f"agreed with the key): {_pct(q.get('grounded_agreement_rate'))}.",
              f"- MCQ whose correct option is the longest: {_pct(q.get('longest_option_share', {}).get('before'))} "
              f"generated, {_pct(q.get('longest_option_share', {}).get('after'))} in the dataset (25% is even).",
              f"- Times out of the video's range: {q.get('times_out_of_range', {}).get('sent_back_at_generation', 0)} "
              f"sent back at generation, {q.get('times_out_of_range', {}).get('failed_verification', 0)} failed "
              "verification.", ""]
    if spread:
        lines += [_table(["task", "correct answers", "chi-square p"],
                         [[x, ", ".join(f"{k}: {n}" for k, n in v["after"]["counts"].items()),
                           "n/a" if v["after"]["chi_square_p"] is None else f"{v['after']['chi_square_p']:.3g}"]
                          for x, v in spread.items()]), ""]
    checks = q.get("checks", {})
    if checks:
        lines += [_table(["check", "items checked", "failed"], [[c, v["checked"], v["failed"]]
                                                                for c, v in checks.items()]), ""]
    cost = summary.get("cost", {})
    flagged = sum(v.get("flagged", 0) for v in q.get("qa_types", {}).values())
    lines += ["## Cost", "",
              f"All runs: {cost.get('all_runs', {}).get('calls_sent', 0)} model calls sent, "
              f"{_usd(cost.get('all_runs', {}).get('cost_usd'))}; per item in the dataset: "
              f"{_usd(cost.get('dataset', {}).get('cost_per_kept_item_usd'), 6)}.", "",
              "## Known limitations", "",
              "- Questions, answers and reasoning were written by an LLM from VLM captions and checked by models "
              "only; some items are wrong. `quality/rejected_items.jsonl` lists what the checks removed or flagged.",
              "- The checks use models of the same kind as the generator: an error both share passes them.",
              "- Times are at one-second resolution (MM:SS); captions of long videos are made per chunk.",
              *([f"- The correct answer's position is uneven (p < {SPREAD_P}) in: {', '.join(guessable)}."]
                if guessable else []),
              *([f"- {t['failed']} videos failed and are not in the dataset; rerunning the workflow retries them."]
                if t.get("failed") else []),
              *([f"- Items under policy `flag` include {flagged} that failed a check."]
                if ver.policy == "flag" else []),
              "- The videos keep their own licenses; the dataset refers to them by `media_root` and `video_id`.",
              "", "## How to load it", "",
              "Validate with DAFT (`pip install nvidia-tao-daft`), per folder of task files:", "",
              "```bash", *[f"tao-daft validate tao-vl-reason-v1.0 --path {DATASET_FOLDER}" + (f"/{s}" if s else "")
                           for s in (list(splits) or [""])], "```", "",
              "Read it with DAFT's conversation dataset. Pass `media_roots`: without it, DAFT takes each file's "
              "folder as its media root, not the file's `media_root`. From this card's folder:", "",
              "```python", _LOAD.format(pattern=f"{DATASET_FOLDER}/{'*/' if splits else ''}*.json"), "```", "",
              "With Hugging Face `datasets`: `load_dataset(\"json\", data_files=..., field=\"items\")` per task "
              "(the configs above).", ""]
    return "\n".join(lines)


_LOAD = """import glob, json, os
from nvidia_tao_daft.datasets.tao_vl_reason_v1_0 import TaoVlReasonV1_0CosmosRLConversationDataset

files = sorted(glob.glob("{pattern}"))
roots = []
for f in files:
    with open(f) as fh:
        root = json.load(fh)["media_root"]
    roots.append(root if os.path.isabs(root) else os.path.join(os.path.dirname(f), root))
dataset = TaoVlReasonV1_0CosmosRLConversationDataset(files, media_roots=roots, response_mode="think")
print(len(dataset), "conversations")"""


def _long_line(settings: Settings) -> str:
    """The card's line on the long-video path (LongVideo-Reason's recipe, seed 002)."""
    lv, wf = settings.long_video, settings.workflow
    return (f"- Long videos (over {lv.threshold(wf):g} s, LongVideo-Reason's recipe): every {lv.clip_sec:g} s clip "
            f"captioned ({lv.clips_per_request} clips per VLM request at {lv.sample_fps:g} frames/s), the captions "
            f"merged into a timeline, summarised per {lv.segment_sec:g} s segment when over "
            f"{lv.timeline_token_budget} tokens; `long_reasoning` questions connect events at least "
            f"{lv.min_event_gap_sec:g} s apart; reasoning traces "
            + ("rewritten by the LLM without captions or raw times." if lv.reformat else "as the LLM wrote them."))


def prompt_set_name(settings: Settings) -> str:
    """``ours`` (with the number of overridden keys), or the TAO prompts module."""
    if settings.prompts_module:
        return f"TAO prompts module `{settings.prompts_module}`"
    return "ours" + (f", {len(settings.prompts)} templates overridden in the spec" if settings.prompts else "")


def qa_type_rows(tasks: list[str]) -> list[str]:
    """Each task with its description (what its answers look like)."""
    return [f"`{t}`: {task(t).description}" for t in tasks]

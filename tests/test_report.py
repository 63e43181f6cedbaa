"""The dataset as its users receive it: the HTML report, the dataset card, splits by video and
the progress lines (issue: report, card, splits, progress). One run with a flawed stand-in
(so the checks remove items) over three real videos and a bad file, split three ways."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from support import API_KEY, REPO, StandIn, clip, copy, load, run_workflow, sha256, write_spec

SPLITS = {"train": 0.5, "val": 0.25, "test": 0.25}
FIGURES = ("overview", "quality_checks", "answer_spread", "lengths", "times", "cost")
CATEGORIES = ("Overview", "Quality", "Cost", "Videos", "Samples")


def _spec(folder: Path) -> None:
    write_spec(folder, {"data": {"video_root": "videos"}, "export": {"splits": SPLITS},
                        "pricing": {"gemini-3.1-flash-lite-preview": {"input": 1.0, "cached_input": 0.1,
                                                                      "output": 2.0}}})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run (server stopped afterwards): folder, the run's stderr, and the
    split of every video before a new video was added."""
    folder = tmp_path_factory.mktemp("report")
    for name, dst in (("bikes.mp4", "bikes.mp4"), ("carphone_pristine.mp4", "carphone.mp4"),
                      ("bigbuckbunny.mp4", "bbb.mp4")):
        copy(clip(name), folder / "videos" / dst)
    (folder / "videos" / "notes.mp4").write_text("not a video")
    _spec(folder)
    with StandIn(api_key=API_KEY, flawed=True) as server:
        server.labels = {sha256(clip("bikes.mp4")): "anomaly"}
        proc = run_workflow(folder, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url})
    return folder, proc.stderr


def _report(folder: Path, target: str) -> subprocess.CompletedProcess:
    """``snakemake --report <target>`` with no key and no server."""
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k and "BASE_URL" not in k}
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
                           "spec.yaml", "--report", target], cwd=folder, env=env, capture_output=True, text=True)


def test_report_holds_every_category_plot_and_sample_offline(finished_run):
    folder, _ = finished_run
    proc = _report(folder, "report.zip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = load(folder / "results" / "summary.json")
    with zipfile.ZipFile(folder / "report.zip") as z:
        files = {Path(n).name: z.read(n) for n in z.namelist()}
    page = files["report.html"].decode()
    for category in CATEGORIES:
        assert category in page
    panels = {}
    for name in FIGURES:
        svg = files[f"{name}.svg"].decode()
        assert "nothing to show" not in svg, name
        drawn = json.loads(html.unescape(re.search(r"<dc:description>(.*?)</dc:description>", svg, re.S).group(1)))
        for title, series in drawn.items():  # every panel shows some data
            values = [x for s in series.values() for x in (s.values() if isinstance(s, dict) else s)]
            assert values and (any(values) or "longest" in title), (name, title)  # a 0% share is data too
        panels[name] = drawn
    videos = panels["overview"][f"{summary['totals']['videos']} videos found"]["videos"]
    assert videos == {"annotated": 3, "rejected": 1}
    assert panels["overview"]["not annotated, by reason"]["videos"] == {"not a readable video": 1}
    q = summary["quality"]
    kept = panels["overview"]["items per task"]["kept"]
    assert kept == summary["tasks"]
    checks = panels["quality_checks"]["items failing each check, per QA type"]
    assert {c: sum(v.values()) for c, v in checks.items()} == {c: v["failed"] for c, v in q["checks"].items()}
    assert sum(checks["blind_probe"].values()) > 0  # the flawed model's guessable items were caught
    spread = next(v for k, v in panels["answer_spread"].items() if k.startswith("correct answer"))
    assert set(spread) == {"A", "B", "C", "D", "Yes", "No"}
    share = panels["answer_spread"]["MCQ whose correct option is the longest (%)"]["share"]
    assert share == {"before verification": 100 * (q["longest_option_share"]["before"] or 0),
                     "after": 100 * (q["longest_option_share"]["after"] or 0)}
    times = panels["times"]["timestamps out of the video's range"]["times"]
    assert times["sent back at generation"] == q["times_out_of_range"]["sent_back_at_generation"] > 0
    assert panels["cost"]["calls per step (all runs)"]["sent"] == {
        s: v["calls_sent"] for s, v in summary["cost"]["all_runs"]["by_step"].items()}
    n_questions = sum(len(v) for v in panels["lengths"]["question length per task"].values())
    assert n_questions == sum(summary["tasks"].values())
    # The per-video table: one row per video, status and USD from the summary.
    table = files["videos.html"].decode()
    assert table.count("<tr>") == len(summary["videos"]) + 1
    for v in summary["videos"]:
        assert v["status"] in table
    assert "not a readable video" in table  # the rejected file's reason
    # Samples: every task with items has a page whose items carry a real frame of their video.
    for task, n in summary["tasks"].items():
        page = files[f"{task}.html"].decode()
        frames = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
        assert len(frames) == min(4, n), task
        img = Image.open(io.BytesIO(base64.b64decode(frames[0])))
        assert img.format == "JPEG" and img.width == 320 and img.height > 100
        assert len(img.convert("L").getcolors(256)) > 50  # a picture, not a blank
    assert "DATASET.md" in files and "summary.json" in files


def test_dataset_card_counts_equal_the_summary_and_its_load_snippet_runs(finished_run):
    folder, _ = finished_run
    results = folder / "results"
    summary = load(results / "summary.json")
    text = (results / "DATASET.md").read_text(encoding="utf-8")
    head = yaml.safe_load(text.split("---\n")[1])
    n_items = sum(summary["tasks"].values())
    assert head["license"] == "unknown" and head["size_categories"] == ["n<1K"]
    assert {c["config_name"] for c in head["configs"]} == set(summary["tasks"])
    for c in head["configs"]:
        assert {f["split"] for f in c["data_files"]} == set(SPLITS)
        assert all((results / f["path"]).is_file() for f in c["data_files"])
    rows = dict(re.findall(r"^\| (\w+) \| (\d+) \|$", text, re.M))
    for k in ("videos", "annotated", "rejected", "failed"):
        assert int(rows[k]) == summary["totals"][k], k
    for task, n in summary["tasks"].items():
        assert re.search(rf"^\| {task} \| \w+ \| \d+ \| \d+ \| {n} \|$", text, re.M), task
    for split, v in summary["splits"].items():
        assert re.search(rf"^\| {split} \| {SPLITS[split]} \| {v['videos']} \| {v['items']} \|$", text, re.M)
    assert f"{n_items} video question-answer items" in text
    assert re.search(r"Prompt set: ours, hash `[0-9a-f]{8,}`", text)
    # The card's DAFT snippet, run as written from the card's folder, loads every item.
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=results, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"{n_items} conversations"


def test_splits_are_by_video_daft_valid_and_stable_when_videos_are_added(finished_run, tmp_path):
    from video_reasoning.export import validate_with_daft

    folder, _ = finished_run
    results = folder / "results"
    summary = load(results / "summary.json")

    def split_videos(results: Path) -> dict[str, set]:
        out = {}
        for split in SPLITS:
            out[split] = set()
            for f in sorted((results / "step_4_output" / split).glob("*.json")):
                assert validate_with_daft(str(f)) == [], f
                out[split] |= {i["video_id"] for i in load(f)["items"]}
        return out

    before = split_videos(results)
    assert sum(len(v) for v in before.values()) == summary["totals"]["annotated"] == 3  # disjoint, all there
    assert not (before["train"] & before["val"]) and not (before["train"] & before["test"])
    assert not list((results / "step_4_output").glob("*.json"))  # no unsplit files beside the splits
    # Adding videos moves none of the others (a copy of the run, two more videos).
    moved = tmp_path / "more"
    shutil.copytree(folder, moved, symlinks=True)
    copy(clip("carphone_distorted.mp4"), moved / "videos" / "carphone_distorted.mp4")
    copy(clip("bikes.mp4"), moved / "videos" / "bikes_copy.mp4")  # an exact copy: annotated once
    with StandIn(api_key=API_KEY, flawed=True) as server:
        run_workflow(moved, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url})
    after = split_videos(moved / "results")
    for split, vids in before.items():
        assert vids <= after[split], split
    new = load(moved / "results" / "summary.json")
    old_split = {v["path"]: v.get("split") for v in summary["videos"]}
    for v in new["videos"]:
        if v["path"].replace(str(moved), str(folder)) in old_split:
            assert v.get("split") == old_split[v["path"].replace(str(moved), str(folder))]


def test_progress_lines_count_every_video_with_calls_cost_and_eta(finished_run):
    folder, stderr = finished_run
    summary = load(folder / "results" / "summary.json")
    n = len(summary["videos"])
    log = (folder / "results" / "logs" / "progress.log").read_text(encoding="utf-8").splitlines()
    assert len(log) == n
    for k, line in enumerate(log, 1):
        assert line in stderr  # on the terminal too
        assert re.match(rf"\[{k}/{n} videos\] videos/\S+\.mp4: \w+", line), line
        assert re.search(r", \d+ items kept, \d+ calls, \$\d+\.\d{4} \| run: \d+ calls sent, \$\d+\.\d{4}, \d+", line)
        assert ("ETA" in line) == (k < n)
    assert log[-1].endswith("all videos done")
    by_path = {v["path"].split("/videos/")[-1]: v for v in summary["videos"]}
    for line in log:
        name = re.match(r"\[\d+/\d+ videos\] videos/(\S+):", line).group(1)
        v = by_path[name]
        assert f": {v['status']}" in line and f", {sum(v['calls'].values())} calls," in line
    assert "rule caption_video" not in stderr  # the default profile keeps Snakemake's job blocks out


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_report_renders_in_a_headless_browser(finished_run, tmp_path):
    """The report.html opened in headless Chromium: the start page with its categories, and
    the report's own viewer showing a figure and a sample page (opened by script, as a click
    would). Screenshots are kept in the test's tmp folder."""
    folder, _ = finished_run
    assert _report(folder, "report.html").returncode == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    shots = {}
    for view, name in (("", "start"), ("overview.svg", "figure"), ("mcq.html", "samples")):
        text = page
        if view:
            kind = "img" if view.endswith(".svg") else "html"
            opener = ("<script>window.addEventListener('load',()=>setTimeout(()=>{const p=Object.keys(results)"
                      f".find(k=>k.endsWith('{view}'));app.setView({{content:'{kind}',"
                      "contentPath:results[p].data_uri,resultPath:p});},300));</script>")
            end = page.rfind("</body>")  # the page's own (its scripts hold the string too)
            text = page[:end] + opener + page[end:]
        src = tmp_path / f"{name}.html"
        src.write_text(text, encoding="utf-8")
        shot = tmp_path / f"report_{name}.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1400,1000", "--virtual-time-budget=4000", f"--screenshot={shot}",
                        src.as_uri()], capture_output=True, timeout=120, check=True)
        img = Image.open(shot).convert("RGB")
        shots[name] = img
        print(f"screenshot: {shot}")
    for name, img in shots.items():
        assert img.size == (1400, 1000)
        assert len(img.getcolors(1 << 20) or []) > 30, name  # something was drawn
    right = [img.crop((300, 0, 1400, 1000)) for img in shots.values()]
    assert right[0].tobytes() != right[1].tobytes() != right[2].tobytes()  # each view shows its own content

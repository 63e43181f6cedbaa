"""Probe, chunk plan, highlight window, cuts and frame sampling on real videos."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support import clip
from video_reasoning import media


def frame_count(path) -> int:
    """Video frames in a file, from its packet index."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().strip(","))


def assert_window(path, start, end, p):
    """The cut holds the frames of [start, end) of the source, to one frame."""
    assert abs(frame_count(path) - round((end - start) * p.fps)) <= 1


def test_probe_reads_real_clips_once(monkeypatch):
    runs = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    p = media.probe(clip("bikes.mp4"))
    assert len(runs) == 1 and runs[0][0] == "ffprobe"  # format, streams and packet index in one run
    assert p.duration == pytest.approx(10.0, abs=0.05)
    assert (p.width, p.height, p.codec) == (640, 272, "h264")
    assert p.fps == pytest.approx(25.0)
    assert p.keyframes[0] == 0.0 and len(p.keyframes) > 1
    assert len(p.sha256) == 64 and p.mime_type == "video/mp4"
    assert media.probe(clip("bigbuckbunny.mp4")).has_audio


@pytest.mark.parametrize("duration, expected", [(4, 5), (49, 5), (51, 10), (120, 15), (300, 30), (301, 30.1)])
def test_chunk_duration_is_smallest_option_within_max_chunks(duration, expected):
    assert media.select_chunk_duration(duration, [5, 10, 15, 20, 30], 10) == pytest.approx(expected)


def test_plan_chunks_covers_video_and_merges_sliver():
    assert media.plan_chunks(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert media.plan_chunks(20.5, 10) == [(0, 10), (10, 20.5)]
    assert media.plan_chunks(3, 5) == [(0, 3)]


@pytest.mark.parametrize("t, duration, window", [
    (5, 20, (2, 8)), (0.5, 20, (0, 3.5)), (19.5, 20, (16.5, 20)), (1, 1.5, (0, 1.5)), (5, 20, (4, 6))])
def test_highlight_window_clamped_and_at_least_two_seconds(t, duration, window):
    before, after = (0.2, 0.2) if window == (4, 6) else (3, 3)
    assert media.highlight_window(t, duration, before, after) == pytest.approx(window)




@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_cut_chunks_boundaries_exact_to_one_frame(tmp_path, name):
    p = media.probe(clip(name))
    windows = media.plan_chunks(p.duration, 2.0)
    clips = media.cut_clips(p, windows, str(tmp_path))
    assert len(clips) == len(windows)
    for c, (s, e) in zip(clips, windows):
        assert (c.start, c.end) == (s, e)
        assert_window(c.path, s, e, p)
    assert sum(frame_count(c.path) for c in clips) == frame_count(clip(name))


def test_stream_copy_when_keyframes_sit_on_boundaries(tmp_path):
    p = media.probe(clip("bikes.mp4"))
    windows = [(0.0, p.keyframes[1]), (p.keyframes[1], p.keyframes[2])]
    assert media.keyframes_allow_copy(p, [w[0] for w in windows])
    clips = media.cut_clips(p, windows, str(tmp_path))
    for c, (s, e) in zip(clips, windows):
        assert_window(c.path, s, e, p)


def test_single_window_cut_with_input_seeking(tmp_path):
    p = media.probe(clip("bikes.mp4"))
    (c,) = media.cut_clips(p, [(4.0, 7.0)], str(tmp_path))
    assert_window(c.path, 4.0, 7.0, p)


def test_frames_sampled_in_one_process(tmp_path, monkeypatch):
    runs = []
    real = subprocess.Popen

    def counting(*a, **k):
        runs.append(a[0])
        return real(*a, **k)

    p = media.probe(clip("bikes.mp4"))
    monkeypatch.setattr(subprocess, "Popen", counting)
    frames = media.sample_frames(p, 0, p.duration, 2.0, 60, str(tmp_path))
    assert len(runs) == 1 and runs[0][0] == "ffmpeg"
    assert len(frames) == 20
    assert [t for t, _ in frames[:3]] == [0.0, 0.5, 1.0]
    capped = media.sample_frames(p, 0, p.duration, 2.0, 7, str(tmp_path / "capped"))
    assert len(capped) == 7


@pytest.mark.parametrize("make, reason", [
    (lambda d: (d / "x.mp4").write_text("hello"), "not a readable video"),
    (lambda d: (d / "x.mp4").write_bytes(b""), "empty file"),
    (lambda d: (d / "x.mp4").mkdir(), "directory"),
    (lambda d: (d / "x.mp4").symlink_to(d / "gone.mp4"), "broken symlink"),
    (lambda d: None, "does not exist"),
])
def test_bad_files_rejected_with_reason(tmp_path, make, reason):
    make(tmp_path)
    with pytest.raises(media.MediaError, match=reason):
        media.probe(str(tmp_path / "x.mp4"))


def test_audio_only_and_still_image_rejected(tmp_path):
    audio = tmp_path / "a.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bigbuckbunny.mp4"), "-vn", "-c:a", "copy",
                    str(audio)], check=True)
    with pytest.raises(media.MediaError, match="no video stream"):
        media.probe(str(audio))
    still = tmp_path / "still.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bikes.mp4"), "-frames:v", "1",
                    "-f", "image2", "-c:v", "png", str(still)], check=True)
    with pytest.raises(media.MediaError, match="still image"):
        media.probe(str(still))


def test_truncated_video_rejected(tmp_path):
    data = Path(clip("bikes.mp4")).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(media.MediaError, match="truncated or corrupt"):  # not "not a readable video"
        media.probe(str(cut))


def test_frames_by_seeking_in_one_process_when_keyframes_are_dense(tmp_path, monkeypatch):
    dense = tmp_path / "dense.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bikes.mp4"), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "5", str(dense)], check=True)
    p = media.probe(str(dense))
    times = media.sample_times(0, p.duration, 0.5, 60, p.frame_interval)
    assert media.frames_decoded_by_seeking(p, times) < 0.2 * p.duration * p.fps
    monkeypatch.setattr(media, "OPEN_INPUT_MS", 0.0)  # make seeking the cheaper plan for this small clip
    runs = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    frames = media.sample_frames(p, 0, p.duration, 0.5, 60, str(tmp_path / "f"))
    assert len(runs) == 1 and runs[0].count("-ss") == len(times) == 5
    assert [t for t, _ in frames] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert all(os.path.getsize(f) > 1000 for _, f in frames)


def test_seeks_go_in_memory_bounded_batches(tmp_path, monkeypatch):
    """However many frames are taken by seeking, one ffmpeg process opens only as many
    inputs as SEEK_MEMORY_MB allows for the frame size (60 seeking 720p inputs in one
    process peaked at 1.4 GB); the frames are the same."""
    dense = tmp_path / "dense.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", clip("bikes.mp4"), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "5", str(dense)], check=True)
    p = media.probe(str(dense))
    monkeypatch.setattr(media, "OPEN_INPUT_MS", 0.0)
    monkeypatch.setattr(media, "SEEK_MEMORY_MB", 2 * media.SEEK_MB_PER_MEGAPIXEL * p.width * p.height / 1e6)
    assert media.seek_batch(p) == 2
    runs = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    frames = media.sample_frames(p, 0, p.duration, 0.5, 60, str(tmp_path / "f"))
    assert [r.count("-ss") for r in runs] == [2, 2, 1]
    assert [t for t, _ in frames] == [0.0, 2.0, 4.0, 6.0, 8.0] and all(os.path.getsize(f) > 1000 for _, f in frames)


def test_long_video_windows_share_one_sampling(tmp_path, monkeypatch):
    """The long-video path's clip windows (a rate of their own) take their frames from one
    sampling of the whole video: one ffmpeg run for all windows, each window its frames."""
    p = media.probe(clip("bikes.mp4"))
    prep = media.MediaPrep(str(tmp_path / "cache"), str(tmp_path / "scratch"), 60, 0.5, 60)
    runs = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    windows = [(0.0, 4.0), (4.0, 8.0), (8.0, p.duration)]
    got = [prep.frames(media.MediaRef(p, s, e, fps=1.0)) for s, e in windows]
    assert len(runs) == 1
    assert [[t for t, _ in f] for f in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert prep.is_long(media.MediaRef(p, 0.0, 4.0, fps=1.0)) and prep.sampling(media.MediaRef(p, 0, 4, fps=1.0)) == {
        "fps": 1.0}
    assert media.MediaRef(p).identity() == {"sha256": p.sha256, "start": None, "end": None}  # as before: same cache

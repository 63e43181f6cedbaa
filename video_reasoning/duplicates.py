"""Duplicate videos, found before any model call (rule find_duplicates).

Every readable input video gets a fingerprint: its SHA-256 and the perceptual hashes
(``imagehash.phash``, 64 bits) of :data:`FRAMES` frames sampled evenly over it. Two videos
with the same SHA-256 are exact duplicates; two of about the same length (within
:data:`LENGTH_TOLERANCE`) whose aligned frames' hashes differ by at most
:data:`NEAR_DISTANCE` bits on average are near-duplicates (a re-encode, another quality,
a light crop). The first video in input order is the original; each later one names it.
Step 0 annotates exact duplicates not at all and near-duplicates per
``data.near_duplicates`` (``keep``, TAO's behaviour, or ``skip``).

Fingerprints are cached by path, size and modification time in
``<cache>/fingerprints/``, so a rerun after adding videos hashes only the new ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional

from pydantic import BaseModel

from video_reasoning import media
from video_reasoning.store import atomic_write_json, read_json

#: Frames hashed per video.
FRAMES = 8
#: Mean Hamming distance (bits of 64) of aligned frames' phashes up to which two videos are near-duplicates.
NEAR_DISTANCE = 10.0
#: Relative difference of length up to which two videos may be near-duplicates.
LENGTH_TOLERANCE = 0.05


class Fingerprint(BaseModel):
    """A video's SHA-256, length (s) and frames' perceptual hashes (hex)."""

    sha256: str
    duration: float
    hashes: list[str]


class Match(BaseModel):
    """A duplicate: the original's video id and path, ``exact`` or ``near``, and the mean
    Hamming distance (bits of 64) of the frames' perceptual hashes."""

    duplicate_of: str
    path: str
    kind: Literal["exact", "near"]
    distance: float


def fingerprint(path: str, cache_dir: str) -> Optional[Fingerprint]:
    """The fingerprint of the video at ``path`` (cached), or None when it is not a readable
    video (step 0 then rejects it with the reason)."""
    import imagehash
    from PIL import Image

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = hashlib.sha1(f"{os.path.realpath(path)}\n{st.st_size}\n{st.st_mtime_ns}".encode()).hexdigest()
    cached = os.path.join(cache_dir, "fingerprints", key[:2], key + ".json")
    data = read_json(cached)
    if data is not None:
        return Fingerprint.model_validate(data)
    try:
        probe = media.probe(path)
        out = tempfile.mkdtemp(prefix="vra-fp-")
        try:
            frames = media.sample_frames(probe, 0.0, probe.duration, FRAMES / probe.duration, FRAMES, out,
                                         max_width=320)
            hashes = []
            for _, frame in frames:
                with Image.open(frame) as img:
                    hashes.append(str(imagehash.phash(img)))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    except (media.MediaError, OSError):
        return None
    fp = Fingerprint(sha256=probe.sha256, duration=probe.duration, hashes=hashes)
    atomic_write_json(cached, fp.model_dump())
    return fp


def distance(a: Fingerprint, b: Fingerprint) -> float:
    """Mean Hamming distance (bits of 64) of the aligned frames' perceptual hashes."""
    n = min(len(a.hashes), len(b.hashes))
    if n == 0:
        return 64.0
    return sum((int(x, 16) ^ int(y, 16)).bit_count() for x, y in zip(a.hashes[:n], b.hashes[:n])) / n


def find(fingerprints: list[tuple[str, str, Optional[Fingerprint]]]) -> dict[str, Match]:
    """Duplicates among ``(video id, path, fingerprint)`` in input order: each later video
    that repeats an earlier original, exactly (same SHA-256) or nearly (see the module)."""
    originals: list[tuple[str, str, Fingerprint]] = []
    by_sha: dict[str, tuple[str, str]] = {}
    out: dict[str, Match] = {}
    for vid, path, fp in fingerprints:
        if fp is None:
            continue
        if fp.sha256 in by_sha:
            first, first_path = by_sha[fp.sha256]
            out[vid] = Match(duplicate_of=first, path=first_path, kind="exact", distance=0.0)
            continue
        by_sha[fp.sha256] = (vid, path)
        near = [(distance(fp, o), ovid, opath) for ovid, opath, o in originals
                if abs(o.duration - fp.duration) <= LENGTH_TOLERANCE * max(o.duration, fp.duration)]
        best = min(near, default=None)
        if best and best[0] <= NEAR_DISTANCE:
            out[vid] = Match(duplicate_of=best[1], path=best[2], kind="near", distance=round(best[0], 2))
        else:
            originals.append((vid, path, fp))
    return out


def write_duplicates(videos: list[tuple[str, str]], cache_dir: str, output: str, workers: int = 2) -> dict:
    """Fingerprint ``(video id, path)`` (``workers`` at a time), find the duplicates and
    write them to ``output`` as ``{video id: Match}``; returns that mapping."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        fps = list(pool.map(lambda v: fingerprint(v[1], cache_dir) if v[1] else None, videos))
    found = find([(vid, path, fp) for (vid, path), fp in zip(videos, fps)])
    data = {vid: m.model_dump() for vid, m in found.items()}
    atomic_write_json(output, data)
    return data


def exact_copy_of(sha256: str, peers: list[tuple[str, str]]) -> Optional[Match]:
    """The first of ``peers`` (earlier videos of the same size) whose content has this
    SHA-256, as an exact :class:`Match`; None when none has."""
    for vid, path in peers:
        try:
            if media.sha256_file(path) == sha256:
                return Match(duplicate_of=vid, path=path, kind="exact", distance=0.0)
        except OSError:
            continue
    return None


def match_of(duplicates_file: str, vid: str) -> Optional[Match]:
    """The duplicate entry of ``vid`` in ``duplicates_file`` (None when it has none, or the
    file does not exist yet)."""
    data = read_json(duplicates_file)
    entry = data.get(vid) if isinstance(data, dict) else None
    return Match.model_validate(entry) if entry else None

"""Discover the videos a spec names: ``data.video_root`` and ``data.input_jsonl_files``.

Discovery runs when Snakemake parses the workflow, so it only lists and names candidates;
it never opens a video. Whether a candidate is a readable video is decided by step 0's
probe, which records a rejection with its reason instead of failing the run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass

from video_reasoning.config import ConfigError, DataSettings

#: File name endings treated as videos when walking ``data.video_root``: the video
#: containers ffmpeg reads that cameras, phones, broadcast and the web produce. Whether a
#: file really is a readable video is decided by step 0's probe.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts",
                    ".mts", ".m2ts", ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".ogv", ".mxf", ".vob", ".dv")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class VideoEntry:
    """One candidate video.

    Attributes:
        vid: stable, filesystem-safe, unique id (``[A-Za-z0-9._-]+``), used in file names.
        path: absolute path as discovered (symlinks kept, so it stays under media_root).
        source: where it was found: ``video_root`` or ``<jsonl path>:<line>``.
        problem: a reason known at discovery (e.g. a JSONL line without a path), else "".
    """

    vid: str
    path: str
    source: str
    problem: str = ""


def video_id_for(path: str, root: str | None, resolved: str | None = None) -> str:
    """A stable, filesystem-safe, unique id for ``path``.

    The readable part is the path relative to ``root`` (or the file name) with every
    run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``; the suffix is the first
    10 hex digits of the SHA-1 of the resolved absolute path, so ``a/clip.mp4`` and
    ``b/clip.mp4`` stay apart and the id never changes between runs. ``resolved``: that
    path when the caller has it already.
    """
    resolved = resolved or os.path.realpath(path)
    rel = os.path.relpath(path, root) if root and _is_under(path, root) else os.path.basename(path)
    stem = os.path.splitext(rel)[0]
    readable = _UNSAFE.sub("_", stem.replace(os.sep, "__")).strip("._-")[:60] or "video"
    digest = hashlib.sha1(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{readable}-{digest}"


def _is_under(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(os.path.join(root, ""))


def walk_video_root(root: str) -> list[str]:
    """Absolute paths under ``root`` (recursive, sorted) whose names end in a video extension.

    Directories named like videos (``x.mp4/``) and broken symlinks are listed too: step 0
    rejects them with a reason, so they show up in ``summary.json`` instead of vanishing.
    """
    found = []
    root = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if d.lower().endswith(VIDEO_EXTENSIONS)]):
            if name.lower().endswith(VIDEO_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return found


def read_jsonl(path: str, filter_field: str | None) -> list[tuple[str, str, str]]:
    """Video paths listed in a JSONL file, as ``(path, source, problem)`` tuples.

    Each line is a JSON object with ``video_path`` (or ``video``); other fields are
    allowed. With ``filter_field`` set, only entries whose field is ``true`` are kept.
    Relative paths are taken relative to the JSONL file's folder. A line that is not a
    JSON object, or has no path, yields a ``problem`` entry naming the file and line
    number, so it is reported in ``summary.json`` instead of stopping the run.
    """
    out = []
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            source = f"{path}:{lineno}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append(("", source, f"{source}: not valid JSON ({exc.msg}); each line must be "
                            'one object like {"video_path": "/videos/a.mp4"}'))
                continue
            if not isinstance(entry, dict):
                out.append(("", source, f"{source}: expected a JSON object, got {type(entry).__name__}"))
                continue
            if filter_field and entry.get(filter_field) is not True:
                continue
            video = entry.get("video_path") or entry.get("video")
            if not isinstance(video, str) or not video:
                out.append(("", source, f"{source}: entry has no 'video_path' (or 'video') field"))
                continue
            out.append((os.path.join(base, os.path.expanduser(video)), source, ""))
    return out


def discover(data: DataSettings) -> list[VideoEntry]:
    """All candidate videos of the spec, merged and de-duplicated by resolved path.

    The same file reached through ``video_root``, a JSONL file and a symlink is one
    entry (the first path seen is kept). Order: ``video_root`` first, then the JSONL
    files in the order given.
    """
    root = os.path.abspath(data.video_root) if data.video_root else None
    candidates: list[tuple[str, str, str]] = []
    if root:
        candidates += [(p, "video_root", "") for p in walk_video_root(root)]
    for jsonl in data.input_jsonl_files:
        candidates += read_jsonl(jsonl, data.filter_field)
    entries: dict[str, VideoEntry] = {}
    real_dir = functools.lru_cache(maxsize=None)(os.path.realpath)
    for path, source, problem in candidates:
        if problem:
            key = "problem:" + source
            vid = "entry-" + hashlib.sha1(source.encode()).hexdigest()[:10]
            entries[key] = VideoEntry(vid=vid, path="", source=source, problem=problem)
            continue
        path = os.path.abspath(path)
        # realpath, with each folder resolved once (one lstat per video instead of one per
        # path component: 100,000 videos in one folder)
        key = (os.path.realpath(path) if os.path.islink(path) else
               os.path.join(real_dir(os.path.dirname(path)), os.path.basename(path)))
        if key not in entries:
            entries[key] = VideoEntry(vid=video_id_for(path, root, key), path=path, source=source)
    return list(entries.values())


def require_inputs(entries: list[VideoEntry], data: DataSettings) -> None:
    """Fail when the spec names no candidate video at all.

    Raises:
        ConfigError: naming the folder (and the extensions looked for) and the JSONL files.
    """
    if entries:
        return
    where = []
    if data.video_root:
        where.append(f"data.video_root {os.path.abspath(data.video_root)!r} holds no file ending in "
                     f"{' '.join(VIDEO_EXTENSIONS)} (searched recursively)")
    if data.input_jsonl_files:
        where.append(f"data.input_jsonl_files ({', '.join(data.input_jsonl_files)}) list no video")
    raise ConfigError("video_reasoning_annotation: no input videos: " + "; ".join(where) +
                      ". Put videos there or point the spec at the right folder or files.")


def media_root_for(entries: list[VideoEntry], video_root: str | None) -> str | None:
    """The ``media_root`` of the tao-vl-reason-v1.0 output: ``video_root`` when every video
    lies under it, else the deepest folder holding them all (absolute), or None if none."""
    paths = [e.path for e in entries if e.path]
    if not paths:
        return os.path.abspath(video_root) if video_root else None
    if video_root and all(_is_under(p, video_root) for p in paths):
        return os.path.abspath(video_root)
    return os.path.commonpath([os.path.dirname(p) for p in paths])


def shard_number(vid: str, shards: int) -> int:
    """The shard (0 .. ``shards``-1) of video id ``vid``: the first 64 bits of the SHA-256 of
    the id, modulo ``shards``. Deterministic, and a video keeps its shard when others are
    added (it depends on the id alone)."""
    return int(hashlib.sha256(vid.encode()).hexdigest()[:16], 16) % shards


def shard_of(entries: list[VideoEntry], data: DataSettings) -> list[VideoEntry]:
    """The entries of this run's shard (``data.shard_index`` of ``data.shards``), in order;
    all of them for an unsharded run or the merge run (no ``shard_index``)."""
    if data.shards == 1 or data.shard_index is None:
        return entries
    return [e for e in entries if shard_number(e.vid, data.shards) == data.shard_index]

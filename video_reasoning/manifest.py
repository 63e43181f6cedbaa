"""The video manifest: the spec's discovered videos, written once per run, read per job.

The main Snakemake process discovers the videos (:func:`video_reasoning.inputs.discover`)
and writes them here with their byte size and input order. A job that Snakemake runs
remotely (SLURM, Kubernetes: ``--mode remote``, which parses the Snakefile again in every
job) looks its own video up here instead of walking ``video_root`` again, so its start-up
does not grow with the number of videos; a caption job finds the earlier videos of its
byte size here (the only candidates for an exact copy) instead of carrying them as a param.

With ``data.shards`` the manifest still lists every video, each with its shard number, so an
exact copy is found across shards; a shard run's :class:`Manifest` maps only its own videos.
Each shard run writes its own file (:func:`video_reasoning.steps.manifest_path`), so shard
runs started side by side do not replace each other's.

Format: an SQLite file (Python's ``sqlite3``), one row per video, indexed by video id and by
size; replaced atomically, opened read-only and immutable by readers (no lock taken, so it
reads the same on filesystems without working locks).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping

from video_reasoning.inputs import VideoEntry, shard_number


def file_size(path: str) -> int | None:
    """The byte size of ``path`` when it is a regular file, else None (one ``stat``)."""
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None


def write_manifest(path: str, entries: list[VideoEntry], shards: int = 1) -> None:
    """Write ``entries`` (every video of the spec, in input order) to the SQLite file ``path``,
    replacing it atomically.

    Each row: ``ord`` (input order), ``vid``, ``path``, ``source``, ``problem``, ``size``
    (bytes, NULL for a path that is not a regular file), ``shard`` (its shard of ``shards``,
    :func:`video_reasoning.inputs.shard_number`).
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-", suffix=".tmp")
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        with con:
            con.execute("CREATE TABLE videos (ord INTEGER PRIMARY KEY, vid TEXT UNIQUE NOT NULL, path TEXT, "
                        "source TEXT, problem TEXT, size INTEGER, shard INTEGER NOT NULL)")
            con.executemany("INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ((i, e.vid, e.path, e.source, e.problem, file_size(e.path),
                              shard_number(e.vid, shards)) for i, e in enumerate(entries)))
            con.execute("CREATE INDEX by_size ON videos (size, ord)")
            con.execute("CREATE INDEX by_shard ON videos (shard, ord)")
        con.close()
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def same_size_counts(entries: list[VideoEntry]) -> Counter[str]:
    """Video id -> how many videos before it (input order) have its byte size, 0 for the
    others (what :meth:`Manifest.same_size_count` reads from the file; one ``stat`` per
    video)."""
    seen: dict[int, int] = {}
    counts: Counter[str] = Counter()
    for e in entries:
        size = file_size(e.path)
        if size is None:
            continue
        if seen.get(size):
            counts[e.vid] = seen[size]
        seen[size] = seen.get(size, 0) + 1
    return counts


class Manifest(Mapping):
    """Video id -> :class:`VideoEntry` of the videos of ``shard`` (all videos when None),
    read from a manifest file one lookup at a time.

    Raises:
        FileNotFoundError: when ``path`` does not exist (the main process writes it when a
            run starts).
    """

    def __init__(self, path: str, shard: int | None = None):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no video manifest; a snakemake run writes it when it starts "
                                    "(it discovers the videos); run snakemake again")
        self.path = path
        # every query of this shard's videos carries the same condition and parameters
        self._where, self._args = ("shard = ?", (shard,)) if shard is not None else ("1", ())
        self._con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    def __getitem__(self, vid: str) -> VideoEntry:
        row = self._con.execute(f"SELECT vid, path, source, problem FROM videos WHERE vid = ? AND {self._where}",
                                (vid, *self._args)).fetchone()
        if row is None:
            raise KeyError(vid)
        return VideoEntry(*row)

    def __iter__(self) -> Iterator[str]:
        return (r[0] for r in self._con.execute(f"SELECT vid FROM videos WHERE {self._where} ORDER BY ord",
                                                 self._args))

    def __len__(self) -> int:
        return self._con.execute(f"SELECT COUNT(*) FROM videos WHERE {self._where}", self._args).fetchone()[0]

    def same_size_before(self, vid: str) -> list[tuple[str, str]]:
        """The ``(video id, path)`` of the videos before ``vid`` (input order, any shard) with
        its byte size: the only candidates for an exact copy of it."""
        return [tuple(r) for r in self._con.execute(
            "SELECT b.vid, b.path FROM videos a JOIN videos b ON b.size = a.size AND b.ord < a.ord "
            "WHERE a.vid = ? ORDER BY b.ord", (vid,))]

    def same_size_count(self, vid: str) -> int:
        """How many videos before ``vid`` (any shard) have its byte size (0 for a video of a
        unique size)."""
        return self._con.execute(
            "SELECT COUNT(*) FROM videos a JOIN videos b ON b.size = a.size AND b.ord < a.ord WHERE a.vid = ?",
            (vid,)).fetchone()[0]

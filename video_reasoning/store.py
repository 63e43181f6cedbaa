"""Crash-safe file I/O: every file is complete or absent.

Writes go to a temporary file in the target's folder, are flushed and fsynced, then
renamed over the target (``os.replace`` is atomic on POSIX), so a reader or a killed run
never sees half a file, and nothing is ever appended in place. Files get the mode a plain
``open()`` would give them under the process umask (0644 under umask 022), not
``mkstemp``'s 0600, so teammates and training jobs can read the results.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (only os.umask can, by setting it)

def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent folders."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path)[-40:])
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str, data) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically.

    Sorted keys and fixed indentation make equal data byte-identical, which lets
    Snakemake's input checksums skip downstream jobs whose inputs did not really change.
    """
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str):
    """The JSON in ``path``, or None when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def locked(path: str):
    """Hold an exclusive ``flock`` on the lock file ``path`` (created, with its folder)
    for the ``with`` block: one holder at a time across threads and processes of this
    machine (released by the kernel if the holder dies)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def short_hash(obj) -> str:
    """First 16 hex digits of the SHA-256 of ``obj`` as canonical JSON (or of a str)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]

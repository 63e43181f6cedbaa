"""Call slots: at most ``max_workers`` model calls per backend in flight, machine-wide."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time


class CallSlots:
    """A counting semaphore over processes: at most ``n`` holders at once, machine-wide.

    One lock file per slot under ``folder``, taken with ``fcntl.flock`` (released by the
    kernel if the holder dies, so a killed job never leaks a slot). Every job of a run
    shares the folder, so ``max_workers`` bounds the calls of all running jobs on this
    machine together while each job fires its independent calls side by side. The cap
    holds only where the jobs share a filesystem that honours ``flock`` (one machine).
    """

    def __init__(self, folder: str, n: int, poll_s: float = 0.02):
        os.makedirs(folder, exist_ok=True)
        self.paths = [os.path.join(folder, f"slot-{i}.lock") for i in range(max(1, n))]
        self.poll_s = poll_s

    @contextlib.contextmanager
    def hold(self):
        """Wait for a free slot and hold it for the ``with`` block."""
        while True:
            for path in random.sample(self.paths, len(self.paths)):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            time.sleep(self.poll_s * (0.5 + random.random()))


class ThreadSlots:
    """In-process slots for a client used on its own: one call at a time."""

    def __init__(self):
        self._sem = threading.Semaphore(1)

    @contextlib.contextmanager
    def hold(self):
        """Hold the slot for the ``with`` block."""
        with self._sem:
            yield

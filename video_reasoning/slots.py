"""Call slots: at most ``workflow.max_workers`` model calls per backend in flight.

Two ways, by where the jobs run (chosen by the main Snakemake process, rules/common.smk):

- **One machine** (the local executor): :class:`MachineSlots`, ``max_workers`` lock files
  per backend under ``<results_dir>/.cache/slots/<role>/``, shared by every job of the run.
  Each job holds one unit of its main backend's Snakemake resource (``vlm_calls`` /
  ``llm_calls``, ``JOBS_PER_BACKEND x max_workers`` units), so more jobs than slots run and
  one starting up does not leave a slot idle; their calls wait for a slot.
- **A cluster** (SLURM, Kubernetes: the jobs run on other machines, whose shared filesystem
  may not honour ``flock``): :class:`JobSlots`, an in-process semaphore of as many slots as
  the job holds calls (:meth:`video_reasoning.steps.Job.call_units`; each call costs
  ``JOBS_PER_BACKEND`` units of the same resource). Snakemake's scheduler, in the main
  process, grants the units for every executor, so the cap holds with no file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time

#: Set by the main process, for jobs on this machine only: the folder of the machine-wide
#: call slots (``<results_dir>/.cache/slots``). Unset: the job's own :class:`JobSlots`.
MACHINE_SLOTS_ENV = "VRA_MACHINE_SLOTS"


class MachineSlots:
    """A counting semaphore over processes: at most ``n`` holders at once, machine-wide.

    One lock file per slot under ``folder``, taken with ``fcntl.flock`` (released by the
    kernel if the holder dies, so a killed job never leaks a slot). Every job of a run
    shares the folder, so ``n`` bounds the calls of all running jobs on this machine
    together while each job fires its independent calls side by side.
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


class JobSlots:
    """At most ``n`` calls of this process at once (``n`` >= 1: the calls the job holds
    units for; 1 for a client used on its own)."""

    def __init__(self, n: int = 1):
        self.n = max(1, int(n))
        self._sem = threading.Semaphore(self.n)

    @contextlib.contextmanager
    def hold(self):
        """Wait for a free slot and hold it for the ``with`` block."""
        with self._sem:
            yield

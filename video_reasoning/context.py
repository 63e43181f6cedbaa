"""One video as the steps of a job see it: its settings, prompts, records and clients.

A :class:`VideoContext` holds the records read from the job's inputs and those its own
steps wrote (by step name), the step-3 records read (by QA type), and makes the job's
model clients and requests; the prompt placeholders that earlier steps' records fill
(:func:`prompt_context`) and the records that say only a status (:func:`blank`) live here
too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from video_reasoning import long_video, verification
from video_reasoning import media as mediamod
from video_reasoning.client import ModelClient, Reply
from video_reasoning.config import Settings
from video_reasoning.costs import prices
from video_reasoning.duplicates import Match
from video_reasoning.keys import api_key_for
from video_reasoning.media import MediaRef
from video_reasoning.prompts import PromptSet, model_for_key
from video_reasoning.providers.base import Request
from video_reasoning.records import Chunk, ChunkRecord, DescriptionRecord, QARecord, Record, Status
from video_reasoning.slots import MACHINE_SLOTS_ENV, JobSlots, MachineSlots
from video_reasoning.steps import JOBS_PER_BACKEND, STEPS, VERIFY, cache_path

#: Most threads a step starts for its calls (the long-video path may have hundreds of
#: windows); the call slots bound the calls in flight well below it.
MAX_THREADS = 32


@dataclass
class VideoContext:
    """Everything a job's steps need about one video.

    ``records`` holds the records read from the job's inputs and those its own steps
    wrote, by step name; ``qa`` the step-3 records read, by QA type.
    """

    vid: str
    settings: Settings
    prompts: PromptSet
    results_dir: str
    records: dict[str, Record]
    qa: dict[str, QARecord] = field(default_factory=dict)
    video_path: str = ""
    source: str = ""
    problem: str = ""
    duplicate: Optional[Match] = None
    peers: list[tuple[str, str]] = field(default_factory=list)  # earlier videos of the same size
    units: dict[str, int] = field(default_factory=dict)  # call units held per backend (Snakemake resources)
    slots: dict[str, MachineSlots | JobSlots] = field(default_factory=dict)

    def client(self, role: str, step: str) -> ModelClient:
        """A client for ``role`` whose requests hold a call slot of that role
        (:mod:`video_reasoning.slots`): on one machine one of the run's ``max_workers``
        machine-wide slots, on a cluster one of the calls the job holds units of
        ``<role>_calls`` for (1 when it holds none)."""
        block = getattr(self.settings, role)
        cache = cache_path(self.results_dir)
        if role not in self.slots:
            folder = os.environ.get(MACHINE_SLOTS_ENV)
            self.slots[role] = (MachineSlots(os.path.join(folder, role), self.settings.workflow.max_workers)
                                if folder else JobSlots(self.units.get(role, 0) // JOBS_PER_BACKEND))
        return ModelClient(role, block, self.settings.workflow, api_key_for(role, block), cache,
                           context=f"video {self.vid} ({self.video_path or self.source}), step {step}",
                           slots=self.slots[role], step=step, price=prices(self.settings).get(block.model))

    def request(self, key: str, values: dict, media: MediaRef | None = None, check=None, fix=None) -> Request:
        """The request of prompt ``key`` filled with ``values``, about this video (its
        content hash: byte-identical copies share answers, other videos never). Step 0's
        requests carry the video; later steps read its probe from step 0's record."""
        video = (media.probe if media else self.probe).sha256
        return Request(prompt_key=key, prompt=self.prompts.render(key, **values), answer_model=model_for_key(key),
                       tao_format=self.prompts.is_tao(key), media=media, check=check, fix=fix, video=video)

    def ask(self, client: ModelClient, key: str, values: dict, media: MediaRef | None = None, check=None,
            fix=None) -> Reply:
        """Ask ``client`` the prompt ``key`` filled with ``values``."""
        return client.ask(self.request(key, values, media, check, fix))

    @property
    def probe(self) -> mediamod.Probe:
        """The video's probe (from step 0's record)."""
        return self.records["0"].probe

    @property
    def mode(self) -> str:
        """``anomaly`` or ``normal`` (step 0's label, or the spec's mode)."""
        return self.records["0"].mode or "normal"



def upstream_problem(video: VideoContext) -> str:
    """Why this video cannot go on (empty when every earlier record is usable)."""
    for name, rec in video.records.items():
        if not rec.status.ok:
            return f"step {name}: {rec.status.value}: {rec.reason}".strip()
    return ""


def within(duration: float):
    """A check that every time in an answer lies inside the video (with 1 s of slack)."""
    def check(answer):
        for attr in ("events", "timeline"):
            for ev in getattr(answer, attr, None) or []:
                for f in ("start_sec", "end_sec"):
                    v = getattr(ev, f, None)
                    if v is not None and v > duration + verification.TIME_SLACK_S:
                        raise ValueError(f"{attr}: {f}={v} is past the end of the {duration:.1f} s video")
        t = getattr(answer, "anomaly_time_sec", None)
        if t is not None and t > duration + verification.TIME_SLACK_S:
            raise ValueError(f"anomaly_time_sec={t} is past the end of the {duration:.1f} s video")
    return check


def render_events(events) -> str:
    """Timestamped events as prompt text: ``[start-end s] description`` per line."""
    lines = [f"[{e.start_sec:.1f}-{e.end_sec:.1f} s] {e.description}" for e in events]
    return "\n".join(lines) or "N/A"


def render_chunks(chunks: list[Chunk]) -> str:
    """Chunk captions as prompt text: ``Chunk i (start-end s): caption``, blank-line separated."""
    return "\n\n".join(f"Chunk {c.index} ({c.start:.1f}-{c.end:.1f} s): {c.caption}" for c in chunks) or "N/A"


def render_description(d) -> str:
    """A step-2 description as prompt text (the ``{step_2_output}`` placeholder)."""
    parts = []
    if d.setting:
        parts.append(f"Setting: {d.setting}")
    if d.actors:
        parts.append("Actors: " + "; ".join(d.actors))
    parts.append("Timeline:\n" + render_events(d.timeline))
    if d.anomaly:
        parts.append(f"Anomaly: {d.anomaly}")
    parts.append(f"Summary: {d.summary}")
    return "\n".join(parts)


def prompt_context(video: VideoContext) -> dict:
    """Placeholder values from the captions and description available to this job."""
    a, b = video.records.get("1a"), video.records.get("1b")
    c, d = video.records.get("1c"), video.records.get("2")
    dense = render_events(a.dense_events) if a and a.dense_events else "N/A"
    highlight = ""
    if c and c.status is Status.DONE:
        highlight = (f"Highlight clip ({c.start:.1f}-{c.end:.1f} s, anomaly near {c.anomaly_time:.1f} s):\n"
                     f"{c.caption}")
    return {
        "video_length": f"{video.probe.duration:.1f}",
        "global_caption": (a.global_caption if a else "") or "N/A",
        "dense_caption": dense,
        "dense_section": f"Timestamped events:\n{dense}",
        "chunk_captions_str": _chunk_text(b, d),
        "highlight_section": highlight,
        "step_2_output": render_description(d.description) if d and d.description else "N/A",
    }


def _chunk_text(b: ChunkRecord | None, d: DescriptionRecord | None) -> str:
    """The ``{chunk_captions_str}`` placeholder: TAO's chunk captions; on the long-video path
    the clip timeline, or its segment summaries when step 2 made them."""
    if not b or not b.chunks:
        return "N/A"
    if not b.long_video:
        return render_chunks(b.chunks)
    if d and d.segments:
        return long_video.render_segments(d.segments)
    return long_video.timeline(b.chunks)




def blank(step: str, qa_type: str | None, video: VideoContext, status: Status, reason: str) -> Record:
    """A record of ``step`` that says only ``status`` and ``reason`` (no result)."""
    extra = {"0": {"video_id": video.vid, "path": video.video_path, "source": video.source},
             "3": {"qa_type": qa_type, "video_id": video.vid, "path": video.video_path},
             VERIFY: {"video_id": video.vid, "path": video.video_path}}.get(step, {})
    return STEPS[step].record(status=status, reason=reason, **extra)

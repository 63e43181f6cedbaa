"""Typed per-video step records: what each step writes and the next one reads.

Every record carries ``schema_version`` and a :class:`Status`. Records are written with
:func:`write_record` and read with :func:`read_record`, which rejects a record of another
schema version with a message that says how to rerun (the rules also carry
:data:`SCHEMA_VERSION` as a Snakemake param, so a new version reruns the jobs by itself).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from video_reasoning.media import Probe
from video_reasoning.models import ClassificationAnswer, DescriptionAnswer, FilterAnswer, TimedEvent
from video_reasoning.store import atomic_write_json, read_json

#: Version of the record layout; bump it when a field changes meaning or shape.
SCHEMA_VERSION = 3

Mode = Literal["anomaly", "normal"]


class Status(str, Enum):
    """What became of one step of one video."""

    ACCEPTED = "accepted"              # step 0: a readable video within the limits (and suitable)
    REJECTED = "rejected"              # step 0: bad input (unreadable, too long, ...), no call made
    UNSUITABLE = "unsuitable"          # step 0: the VLM's filter said no
    DUPLICATE = "duplicate"            # step 0: the same content as an earlier video (or near it, when skipped)
    BLOCKED = "blocked"                # the backend refused on safety grounds (recorded, not retried)
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"  # step 1c on a normal video
    SKIPPED = "skipped"                # an earlier step of the video did not succeed
    FAILED = "failed"                  # a call failed for good; the next run retries it

    @property
    def ok(self) -> bool:
        """True when later steps may build on the record."""
        return self in (Status.ACCEPTED, Status.DONE, Status.NOT_APPLICABLE)


class CallRecord(BaseModel):
    """Provenance of one model answer: prompt, backend, model, tokens and USD of all its
    attempts (``cost_usd`` None: the model has no price), tries, raw text, and whether this
    run took it from the response cache (``from_cache``: the tokens and USD were paid by the
    run that asked first)."""

    model_config = ConfigDict(extra="ignore")

    prompt_key: str
    prompt_sha: str
    backend: str
    model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Optional[float] = None
    from_cache: bool = False
    attempts: int = 1
    reasks: list[str] = Field(default_factory=list)  # problems sent back with an answer to fix it
    raw: str = ""


class Record(BaseModel):
    """Fields every step record has."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    status: Status
    reason: str = ""
    calls: list[CallRecord] = Field(default_factory=list)


class ProbeRecord(Record):
    """Step 0: the probe, and (step 0 proper) the VLM's filter and anomaly/normal label."""

    video_id: str
    path: str
    source: str
    probe: Optional[Probe] = None
    mode: Optional[Mode] = None
    filter: Optional[FilterAnswer] = None
    classification: Optional[ClassificationAnswer] = None


class CaptionRecord(Record):
    """Step 1a: global caption and dense (timestamped) events of the whole video."""

    mode: Optional[Mode] = None
    global_caption: str = ""
    dense_events: list[TimedEvent] = Field(default_factory=list)


class Chunk(BaseModel):
    """One chunk of step 1b: index, window (s from the video's start) and caption."""

    index: int
    start: float
    end: float
    caption: str


class ChunkRecord(Record):
    """Step 1b: the chunk length chosen and every chunk's caption."""

    mode: Optional[Mode] = None
    chunk_duration: float = 0.0
    chunks: list[Chunk] = Field(default_factory=list)
    long_video: bool = False  # the long-video path: chunks are clips of long_video.clip_sec, captioned in windows


class Segment(BaseModel):
    """(long videos) The LLM's summary of one segment of the timeline, seconds ``start`` to ``end``."""

    start: float
    end: float
    summary: str


class HighlightRecord(Record):
    """Step 1c: the anomaly time (s), the highlight window (s) and its caption."""

    anomaly_time: Optional[float] = None
    start: Optional[float] = None
    end: Optional[float] = None
    caption: str = ""
    evidence: str = ""


class DescriptionRecord(Record):
    """Step 2: the structured description."""

    mode: Optional[Mode] = None
    description: Optional[DescriptionAnswer] = None
    timeline_tokens: int = 0  # (long videos) the clip timeline's estimated tokens (4 characters each)
    segments: list[Segment] = Field(default_factory=list)  # (long videos) when the timeline exceeds its budget


class QARecord(Record):
    """Step 3, one QA type: items as the QA type's item model dumps them."""

    qa_type: str
    mode: Optional[Mode] = None
    video_id: str = ""
    path: str = ""
    sha256: str = ""
    duration: float = 0.0
    items: list[dict[str, Any]] = Field(default_factory=list)
    original_reasoning: list[str] = Field(default_factory=list)  # (long_video.reformat) by item, before the rewrite


class ItemCheck(BaseModel):
    """The verification of one step-3 item.

    ``failed`` lists the checks it failed (``blind_probe``, ``grounded_reanswer``,
    ``judge``, ``structure``), ``findings`` says what each found, ``answers`` holds the
    models' answers (``blind_probe``: the option texts chosen by the two probes;
    ``grounded_reanswer``: the VLM's answer; ``judge``: its verdict), ``blind_hits`` how
    many blind probes chose the key.
    """

    model_config = ConfigDict(extra="forbid")

    qa_type: str
    index: int
    item: dict[str, Any]
    failed: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)
    answers: dict[str, Any] = Field(default_factory=dict)
    blind_hits: int = 0


class VerificationRecord(Record):
    """The verification step of one video: which checks ran, and every item's result."""

    video_id: str = ""
    path: str = ""
    sha256: str = ""
    duration: float = 0.0
    checks: list[str] = Field(default_factory=list)
    items: list[ItemCheck] = Field(default_factory=list)


class SelectedItem(ItemCheck):
    """An item of the dataset-level selection, with its video (``vid``: the workflow's
    video id; ``path``: the file)."""

    vid: str
    path: str
    sha256: str


class SelectionRecord(Record):
    """One QA type across all videos (rule select_items): the items that go into the
    dataset (``kept``; under ``policy: flag`` including failed ones, their ``failed``
    non-empty) and those left out (``removed``; ``failed`` names why, including
    ``duplicates`` and ``surplus``: beyond ``items_per_type``)."""

    qa_type: str
    policy: str
    kept: list[SelectedItem] = Field(default_factory=list)
    removed: list[SelectedItem] = Field(default_factory=list)


class RecordError(ValueError):
    """A record file that this version cannot read; the message says what to do."""


R = TypeVar("R", bound=Record)


def write_record(path: str, record: Record) -> None:
    """Write ``record`` atomically as sorted, indented JSON (equal records, equal bytes)."""
    atomic_write_json(path, record.model_dump(mode="json"))


def read_record(path: str, model: type[R]) -> Optional[R]:
    """The record in ``path`` as ``model``, or None when the file does not exist.

    Raises:
        RecordError: the file was written by another schema version (message says to
            rerun, which rewrites it from the response cache at no cost) or is not a
            valid ``model`` record.
    """
    data = read_json(path)
    if data is None:
        return None
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise RecordError(f"{path}: record of schema version {version}, this workflow reads version "
                          f"{SCHEMA_VERSION}. Run snakemake again: the jobs rerun and rewrite their records "
                          "(answers come from the response cache, at no cost).")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordError(f"{path}: not a valid {model.__name__}: {exc.errors()[0]['msg']} at "
                          f"{'.'.join(map(str, exc.errors()[0]['loc']))}. Delete it and run snakemake again.") from None

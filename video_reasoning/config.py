"""The spec, defined once: pydantic models with defaults, ranges and descriptions.

These models are the single source of the configuration. ``schemas/config.schema.yaml``
(validated by Snakemake's ``validate()``, which also fills in the defaults),
``config/defaults.yaml`` (every key with its default and meaning) and the README's spec
table are generated from them by ``python -m video_reasoning.specdoc --write``; a test
fails when a committed file differs from what the models generate.

Keys and defaults follow the TAO "Video Reasoning Annotation" page (its spec tables and
example); keys whose description starts with "(ours)" are this workflow's extensions.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, ClassVar, Literal, Optional, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from video_reasoning.qa_types import QA_TYPES

#: TAO's steps, in pipeline order (what ``workflow.steps`` lists).
STEP_NAMES = ("0", "1a", "1b", "1c", "2", "3", "4")

QATypeName = Literal[tuple(QA_TYPES)]  # type: ignore[valid-type]  # the registered QA types
StepName = Literal[STEP_NAMES]  # type: ignore[valid-type]


class ConfigError(ValueError):
    """A spec mistake, with a message naming the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: tuple) -> tuple:
    duplicates = sorted({str(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"listed more than once: {', '.join(duplicates)}")
    return values


class GeminiSettings(_Strict):
    """Gemini Developer API through google-genai."""

    key_env: ClassVar[str] = "GOOGLE_API_KEY"

    api_key: str = Field("", description="API key; empty: the GOOGLE_API_KEY variable (preferred)")
    model: str = Field("gemini-3.1-flash-lite-preview", min_length=1, description="model name")
    media_resolution: Literal["MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
                              "MEDIA_RESOLUTION_HIGH"] = Field("MEDIA_RESOLUTION_LOW",
                                                               description="sent on video calls")
    temperature: float = Field(0.3, ge=0, le=2, description="sampling temperature")
    max_output_tokens: int = Field(8192, ge=1, description="output limit per call (tokens)")
    timeout: float = Field(120, gt=0, description="seconds per HTTP request")

    def fingerprint(self) -> dict:
        """What, when changed, changes answers (never the key, not the timeout)."""
        return {"backend": "gemini", "model": self.model, "temperature": self.temperature,
                "max_output_tokens": self.max_output_tokens, "media_resolution": self.media_resolution}


class OpenAISettings(_Strict):
    """Any OpenAI-compatible server (vLLM, NVIDIA NIM, Ollama) through openai."""

    key_env: ClassVar[str] = "OPENAI_API_KEY"

    api_key: str = Field("", description="API key; empty: the OPENAI_API_KEY variable (optional with base_url)")
    base_url: str = Field("", description="server URL ending in /v1")
    model_name: str = Field("", description="model the server serves")
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(4096, ge=1, description="output limit per call (tokens)")
    timeout: float = Field(60, gt=0, description="seconds per HTTP request")
    video_input: Literal["video_url", "frames"] = Field(
        "video_url", description="(ours) how media up to long_video_threshold_sec is sent: `video_url` (vLLM, NIM) "
        "or `frames` (timestamped images at long_video_sample_fps: Ollama and other image-only servers)")

    def fingerprint(self) -> dict:
        """What, when changed, changes answers (never the key, not the timeout)."""
        return {"backend": "openai", "model": self.model_name, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "base_url": self.base_url, "video_input": self.video_input}


class BackendSettings(_Strict):
    """One role's backend (``vlm`` or ``llm``): which provider, and each provider's settings."""

    backend: Literal["gemini", "openai"] = Field("gemini", description="`gemini` or `openai`")
    gemini: GeminiSettings = GeminiSettings()
    openai: OpenAISettings = OpenAISettings()

    @property
    def provider(self) -> GeminiSettings | OpenAISettings:
        """The chosen provider's settings."""
        return getattr(self, self.backend)

    @property
    def model(self) -> str:
        """The model name the chosen backend calls."""
        return self.gemini.model if self.backend == "gemini" else self.openai.model_name

    def fingerprint(self) -> dict:
        """What, when changed, must rerun the work this backend produced: backend, model,
        temperature, output-token limit, media resolution or endpoint; never the API key
        (this dict goes into Snakemake ``params``, stored in ``.snakemake/``)."""
        return self.provider.fingerprint()


class WorkflowSettings(_Strict):
    """What runs and how."""

    steps: tuple[StepName, ...] = Field(STEP_NAMES, min_length=1, json_schema_extra={"uniqueItems": True},
                                        description="steps to run; in `auto` mode 0 always runs and 1c follows 1b")
    mode: Literal["auto", "anomaly", "normal"] = Field("auto", description="`auto` (the VLM classifies), "
                                                       "`anomaly` or `normal`")
    max_workers: int = Field(4, ge=1, description="concurrent model calls per backend, across all jobs")
    max_video_length_sec: float = Field(300, gt=0, description="longer videos are rejected at no cost (s)")
    chunk_duration_options: tuple[float, ...] = Field((5, 10, 15, 20, 30), min_length=1,
                                                      description="step 1b uses the smallest giving at most "
                                                      "max_chunks chunks (s)")
    max_chunks: int = Field(10, ge=1, description="chunks per video at most")
    highlight_before_sec: float = Field(3.0, ge=0, description="highlight window before the anomaly (s)")
    highlight_after_sec: float = Field(3.0, ge=0, description="highlight window after the anomaly (s; "
                                       "clamped, at least 2 s in all)")
    long_video_threshold_sec: float = Field(60, gt=0, description="longer media is shown as sampled frames (s)")
    long_video_sample_fps: float = Field(0.5, gt=0, description="frame sampling rate (frames/s)")
    long_video_max_frames: int = Field(60, ge=1, description="frames per call at most")
    qa_types: tuple[QATypeName, ...] = Field(tuple(q for q in QA_TYPES if QA_TYPES[q].default), min_length=1,
                                             json_schema_extra={"uniqueItems": True},
                                             description="QA types to write (TAO's eight by default; "
                                             "`long_reasoning`, ours, for videos on the long-video path)")
    items_per_type: int = Field(3, ge=1, le=10, description="(ours) QA items kept per video and QA type after "
                                "verification, where the model supplies them (with verification on, step 3 "
                                "asks for half as many again and the best are kept)")
    retry_attempts: int = Field(6, ge=1, description="(ours) tries per model call")
    retry_max_seconds: float = Field(600, gt=0, description="(ours) time bound of one call's retries (s)")
    max_cost_usd: Optional[float] = Field(None, gt=0, description="(ours) budget: once the calls made for this "
                                          "results_dir (all runs) cost this much, no new call starts; rerun with a "
                                          "higher budget to go on (null: no limit)")

    @field_validator("steps", "qa_types")
    @classmethod
    def _listed_once(cls, values: tuple) -> tuple:
        return _unique(values)

    def tao_steps(self) -> frozenset[str]:
        """TAO's steps that run (:func:`video_reasoning.steps.effective_steps` adds ours).

        As the TAO page says: in ``auto`` mode step 0 always runs (it classifies each
        video), and step 1c runs after 1b (it captures the anomaly highlight).
        """
        steps = set(self.steps)
        if self.mode == "auto":
            steps.add("0")
            if "1b" in steps:
                steps.add("1c")
        return frozenset(steps)


class VerificationSettings(_Strict):
    """(ours) The verification stage between steps 3 and 4: which checks run, and what
    becomes of an item that fails one (see README, "Verified data")."""

    #: The checks, by name (each a switch below), in the order they are reported.
    CHECKS: ClassVar[tuple[str, ...]] = ("blind_probe", "grounded_reanswer", "judge", "structure", "duplicates")

    blind_probe: bool = Field(True, description="remove multiple-choice and yes/no items the LLM answers "
                              "correctly without the video (two probes, options re-ordered)")
    grounded_reanswer: bool = Field(True, description="remove items the VLM, shown the video, answers "
                                    "differently from the key")
    judge: bool = Field(True, description="remove open-ended items whose answer the VLM's account does not "
                        "support or whose reasoning does not lead to it (needs grounded_reanswer)")
    structure: bool = Field(True, description="remove items with times outside the video, reversed windows, "
                            "'all/none of the above', a length-outlier key or talk of captions (no call)")
    duplicates: bool = Field(True, description="keep one of near-duplicate items, within a video and across "
                             "the dataset (no call)")
    policy: Literal["drop", "flag"] = Field("drop", description="`drop`: leave failed items out of the dataset; "
                                            "`flag`: keep them; both list them in quality/rejected_items.jsonl")
    min_iou: float = Field(0.3, ge=0, le=1, description="temporal localization: least overlap (IoU) of the "
                           "VLM's window with the key's")
    duplicate_similarity: float = Field(90, ge=50, le=100, description="rapidfuzz token_sort_ratio (0-100) "
                                        "from which two normalised questions are near-duplicates")

    def checks(self) -> tuple[str, ...]:
        """The checks that run, by name (``blind_probe``, ``grounded_reanswer``, ``judge``,
        ``structure``, ``duplicates``)."""
        return tuple(name for name in self.CHECKS if getattr(self, name))


class LongVideoSettings(_Strict):
    """(ours) The long-video path (LongVideo-Reason's recipe, seed 002) for videos longer than
    ``threshold_sec``: clip captions merged into a timeline instead of TAO's chunks."""

    threshold_sec: Optional[float] = Field(None, gt=0, description="videos longer than this take the long-video "
                                           "path (s; null: max_chunks x the largest chunk_duration_options "
                                           "entry, 300 s by default); raise workflow.max_video_length_sec too")
    clip_sec: float = Field(10, ge=2, description="clip length (s): every clip of the video gets a caption")
    clips_per_request: int = Field(30, ge=1, le=120, description="consecutive clips captioned in one VLM request "
                                   "(one window of the video; a 1 h video at 10 s x 30 is 12 requests)")
    sample_fps: float = Field(0.2, gt=0, description="frames per second the VLM sees of a clip window (0.2: two "
                          "frames per 10 s clip, 60 per 30-clip request)")
    timeline_token_budget: int = Field(6000, ge=200, description="tokens the timeline may take in a step-2/3 "
                                       "prompt (estimated at 4 characters per token); over it, the LLM "
                                       "summarises each segment and the prompts carry the summaries")
    segment_sec: float = Field(300, ge=30, description="segment length of the summaries (s)")
    min_event_gap_sec: float = Field(60, ge=0, description="a long_reasoning question connects events at least "
                                     "this far apart (s; checked, re-asked otherwise)")
    reformat: bool = Field(False, description="the LLM rewrites each reasoning trace of a long video's items "
                           "for fluency, without captions or raw times (one call per QA type; the original "
                           "kept in the step-3 record)")

    def threshold(self, wf: WorkflowSettings) -> float:
        """Seconds above which a video takes the long-video path."""
        return self.threshold_sec or wf.max_chunks * max(wf.chunk_duration_options)


class DataSettings(_Strict):
    """Where the videos are."""

    video_root: Optional[str] = Field("", description="folder walked recursively for video files (.mp4 .m4v "
                                      ".mov .mkv .webm .avi .mpg .ts .mts .wmv .flv .3gp and more)")
    input_jsonl_files: tuple[str, ...] = Field((), description='JSONL files, one {"video_path": ...} '
                                               '(or "video") per line')
    filter_field: Optional[str] = Field(None, description="keep JSONL entries whose field is true")
    near_duplicates: Literal["keep", "skip"] = Field("keep", description="(ours) a near-duplicate of an earlier "
                                                     "video (re-encode, other quality): annotate it (`keep`, TAO's) "
                                                     "or not (`skip`); exact copies are always annotated once")
    shards: int = Field(1, ge=1, description="(ours) split the videos into this many shards by video id, each "
                        "planned and run as its own snakemake run (a SLURM array task, say) with data.shard_index; "
                        "a run without shard_index then merges them into one dataset, summary and report")
    # Snakemake's --config reads a nested value as a string: "1" counts as 1, so a shard run
    # is `--config 'video_reasoning_annotation={"data": {"shard_index": 1}}'`.
    shard_index: Annotated[Optional[int], WithJsonSchema({"anyOf": [
        {"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}, {"type": "null"}]})] = Field(
        None, ge=0, description="(ours) with data.shards: the shard this run annotates (0 .. shards-1; a digit "
        "string, as --config passes it, counts as the number); unset: the merge run")

    @model_validator(mode="after")
    def _shards(self) -> DataSettings:
        if self.shard_index is not None and self.shard_index >= self.shards:
            raise ValueError(f"data.shard_index {self.shard_index} is not below data.shards {self.shards}: shards "
                             f"are numbered 0 .. {self.shards - 1}")
        if self.shards > 1 and self.near_duplicates == "skip":
            raise ValueError("data.near_duplicates: skip compares every video with every other before any caption "
                             "job, which shards cannot do: use keep with data.shards (the merge run's summary lists "
                             "the near-duplicates)")
        return self


class ExportSettings(_Strict):
    """(ours) How the dataset refers to its videos."""

    media_root: Literal["absolute", "relative", "copy", "link"] = Field(
        "absolute", description="`absolute`: the video folder's absolute path (TAO's); `relative`: that folder "
        "relative to step_4_output; `copy`/`link`: the videos copied or hard-linked into <results_dir>/media, "
        "referred to relatively (a self-contained, movable results folder)")
    splits: dict[str, float] = Field(
        {}, description="split name -> share of the videos, e.g. {train: 0.8, val: 0.1, test: 0.1} (shares sum "
        "to 1): step_4_output/<split>/<task>.json, every item of a video in the split its SHA-256 picks (adding "
        "videos moves none); empty: no split, step_4_output/<task>.json")

    @field_validator("splits")
    @classmethod
    def _splits(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [n for n in value if not re.fullmatch(r"[A-Za-z0-9_-]+", n)]
        if bad:
            raise ValueError(f"split names are letters, digits, _ and - (they name folders): {bad}")
        if any(v <= 0 for v in value.values()):
            raise ValueError(f"every split's share must be > 0: {value}")
        if value and abs(sum(value.values()) - 1) > 1e-6:
            raise ValueError(f"split shares must sum to 1 (they sum to {sum(value.values()):g}): {value}")
        return value


class Price(_Strict):
    """(ours) One model's price, USD per 1M tokens."""

    input: float = Field(ge=0, description="uncached input tokens (text, image, video)")
    cached_input: float = Field(ge=0, description="input tokens the provider served from its cache")
    output: float = Field(ge=0, description="output tokens, thinking included")


class Settings(_Strict):
    """The ``video_reasoning_annotation`` block of a TAO spec."""

    vlm: BackendSettings = Field(BackendSettings(), description="the vision-language model (steps 0, 1)")
    llm: BackendSettings = Field(BackendSettings(), description="the text model (steps 1c, 2, 3)")
    workflow: WorkflowSettings = WorkflowSettings()
    data: DataSettings = DataSettings()
    verification: VerificationSettings = Field(VerificationSettings(), description="(ours) checks between "
                                               "steps 3 and 4; they run whenever step 4 does")
    export: ExportSettings = Field(ExportSettings(), description="(ours) how the dataset refers to its videos")
    long_video: LongVideoSettings = Field(LongVideoSettings(), description="(ours) the long-video path: clip "
                                          "captions, a timeline, long-video QA")
    license: Optional[str] = Field("", description="written to each task file's metadata")
    description_extra: Optional[str] = Field("", description="appended to each task file's description")
    prompts_module: Optional[str] = Field("", description="a TAO prompts module (a PROMPT_TEMPLATES dict)")
    prompts: dict[str, str] = Field(default_factory=dict, description="(ours) {<prompt key>: <template>} "
                                    "overrides single prompts")
    pricing: dict[str, Price] = Field(default_factory=dict, description="(ours) {<model>: {input, cached_input, "
                                      "output}} in USD per 1M tokens; adds to or overrides the built-in prices "
                                      "of the default models (video_reasoning/costs.py); a model without a price "
                                      "costs 'unknown'")


    def long_path(self) -> bool:
        """True when a video may take the long-video path: ``workflow.max_video_length_sec``
        admits videos longer than ``long_video``'s threshold (not with TAO's defaults, 300 s
        both)."""
        return self.workflow.max_video_length_sec > self.long_video.threshold(self.workflow)


class Spec(_Strict):
    """A whole TAO spec file (what ``--configfile`` gives Snakemake)."""

    results_dir: str = Field("results", min_length=1, description="where every output goes")
    autolabel_type: Literal["video_reasoning_annotation"] = "video_reasoning_annotation"
    video_reasoning_annotation: Settings = Settings()


def settings_from_config(config: dict) -> Settings:
    """Build :class:`Settings` from the Snakemake ``config`` dict (already schema-validated).

    Raises:
        ConfigError: a value the schema lets through but a model's validator rejects (e.g.
            ``export.splits`` not summing to 1), naming the key.
    """
    try:
        return Settings.model_validate(config.get("video_reasoning_annotation") or {})
    except ValidationError as exc:
        raise ConfigError("; ".join(f"video_reasoning_annotation.{'.'.join(map(str, e['loc']))}: "
                                    f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())) from None




def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model whose fields the spec location ``loc`` (a pydantic error's) lists, walking
    :class:`Spec`'s annotations (through Optional and dict values)."""
    tp: object = Spec
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
        models = [a for a in (get_args(tp) or (tp,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if get_origin(tp) is not dict:
            tp = models[0] if models else tp
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def unknown_keys(config: dict) -> list[str]:
    """Keys of a whole spec (``config``) that the spec models lack, from pydantic's own
    ``extra_forbidden`` errors, each with a close known key when there is one: messages like
    ``video_reasoning_annotation.worklfow (did you mean 'workflow'?)``. Other mistakes are
    left to the schema's ``validate()`` and :func:`settings_from_config`."""
    try:
        Spec.model_validate(config)
        return []
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
    out = []
    for e in errors:
        *parent, key = e["loc"]
        model = _model_at(tuple(parent))
        close = difflib.get_close_matches(str(key), list(model.model_fields), n=1) if model else []
        out.append(".".join(map(str, e["loc"])) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out

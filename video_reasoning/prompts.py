"""The prompt set: our default templates, keyed and parameterised as TAO's.

Keys and placeholders are TAO's (``nvidia-tao-ds``, ``video_reasoning_annotation/prompts.py``),
so a TAO ``prompts_module`` (a module with a ``PROMPT_TEMPLATES`` dict) is a drop-in. The
texts are ours. Templates use ``str.format`` placeholders; a template with none of its
key's placeholders is sent as is (TAO does the same), so literal braces are safe there.

Our templates ask for JSON that the backend enforces with a schema (the key's answer model,
:data:`PROMPT_KEYS`).
Templates from a ``prompts_module`` ask for TAO's free-text ``=====`` blocks instead, and
their answers are parsed as such; the verification keys (``blind_probe``,
``grounded_reanswer``, ``answer_judge``; TAO has no verification) always use ours, in
JSON. Single templates can be overridden in the spec under
``video_reasoning_annotation.prompts``; they keep the JSON schema of their key.
"""

from __future__ import annotations

import importlib
import re
import string
from dataclasses import dataclass

from video_reasoning.config import ConfigError, Settings
from video_reasoning.models import (
    Answer,
    BlindProbeAnswer,
    CaptionAnswer,
    CaptionsAnswer,
    ClassificationAnswer,
    ClipCaptionsAnswer,
    DenseCaptionAnswer,
    DescriptionAnswer,
    FilterAnswer,
    GroundedAnswer,
    HighlightTimeAnswer,
    JudgeAnswer,
    ReformatAnswer,
    ScreeningAnswer,
    SegmentSummaryAnswer,
)
from video_reasoning.qa_types import QA_TYPES
from video_reasoning.store import short_hash

MODES = ("anomaly", "normal")

_QA_CONTEXT = ("video_length", "global_caption", "dense_caption", "chunk_captions_str", "step_2_output",
               "num_items", "min_event_gap")

#: The verification step's prompt keys, by check (ours; TAO has no such step).
VERIFICATION_KEYS = {"blind_probe": "blind_probe", "grounded_reanswer": "grounded_reanswer", "judge": "answer_judge"}
#: The long-video path's prompt keys (ours; LongVideo-Reason's recipe, seed 002), by use.
LONG_VIDEO_KEYS = {"clips": "long_clip_captions", "segment": "long_segment_summary",
                   "reformat": "long_reasoning_reformat"}


@dataclass(frozen=True)
class PromptKey:
    """One prompt key: its answer model, the placeholders its template may use (TAO's names
    where TAO has the key), and whether a TAO ``prompts_module`` provides it (else our
    template is used, answering in JSON, even in a run with such a module)."""

    answer_model: type[Answer]
    placeholders: tuple[str, ...] = ()
    tao: bool = True


_GROUNDING = (
    "Treat the captions as the video itself: write about what the video shows, never about "
    "'captions' or 'descriptions'. Use only facts present in the input; do not invent people, "
    "objects, times or causes. Timestamps are seconds from the start of the video."
)

_QA_INPUT = (
    "\n\nVideo length: {video_length} s\n\n"
    "Overall caption:\n{global_caption}\n\n"
    "Timestamped events:\n{dense_caption}\n\n"
    "Chunk captions:\n{chunk_captions_str}\n\n"
    "Structured description:\n{step_2_output}"
)


def _qa(mode: str, task: str) -> str:
    focus = ("the anomaly: its cause, the moment it happens, who or what is involved, and its consequences"
             if mode == "anomaly" else
             "the routine activity: who does what, in which order, where, and why")
    return f"You write {task} for a video-reasoning dataset about {focus}. {_GROUNDING}" + _QA_INPUT


DEFAULT_PROMPTS: dict[str, str] = {
    "video_filtering": (
        "Decide whether this video is usable for detailed video-reasoning annotation. It is usable "
        "when it shows real-world content with visible actions or events (people, vehicles, animals, "
        "machines or objects moving or interacting) over a continuous shot. It is not usable when it "
        "is mostly a blank, black, white or test-pattern screen, a still picture, a slideshow, a screen "
        "recording of text or software, or so shaky, dark or corrupted that events cannot be followed. "
        "Set suitable accordingly and give a one-sentence reason."
    ),
    "video_anomaly_classification": (
        "Watch the video and decide whether it contains an anomaly or only normal activity. An anomaly "
        "is an unexpected event that breaks the routine of the scene: a collision or near miss, a fall, "
        "a rule violation (running a red light, entering a restricted area), an equipment failure "
        "(spill, fire, breakdown) or a disruptive behaviour (fight, theft, panic). Everything else is "
        "normal. When in doubt, choose normal. First note what you observe, then your reasoning, then "
        "the label."
    ),
    "video_screening": (
        "Watch the video and answer two questions about it.\n"
        "1. Is it usable for detailed video-reasoning annotation? It is usable when it shows real-world "
        "content with visible actions or events (people, vehicles, animals, machines or objects moving or "
        "interacting) over a continuous shot. It is not usable when it is mostly a blank, black, white or "
        "test-pattern screen, a still picture, a slideshow, a screen recording of text or software, or so "
        "shaky, dark or corrupted that events cannot be followed. Set suitable and give a one-sentence reason.\n"
        "2. Does it contain an anomaly or only normal activity? An anomaly is an unexpected event that breaks "
        "the routine of the scene: a collision or near miss, a fall, a rule violation (running a red light, "
        "entering a restricted area), an equipment failure (spill, fire, breakdown) or a disruptive behaviour "
        "(fight, theft, panic). Everything else is normal; when in doubt, choose normal. Note what you "
        "observe, then your reasoning, then the label."
    ),
    "anomaly_captions": (
        "Caption this video, which may contain an anomaly, in two ways.\n"
        "caption: one coherent paragraph on the setting, the main actors and objects (with colours and "
        "positions), what they do in order, the unexpected event and what follows it.\n"
        "events: the events in time order, each with its start and end time in seconds from the start of the "
        "video and a precise description of who does what; give the moments just before, during and after the "
        "anomaly their own events, and cover the whole video.\n"
        "Describe only what is visible."
    ),
    "normal_captions": (
        "Caption this video in two ways.\n"
        "caption: one coherent paragraph on the setting, the main actors and objects (with colours and "
        "positions) and what they do, in order.\n"
        "events: the events in time order, each with its start and end time in seconds from the start of the "
        "video and a precise description of who does what; cover the whole video.\n"
        "Describe only what is visible."
    ),
    "anomaly_global_caption": (
        "Describe this video, which may contain an anomaly, in one coherent paragraph: the setting, "
        "the main actors and objects (with colours and positions), what they do in order, the "
        "unexpected event and what follows it. Describe only what is visible."
    ),
    "normal_global_caption": (
        "Describe this video in one coherent paragraph: the setting, the main actors and objects "
        "(with colours and positions) and what they do, in order. Describe only what is visible."
    ),
    "anomaly_dense_caption": (
        "List the events of this video in time order, each with its start and end time in seconds "
        "from the start of the video and a precise description of who does what. Give the moments "
        "just before, during and after the anomaly their own events. Cover the whole video."
    ),
    "normal_dense_caption": (
        "List the events of this video in time order, each with its start and end time in seconds "
        "from the start of the video and a precise description of who does what. Cover the whole video."
    ),
    "anomaly_chunk_caption": (
        "This is a {chunk_duration}-second part of a longer video that may contain an anomaly. Describe "
        "in detail what happens in this part: actors and objects with colours and positions, their "
        "movements and interactions, and any sign of the unexpected event (its lead-up, the moment "
        "itself, or its aftermath). Describe only what is visible in this part."
    ),
    "normal_chunk_caption": (
        "This is a {chunk_duration}-second part of a longer video. Describe in detail what happens in "
        "this part: actors and objects with colours and positions, their movements and interactions. "
        "Describe only what is visible in this part."
    ),
    "highlight_timestamp_extraction": (
        "Below are captions of a {video_length}-second video that contains an anomaly. Find the single "
        "moment, in seconds from the start, at which the anomaly itself happens (the impact, the fall, "
        "the violation), not its lead-up or aftermath. Cross-check the chunk captions, which describe "
        "short time windows, and quote the evidence you used.\n\n"
        "Overall caption:\n{global_caption}\n\nTimestamped events:\n{dense_caption}\n\n"
        "Chunk captions:\n{chunk_captions_str}"
    ),
    "highlight_chunk_caption": (
        "This {duration}-second clip runs from {start_time} s to {end_time} s of a longer video; the "
        "anomaly is believed to happen near {anomaly_time} s. Describe the clip in three parts: the "
        "state just before the event (positions, motion, conditions), the event itself (what exactly "
        "happens, who is involved, from which direction), and the immediate aftermath (where things "
        "end up, how others react). Identify actors precisely and state only what you can see."
    ),
    "anomaly_description": (
        "Combine the captions of a {video_length}-second video that contains an anomaly into one "
        "structured description: the setting, the actors, a timeline of events with start and end "
        "seconds, the anomaly (what, when, who, why) and a short summary. Where sources disagree, "
        f"prefer the more specific and time-bounded one. {_GROUNDING}\n\n"
        "Overall caption:\n{global_caption}\n\n{dense_section}\n\n{highlight_section}\n\n"
        "Chunk captions:\n{chunk_captions_str}"
    ),
    "blind_probe": (
        "Below are questions about a video you cannot see. Answer each from its wording and general "
        "knowledge alone, choosing one of its lettered options. When the answer depends on what the video "
        "shows, choose the option that says you cannot tell without the video; do not guess.\n\n{items}"
    ),
    "grounded_reanswer": (
        "Watch this {video_length}-second video and answer each question below from what it shows. For a "
        "question with lettered options give the letter; for a yes/no question give Yes or No; for a "
        "question asking when something happens give start-end in seconds from the start of the video "
        "(e.g. 12.5-18); otherwise answer in one to three sentences. Answer every question, by its id.\n\n"
        "{items}"
    ),
    "answer_judge": (
        "Each item below has a question about a video, a proposed answer with its reasoning, and the answer "
        "of a model that watched the video. For each item decide: supported - the proposed answer agrees "
        "with what the watching model saw (details it did not mention are fine; contradictions are not); "
        "reasoning_leads_to_answer - the reasoning is about the video's events and arrives at the proposed "
        "answer. Give a one-sentence note.\n\n{items}"
    ),
    "long_clip_captions": (
        "This part of a long video runs from {start} s to {end} s. It is divided into {num_clips} consecutive "
        "clips of about {clip_sec} s each:\n{clips}\n\nCaption every clip, by its number: who and what is "
        "visible (with colours and positions), what they do and what changes within the clip. Name the same "
        "actors the same way in every clip so events can be followed across clips. Describe only what is "
        "visible in each clip's own time span."
    ),
    "long_segment_summary": (
        "Below is the timeline of the part of a long video from {start} s to {end} s, one line per short clip. "
        "Summarise this part in at most {max_words} words: the actors, what they do in order, what changes, "
        "and anything that starts here and may matter later. Keep the times of the key events in seconds "
        "from the start of the video. Use only what the timeline says.\n\n{timeline}"
    ),
    "long_reasoning_reformat": (
        "Below are questions about a video, each with its answer and a reasoning trace. Rewrite each reasoning "
        "trace so it reads as fluent, logical step-by-step thinking by someone who watched the video: keep "
        "every fact and the conclusion, keep the order of events, and say when things happen in words "
        "(early on, later, near the end, after the crash) instead of seconds or clock times. Never mention "
        "captions, descriptions, timelines or clips. Give the rewritten reasoning for every item, by its id."
        "\n\n{items}"
    ),
    "normal_description": (
        "Combine the captions of a {video_length}-second video into one structured description: the "
        "setting, the actors, a timeline of events with start and end seconds and a short summary; "
        "leave the anomaly field empty. Where sources disagree, prefer the more specific and "
        f"time-bounded one. {_GROUNDING}\n\n"
        "Overall caption:\n{global_caption}\n\n{dense_section}\n\n"
        "Chunk captions:\n{chunk_captions_str}"
    ),
}


def _keys() -> dict[str, PromptKey]:
    keys = {
        "video_filtering": PromptKey(FilterAnswer),
        "video_anomaly_classification": PromptKey(ClassificationAnswer),
        "video_screening": PromptKey(ScreeningAnswer, tao=False),
        "highlight_timestamp_extraction": PromptKey(HighlightTimeAnswer, ("global_caption", "dense_caption",
                                                                          "chunk_captions_str", "video_length")),
        "highlight_chunk_caption": PromptKey(CaptionAnswer, ("anomaly_time", "start_time", "end_time", "duration")),
    }
    for m in MODES:
        keys[f"{m}_global_caption"] = PromptKey(CaptionAnswer)
        keys[f"{m}_dense_caption"] = PromptKey(DenseCaptionAnswer)
        keys[f"{m}_captions"] = PromptKey(CaptionsAnswer, tao=False)
        keys[f"{m}_chunk_caption"] = PromptKey(CaptionAnswer, ("chunk_duration",))
        keys[f"{m}_description"] = PromptKey(DescriptionAnswer, ("video_length", "global_caption", "dense_section",
                                                                 "highlight_section", "chunk_captions_str",
                                                                 "dense_caption"))
    for qa in QA_TYPES.values():
        for m in MODES:
            keys[qa.prompt_key(m)] = PromptKey(qa.answer_model, _QA_CONTEXT, tao=qa.tao)
    lv = LONG_VIDEO_KEYS
    keys[lv["clips"]] = PromptKey(ClipCaptionsAnswer, ("start", "end", "num_clips", "clip_sec", "clips"), tao=False)
    keys[lv["segment"]] = PromptKey(SegmentSummaryAnswer, ("start", "end", "max_words", "timeline"), tao=False)
    keys[lv["reformat"]] = PromptKey(ReformatAnswer, ("items",), tao=False)
    v = VERIFICATION_KEYS
    keys[v["blind_probe"]] = PromptKey(BlindProbeAnswer, ("items",), tao=False)
    keys[v["grounded_reanswer"]] = PromptKey(GroundedAnswer, ("items", "video_length"), tao=False)
    keys[v["judge"]] = PromptKey(JudgeAnswer, ("items",), tao=False)
    return keys


#: Every prompt key: its answer model and placeholders (QA keys from the QA-type registry).
PROMPT_KEYS: dict[str, PromptKey] = _keys()
#: Placeholders each prompt key may use.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {k: v.placeholders for k, v in PROMPT_KEYS.items()}

for _qa_type in QA_TYPES.values():
    if _qa_type.mode_free:
        DEFAULT_PROMPTS[_qa_type.name] = f"{_qa_type.prompt} {_GROUNDING}" + _QA_INPUT
    else:
        for _m in MODES:
            DEFAULT_PROMPTS[_qa_type.prompt_key(_m)] = _qa(_m, _qa_type.prompt)


def model_for_key(prompt_key: str) -> type[Answer]:
    """The answer model of a prompt key (TAO's key names)."""
    return PROMPT_KEYS[prompt_key].answer_model


class PromptSet:
    """The templates in force for a run and where they came from.

    Attributes:
        templates: prompt key -> template text.
        tao_keys: keys whose template comes from a TAO ``prompts_module`` and so answers
            in TAO's free-text format instead of schema-bound JSON.
    """

    def __init__(self, templates: dict[str, str], tao_keys: frozenset[str] = frozenset()):
        self.templates = templates
        self.tao_keys = tao_keys

    def is_tao(self, key: str) -> bool:
        """True when ``key`` answers in TAO's free-text format."""
        return key in self.tao_keys

    def digest(self, keys) -> dict[str, str]:
        """``{key: short hash of its template}`` for ``keys``: what Snakemake params track."""
        return {k: short_hash(self.templates[k]) for k in sorted(set(keys))}

    def render(self, key: str, **values) -> str:
        """The prompt for ``key`` with its placeholders filled from ``values``.

        A template using none of its key's placeholders is returned unchanged.

        Raises:
            ConfigError: when a placeholder has no value (names key and placeholder).
        """
        template = self.templates[key]
        if not placeholders_in(template) & set(PLACEHOLDERS.get(key, ())):
            return template
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"prompt {key!r}: cannot fill placeholder {exc}; allowed: "
                              f"{', '.join(PLACEHOLDERS.get(key, ())) or 'none'}") from None


def placeholders_in(template: str) -> set[str]:
    """Identifier-like ``{name}`` fields of a ``str.format`` template (``{{`` escapes ignored)."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError:
        fields = set(re.findall(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})", template))
    return {f for f in fields if re.fullmatch(r"[A-Za-z_]\w*", f)}


def check_template(key: str, text: str) -> None:
    """Fail early on a template that would not render.

    A key with no placeholders is always sent as is. Otherwise a template that uses an
    unknown ``{name}``, or uses known ones but cannot be filled (stray braces), is an error.

    Raises:
        ConfigError: naming the key, the offending placeholder and the allowed ones.
    """
    allowed = set(PLACEHOLDERS[key])
    if not allowed:
        return
    used = placeholders_in(text)
    unknown = used - allowed
    hint = f"allowed: {', '.join(PLACEHOLDERS[key])}. Write literal braces as '{{{{' and '}}}}'."
    if unknown:
        raise ConfigError(f"prompt {key!r}: unknown placeholder(s) {', '.join(sorted(unknown))}; {hint}")
    if used:
        try:
            text.format(**{k: "" for k in allowed})
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"prompt {key!r}: cannot be filled ({type(exc).__name__}: {exc}); {hint}") from None


def load_prompts(settings: Settings, required: list[str] | tuple[str, ...] = ()) -> PromptSet:
    """The prompt set of a run: defaults, else a TAO ``prompts_module``, then spec overrides.
    ``required``: the prompt keys the run uses (:func:`video_reasoning.steps.prompt_set`
    passes them), which a ``prompts_module`` must provide where TAO has them.

    Raises:
        ConfigError: the module does not import, lacks ``PROMPT_TEMPLATES`` or keys the
            run needs; an override names an unknown key or a placeholder its key lacks.
    """
    templates = dict(DEFAULT_PROMPTS)
    tao_keys: frozenset[str] = frozenset()
    if settings.prompts_module:
        name = settings.prompts_module
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import-time error of user code is a config error
            raise ConfigError(
                f"video_reasoning_annotation.prompts_module: cannot import {name!r} "
                f"({type(exc).__name__}: {exc}). Put its folder on PYTHONPATH or fix the module."
            ) from None
        custom = getattr(module, "PROMPT_TEMPLATES", None)
        if not isinstance(custom, dict):
            raise ConfigError(f"video_reasoning_annotation.prompts_module: {name!r} has no PROMPT_TEMPLATES dict.")
        missing = sorted({k for k in required if PROMPT_KEYS[k].tao} - set(custom))
        if missing:
            raise ConfigError(
                f"video_reasoning_annotation.prompts_module: {name!r} lacks the prompt keys "
                f"{', '.join(missing)} that this run needs (from its steps, mode and qa_types).")
        tao_keys = frozenset(k for k in custom if k in PROMPT_KEYS and PROMPT_KEYS[k].tao)
        templates.update({k: custom[k] for k in tao_keys})
    for key, text in settings.prompts.items():
        if key not in PLACEHOLDERS:
            raise ConfigError(f"video_reasoning_annotation.prompts.{key}: unknown prompt key. "
                              f"Known keys: {', '.join(sorted(PLACEHOLDERS))}.")
        templates[key] = text
    for key, text in templates.items():
        check_template(key, text)
    return PromptSet(templates, tao_keys)


#: Steps whose whole-video calls our prompt set makes as one (ours): the keys of the separate
#: calls (TAO's), by step.
SEPARATE_KEYS = {"0": ("video_filtering", "video_anomaly_classification"),
                 "1a": tuple(f"{m}_{k}" for m in MODES for k in ("global_caption", "dense_caption"))}


def combined(step: str, settings: Settings) -> bool:
    """True when ``step`` (0 or 1a) asks the VLM once, with our combined prompt key
    (``video_screening``: suitability and, in auto mode, the label; ``<mode>_captions``:
    global and dense caption), instead of TAO's separate calls: our prompt set, unless a
    TAO ``prompts_module`` is used or the spec overrides one of the separate keys."""
    if settings.prompts_module:
        return False
    return not any(k in settings.prompts for k in SEPARATE_KEYS.get(step, ()))

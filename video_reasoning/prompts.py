"""The prompt set: our default templates, keyed and parameterised as TAO's.

Keys and placeholders are TAO's (``nvidia-tao-ds``, ``video_reasoning_annotation/prompts.py``),
so a TAO ``prompts_module`` (a module with a ``PROMPT_TEMPLATES`` dict) is a drop-in. The
texts are ours. Templates use ``str.format`` placeholders; a template with none of its
key's placeholders is sent as is (TAO does the same), so literal braces are safe there.

Our templates ask for JSON that the backend enforces with a schema (see ``answers.py``).
Templates from a ``prompts_module`` ask for TAO's free-text ``=====`` blocks instead, and
their answers are parsed as such. Single templates can be overridden in the spec under
``video_reasoning_annotation.prompts``; they keep the JSON schema of their key.
"""

from __future__ import annotations

import importlib
import re
import string

from video_reasoning.config import ConfigError, Settings, short_hash

MODES = ("anomaly", "normal")
#: QA types whose prompt does not depend on the anomaly/normal mode (TAO's split).
MODE_FREE_QA = ("scene_description", "event_summary")

_QA_CONTEXT = ("video_length", "global_caption", "dense_caption", "chunk_captions_str", "step_2_output")
#: Placeholders each prompt key may use (TAO's names).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "video_filtering": (),
    "video_anomaly_classification": (),
    "highlight_timestamp_extraction": ("global_caption", "dense_caption", "chunk_captions_str", "video_length"),
    "highlight_chunk_caption": ("anomaly_time", "start_time", "end_time", "duration"),
    "scene_description": _QA_CONTEXT,
    "event_summary": _QA_CONTEXT,
}
for _m in MODES:
    PLACEHOLDERS[f"{_m}_global_caption"] = ()
    PLACEHOLDERS[f"{_m}_dense_caption"] = ()
    PLACEHOLDERS[f"{_m}_chunk_caption"] = ("chunk_duration",)
    PLACEHOLDERS[f"{_m}_description"] = ("video_length", "global_caption", "dense_section",
                                          "highlight_section", "chunk_captions_str", "dense_caption")
    for _q in ("mcq", "bcq", "open_qa", "temporal_event_desc", "causal_linkage", "temporal_localization"):
        PLACEHOLDERS[f"{_m}_{_q}"] = _QA_CONTEXT

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
    "normal_description": (
        "Combine the captions of a {video_length}-second video into one structured description: the "
        "setting, the actors, a timeline of events with start and end seconds and a short summary; "
        "leave the anomaly field empty. Where sources disagree, prefer the more specific and "
        f"time-bounded one. {_GROUNDING}\n\n"
        "Overall caption:\n{global_caption}\n\n{dense_section}\n\n"
        "Chunk captions:\n{chunk_captions_str}"
    ),
    "scene_description": (
        "You write scene-description items for a video-reasoning dataset. Each item asks to describe "
        "the scene (place, layout, lighting, weather, actors and objects and where they are) and "
        "answers with a faithful, detailed paragraph; the reasoning explains which observations "
        f"support each part of the answer. {_GROUNDING}" + _QA_INPUT
    ),
    "event_summary": (
        "You write video-summarization items for a video-reasoning dataset. Each item asks to "
        "summarise the video and answers with a concise paragraph covering the main events in "
        "order and any anomaly; the reasoning explains how the events connect. "
        f"{_GROUNDING}" + _QA_INPUT
    ),
}

for _m in MODES:
    DEFAULT_PROMPTS[f"{_m}_mcq"] = _qa(_m, (
        "multiple-choice questions. Each question has exactly four options of similar length and "
        "form; exactly one is correct, and each wrong option is clearly contradicted by the video, "
        "not merely less likely. Name the correct option by its letter in the order you wrote them. "
        "The reasoning goes step by step from what is visible to the answer and says why each wrong "
        "option fails. Write 1 to 3 questions that need the video to answer"))
    DEFAULT_PROMPTS[f"{_m}_bcq"] = _qa(_m, (
        "yes/no questions. Balance them: some answered Yes, some No. The explanation justifies the "
        "answer in one or two sentences; the reasoning goes step by step from what is visible to the "
        "answer. Write 1 to 3 questions that need the video to answer"))
    DEFAULT_PROMPTS[f"{_m}_open_qa"] = _qa(_m, (
        "open-ended questions (why, how, what happens after) whose answers are a few precise "
        "sentences, each with a step-by-step reasoning grounded in visible evidence. Write 1 to 3"))
    DEFAULT_PROMPTS[f"{_m}_temporal_event_desc"] = _qa(_m, (
        "temporal event description items. Each names a time window (start and end seconds inside "
        "the video) and asks what happens in it; the answer describes the events of that window in "
        "order, and the reasoning ties them to the surrounding timeline. Write 1 to 3"))
    DEFAULT_PROMPTS[f"{_m}_causal_linkage"] = _qa(_m, (
        "causal linkage items. Each question names two moments (in seconds) and asks how the event at "
        "the first leads to the situation at the second; the answer explains the chain of cause and "
        "effect, and the reasoning walks through the intermediate events. Write 1 to 3"))
    DEFAULT_PROMPTS[f"{_m}_temporal_localization"] = _qa(_m, (
        "temporal localization items. Each asks when a specific, unambiguous event happens; the answer "
        "is its start and end in seconds inside the video. The reasoning states what the scene looks "
        "like before the start, what changes at the start, and why the event is over at the end. "
        "Write 1 to 3"))


def qa_prompt_key(mode: str, qa_type: str) -> str:
    """The prompt key of a QA type for a video of ``mode`` (``anomaly``/``normal``)."""
    return qa_type if qa_type in MODE_FREE_QA else f"{mode}_{qa_type}"


class PromptSet:
    """The templates in force for a run and where they came from.

    Attributes:
        templates: prompt key -> template text.
        tao_format: True when the templates come from a TAO ``prompts_module`` and so
            answer in TAO's free-text format instead of schema-bound JSON.
    """

    def __init__(self, templates: dict[str, str], tao_format: bool):
        self.templates = templates
        self.tao_format = tao_format

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


def load_prompts(settings: Settings) -> PromptSet:
    """The prompt set of a run: defaults, else a TAO ``prompts_module``, then spec overrides.

    Raises:
        ConfigError: the module does not import, lacks ``PROMPT_TEMPLATES`` or keys the
            run needs; an override names an unknown key or a placeholder its key lacks.
    """
    templates = dict(DEFAULT_PROMPTS)
    tao_format = False
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
        missing = sorted(set(required_keys(settings)) - set(custom))
        if missing:
            raise ConfigError(
                f"video_reasoning_annotation.prompts_module: {name!r} lacks the prompt keys "
                f"{', '.join(missing)} that this run needs (from its steps, mode and qa_types).")
        templates.update({k: v for k, v in custom.items() if k in PLACEHOLDERS})
        tao_format = True
    for key, text in settings.prompts.items():
        if key not in PLACEHOLDERS:
            raise ConfigError(f"video_reasoning_annotation.prompts.{key}: unknown prompt key. "
                              f"Known keys: {', '.join(sorted(PLACEHOLDERS))}.")
        templates[key] = text
    for key, text in templates.items():
        check_template(key, text)
    return PromptSet(templates, tao_format)


def step_prompt_keys(step: str, settings: Settings) -> list[str]:
    """Prompt keys a step may use (both modes: the mode is known only after step 0)."""
    wf = settings.workflow
    modes = MODES if wf.mode == "auto" else (wf.mode,)
    if step == "0":
        keys = ["video_filtering"]
        return keys + (["video_anomaly_classification"] if wf.mode == "auto" else [])
    if step == "1a":
        return [f"{m}_{k}" for m in modes for k in ("global_caption", "dense_caption")]
    if step == "1b":
        return [f"{m}_chunk_caption" for m in modes]
    if step == "1c":
        return ["highlight_timestamp_extraction", "highlight_chunk_caption"]
    if step == "2":
        return [f"{m}_description" for m in modes]
    if step.startswith("3:"):
        return sorted({qa_prompt_key(m, step[2:]) for m in modes})
    if step == "3":
        return sorted({qa_prompt_key(m, q) for m in modes for q in wf.qa_types})
    return []


def required_keys(settings: Settings) -> list[str]:
    """Every prompt key the run's steps, mode and qa_types use."""
    steps = settings.workflow.effective_steps()
    keys = set()
    for step in steps:
        keys.update(step_prompt_keys(step, settings))
    if "1c" in steps and settings.workflow.mode == "normal":
        keys -= {"highlight_timestamp_extraction", "highlight_chunk_caption"}
    return sorted(keys)

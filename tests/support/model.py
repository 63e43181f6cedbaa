"""What the stand-in server answers: a model that writes QA items and answers the
verification probes, good by default and, with ``flawed=True``, with the defects real
models have.

A good model writes distinct, video-dependent items whose keys agree with what it "sees";
its blind probe abstains, its grounded re-answer agrees with the key, its judge supports
the answer. A flawed model plants, among good items and deterministically (see
:data:`PLANS`): text-answerable items (common knowledge it answers without the video),
wrong keys (it answers differently when shown the video), unsupported open answers, a
correct option much longer than the others (fixed when re-asked), times past the end of
the video (kept when re-asked), duplicates of another item of the same video, and the
correct option always in position A. On one good item in five its blind probe guesses
instead of abstaining (a uniform guess among the options), which is how good items get
removed by luck. Every item it writes is kept in :attr:`Model.facts` (what it would see),
and every planted one in :attr:`Model.planted` (once, however often it is re-asked).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

#: What a flawed model writes in one call, per QA type, in order (a good model: all "good").
PLANS = {
    "mcq": ("good", "text_answerable", "wrong_key", "long_option", "duplicate"),
    "bcq": ("good", "text_answerable", "wrong_key", "good", "good"),
    "open_qa": ("good", "past_end", "unsupported", "good", "duplicate"),
    "causal_linkage": ("good", "unsupported", "good", "good", "good"),
    "temporal_localization": ("good", "wrong_key", "good", "past_end", "good"),
    "long_reasoning": ("good", "close_events", "good", "good", "good"),
}

#: Seconds per scene of a long video as the stand-in "sees" it (its captions name the scene).
SCENE_S = 120
SCENES = ("a red tram at a platform", "a cyclist on a bridge", "a market stall with fruit", "a dog in a park",
          "a ferry leaving a pier", "a crane on a building site", "a street band on a corner",
          "a snowy road with a plough", "a runner on a beach", "a bakery counter", "a kite over a field",
          "a train crossing a viaduct")


def scene(t: float) -> str:
    """The scene of a long video at ``t`` seconds."""
    return SCENES[int(t // SCENE_S) % len(SCENES)]


#: QA type named by its prompt (our default prompts' wording).
_QA_OF_PROMPT = (("multiple-choice reasoning questions about a long video", "long_reasoning"),
                 ("multiple-choice questions", "mcq"), ("yes/no questions", "bcq"),
                 ("open-ended questions", "open_qa"), ("causal linkage", "causal_linkage"),
                 ("temporal localization", "temporal_localization"),
                 ("temporal event description", "temporal_event_desc"),
                 ("scene-description", "scene_description"), ("video-summarization", "event_summary"))

SUBJECTS = (
    "the courier on a cargo bike", "the woman walking two terriers", "the grey delivery van",
    "the boy flying a red kite", "the street sweeper truck", "the jogger in a yellow vest",
    "the man pushing a pram", "the taxi waiting at the kerb", "the pigeon flock near the fountain",
    "the girl on roller skates", "the bus pulling away", "the cyclist with a trailer",
    "the postman with a trolley", "the couple sharing an umbrella", "the police motorbike",
    "the skateboarder in a hoodie", "the ice-cream vendor", "the scooter rider in a suit",
    "the child chasing a ball", "the tram crossing the square", "the elderly man with a cane",
    "the food truck at the corner", "the runner with headphones", "the window cleaner on a ladder",
    "the tourist group with a guide", "the dog walker with six dogs", "the moving van crew",
    "the busker with a guitar", "the parking attendant", "the mother with twins",
    "the rickshaw driver", "the construction worker in orange", "the woman on a unicycle",
    "the florist unloading crates", "the teenager on a BMX", "the garbage truck",
    "the man reading a newspaper", "the horse-drawn carriage", "the paramedic team",
    "the school group in blue caps",
)
_BLOCK = 8  # subjects per video

_MCQ = (
    ("What colour is the clothing of {s}?", ("Red", "Green", "Blue", "White")),
    ("In which direction does {s} move across the frame?", ("Left to right", "Right to left", "Towards the camera",
                                                           "Away from the camera")),
    ("What is {s} holding when first seen?", ("A paper bag", "A phone", "A water bottle", "Nothing at all")),
    ("Where does {s} stop at the end?", ("By the crossing", "Under the tree", "Beside the bench", "At the shop door")),
)
_COMMON_MCQ = (("How many wheels does an ordinary bicycle have?", ("Two", "Five", "Seven", "Nine"), 0),
               ("What colour is a ripe banana?", ("Yellow", "Blue", "Purple", "Black"), 0))
_BCQ = ("Does {s} pass the camera more than once?", "Does {s} stop before leaving the frame?",
        "Is {s} moving faster than the traffic?", "Does {s} turn around at any point?",
        "Does {s} interact with another person?")
_COMMON_BCQ = (("Does a bicycle normally have pedals?", "Yes"), ("Can an ordinary car fly?", "No"))
_OPEN = ("Why does {s} slow down?", "How does {s} react to the traffic around it?",
         "What happens right after {s} appears?", "What makes {s} change direction?",
         "How does {s} share the space with the others?")
_DOES = ("slows down for a pedestrian", "waits for a gap in the traffic", "speeds up to cross",
         "turns towards the shop fronts", "stops to look around", "keeps to the right edge")
CANNOT = "Cannot tell without watching the video"


def _h(*parts) -> int:
    return int(hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest(), 16)


def norm(text: str) -> str:
    """A question as the model recognises it: lower case, letters and digits only."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def mmss(s: float) -> str:
    s = int(round(s))
    return f"{s // 60:02d}:{s % 60:02d}"


@dataclass
class Fact:
    """What the model sees in the video about one question: the true option text, Yes/No,
    window (s) or answer."""

    truth: object
    guesses: bool = False  # its blind probe guesses on this question instead of abstaining


@dataclass
class Model:
    """The stand-in's model. ``flawed``: plant the defects of :data:`PLANS`."""

    flawed: bool = False
    facts: dict[str, Fact] = field(default_factory=dict)
    planted_by: dict[tuple[int, str, str], str] = field(default_factory=dict)
    blocks: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ dispatch
    def answer(self, schema: dict, prompt: str, reask: bool) -> dict | None:
        """An answer to a request whose schema this model knows, else None."""
        props = schema.get("properties", {})
        if "verdicts" in props:
            return self.judge(prompt)
        if "answers" in props:
            item = _resolve(schema, props["answers"]["items"])
            return self.blind(prompt) if "letter" in item.get("properties", {}) else self.grounded(prompt)
        if "items" in props:
            item = _resolve(schema, props["items"]["items"])
            return self.write(item.get("title", ""), prompt, reask)
        if "captions" in props:
            return self.clip_captions(prompt, reask)
        if "rewrites" in props:
            return self.reformat(prompt, reask)
        if set(props) == {"summary"}:
            return self.segment(prompt, reask)
        return None

    # ------------------------------------------------------------------ long videos
    def clip_captions(self, prompt: str, reask: bool) -> dict:
        """A caption per ``Clip n: a-b s`` line, naming the scene of that part of the video
        (a new scene every :data:`SCENE_S` seconds). Flawed: the first answer leaves out the
        last clip (fixed when re-asked)."""
        clips = [(int(n), float(a), float(b)) for n, a, b in re.findall(r"^Clip (\d+): ([\d.]+)-([\d.]+) s$", prompt,
                                                                          re.M)]
        out = [{"clip": n, "caption": f"{scene(a)} {_DOES[_h(n) % len(_DOES)]} while the camera holds still."}
               for n, a, b in clips]
        if self.flawed and not reask and len(out) > 1:
            out = out[:-1]
        return {"captions": out}

    def segment(self, prompt: str, reask: bool) -> dict:
        """A summary of the segment's timeline in its word limit. Flawed: the first answer is
        three times too long (fixed when re-asked)."""
        limit = int(re.search(r"at most (\d+) words", prompt).group(1))
        lines = re.findall(r"^From ([\d.]+) to ([\d.]+), (.*)$", prompt, re.M)
        first = lines[0] if lines else ("0", "0", "nothing")
        text = f"From {first[0]} s {first[2].split(' while')[0]}, and later the scene continues."
        words = text.split()
        if self.flawed and not reask:  # three times the limit
            return {"summary": " ".join((words * (3 * limit // len(words) + 1))[:3 * limit])}
        return {"summary": " ".join(words[:limit])}

    def reformat(self, prompt: str, reask: bool) -> dict:
        """Each reasoning trace with its times put in words. Flawed: the first answer still
        says "the caption" and a raw time (fixed when re-asked)."""
        out = []
        for qid, reasoning in re.findall(r"^Q(\d+)\. Question: .*?\nReasoning: (.*?)$", prompt, re.M | re.S):
            fluent = re.sub(r"\s*\(?\b\d+(?:\.\d+)?\s*(?:-\s*\d+(?:\.\d+)?\s*)?s\b\)?", "", reasoning)
            fluent = re.sub(r"\b\d{1,2}:\d{2}\b", "then", fluent).replace("  ", " ").strip()
            text = f"First, {fluent[0].lower()}{fluent[1:]}" if fluent else "First, the video shows the scene."
            if self.flawed and not reask:
                text = f"The caption says at 12 s that {text}"
            out.append({"id": int(qid), "reasoning": text})
        return {"rewrites": out}

    # ------------------------------------------------------------------ writing QA
    def write(self, title: str, prompt: str, reask: bool) -> dict | None:
        qa = next((q for text, q in _QA_OF_PROMPT if text in prompt), None)
        m = re.search(r"Video length: ([\d.]+) s", prompt)
        n = re.search(r"Write (\d+)", prompt)
        if qa is None or m is None or title not in ("MCQItem", "BCQItem", "OpenItem", "LocalizationItem",
                                                    "WindowItem", "LongMCQItem"):
            return None
        duration, count = float(m.group(1)), int(n.group(1)) if n else 3
        block = self._block(prompt[prompt.index("Video length:"):])
        subjects = [SUBJECTS[(block * _BLOCK + i) % len(SUBJECTS)] for i in range(_BLOCK)]
        plan = PLANS.get(qa, ()) if self.flawed else ()
        items = []
        for i in range(count):
            kind = plan[i] if i < len(plan) else "good"
            item = (self._long_item(prompt, i, kind, reask) if qa == "long_reasoning" else
                    self._item(qa, kind, i, subjects[i % len(subjects)], duration, items, reask))
            items.append(item)
            if kind != "good":
                with self.lock:
                    self.planted_by.setdefault((block, qa, item["question"]), kind)
        return {"items": items}

    @property
    def planted(self) -> list[dict]:
        """Every planted item: ``{"qa_type", "kind", "question"}``, once per video."""
        with self.lock:
            return [{"qa_type": q, "kind": k, "question": text} for (_, q, text), k in self.planted_by.items()]

    def _block(self, context: str) -> int:
        """The video's block of subjects: one per distinct context (the captions a QA
        prompt carries), in the order first seen, so two videos never share subjects."""
        with self.lock:
            return self.blocks.setdefault(_h(context), len(self.blocks))

    def subject(self, context: str) -> str:
        """The first subject of the video whose QA prompts carry ``context``."""
        return SUBJECTS[self._block(context) * _BLOCK % len(SUBJECTS)]

    def _learn(self, question: str, truth, guesses: bool = False) -> None:
        with self.lock:
            self.facts[norm(question)] = Fact(truth, guesses and self.flawed)

    def _item(self, qa: str, kind: str, i: int, s: str, duration: float, items: list, reask: bool) -> dict:
        if kind == "duplicate":
            dup = dict(items[0])
            dup["question"] = dup["question"].upper().rstrip("?") + " ?!"
            return dup
        guess = _h("guess", s, qa) % 5 == 0 and kind == "good"
        reasoning = f"The video shows {s} throughout; what it does settles the answer."
        if qa == "mcq":
            if kind == "text_answerable":
                q, opts, k = _COMMON_MCQ[i % len(_COMMON_MCQ)]
                self._learn(q, opts[k])
                return {"question": q, "options": list(opts), "correct_option": "A", "reasoning": reasoning}
            template, pool = _MCQ[i % len(_MCQ)]
            q = template.format(s=s)
            truth = pool[_h(norm(q)) % 4]
            key = pool[(pool.index(truth) + 1) % 4] if kind == "wrong_key" else truth
            others = [o for o in pool if o != key]
            shown_key = f"{key}, clearly visible from several angles for the whole clip" if (
                kind == "long_option" and not reask) else key
            self._learn(q, truth, guess)
            return {"question": q, "options": [shown_key, *others], "correct_option": "A", "reasoning": reasoning}
        if qa == "bcq":
            if kind == "text_answerable":
                q, yes_no = _COMMON_BCQ[i % len(_COMMON_BCQ)]
            else:
                q = _BCQ[i % len(_BCQ)].format(s=s)
                yes_no = ("Yes", "No")[_h(norm(q)) % 2]
            self._learn(q, yes_no, guess)
            key = {"Yes": "No", "No": "Yes"}[yes_no] if kind == "wrong_key" else yes_no
            return {"question": q, "answer": key, "explanation": f"{key}, as the video shows.", "reasoning": reasoning}
        if qa == "temporal_localization":
            q = f"When does {s} cross the frame?"
            start = round((_h(norm(q)) % 40) / 100 * duration, 1)
            truth = (start, round(start + 0.3 * duration, 1))
            self._learn(q, truth)
            window = {"wrong_key": (truth[1], round(truth[1] + 0.3 * duration, 1)),
                      "past_end": (duration + 30, duration + 33)}.get(kind, truth)
            return {"question": q, "start_sec": window[0], "end_sec": window[1], "reasoning": reasoning}
        q = _OPEN[i % len(_OPEN)].format(s=s)
        if kind == "past_end":
            q = f"What does {s} do at {mmss(duration + 40)}?"
        truth = f"It {_DOES[_h(norm(q)) % len(_DOES)]}."
        self._learn(q, truth)
        answer = f"It {_DOES[(_h(norm(q)) + 1) % len(_DOES)]}." if kind == "unsupported" else truth
        item = {"question": q, "answer": answer, "reasoning": reasoning}
        if qa == "temporal_event_desc":
            item.update(start_sec=0.0, end_sec=round(min(duration, 2.0), 1))
        return item

    def _long_item(self, prompt: str, i: int, kind: str, reask: bool) -> dict:
        """A long-video question connecting the scene of one timeline line with one at least
        the asked gap later (``close_events``: adjacent lines, fixed when re-asked)."""
        gap = float(re.search(r"at least ([\d.]+) s apart", prompt).group(1))
        lines = [(float(a), float(b), text) for a, b, text in
                 re.findall(r"^From ([\d.]+) to ([\d.]+)[,:] (.*)$", prompt, re.M)]
        first = lines[(i * 7) % max(len(lines) // 2, 1)]
        later = [ln for ln in lines if ln[0] - first[1] >= gap]
        second = lines[min(lines.index(first) + 1, len(lines) - 1)] if (kind == "close_events" and not reask) or \
            not later else later[(i * 3) % len(later)]
        q = f"What does the video show at the place of {scene(first[0])} by the time of {scene(second[0])}?"
        truth = scene(second[0]).capitalize()
        wrong = sorted((x.capitalize() for x in SCENES if x != scene(second[0])),
                       key=lambda x: (abs(len(x) - len(truth)), x))[:3]
        self._learn(q, truth)
        return {"question": q, "options": [truth, *wrong], "correct_option": "A",
                "reasoning": f"Early on ({first[0]:g}-{first[1]:g} s) the video shows {scene(first[0])}; later "
                             f"({second[0]:g}-{second[1]:g} s) it shows {scene(second[0])}, so the answer follows.",
                "kind": ("temporal", "goal", "spatial", "plot")[i % 4],
                "evidence": [{"start_sec": first[0], "end_sec": first[1], "description": scene(first[0])},
                             {"start_sec": second[0], "end_sec": second[1], "description": scene(second[0])}]}

    # ------------------------------------------------------------------ verification
    def blind(self, prompt: str) -> dict:
        out = []
        for qid, question, options in _questions(prompt):
            fact = self.facts.get(norm(question))
            common = {norm(q): opts[k] for q, opts, k in _COMMON_MCQ} | {norm(q): a for q, a in _COMMON_BCQ}
            letter = "ABCDE"[len(options) - 1] if options else "A"
            if norm(question) in common and common[norm(question)] in options:
                letter = "ABCDE"[options.index(common[norm(question)])]
            elif fact and fact.guesses:
                letter = "ABCDE"[_h(question, *options) % (len(options) - 1)]
            out.append({"id": qid, "letter": letter})
        return {"answers": out}

    def grounded(self, prompt: str) -> dict:
        out = []
        for qid, question, options in _questions(prompt):
            fact = self.facts.get(norm(question))
            how = re.search(rf"Q{qid} \(([^)]*)\)", prompt).group(1)
            if how == "letter":
                truth = fact.truth if fact else options[0]
                hit = next((i for i, o in enumerate(options) if o.startswith(str(truth))), 0)
                text = "ABCD"[hit]
            elif how == "Yes or No":
                text = fact.truth if fact else "Yes"
            elif how.startswith("start-end"):
                w = fact.truth if fact else (1.0, 3.0)
                text = f"{w[0]:g}-{w[1]:g}"
            else:
                text = fact.truth if fact else "A cyclist rides by."
            out.append({"id": qid, "answer": text})
        return {"answers": out}

    def judge(self, prompt: str) -> dict:
        out = []
        for m in re.finditer(r"^Q(\d+)\. Question: (.*?)\n\s*Proposed answer: (.*?)\n\s*Reasoning: .*?\n\s*"
                             r"Answer of the model that watched the video: (.*?)$", prompt, re.M | re.S):
            fact = self.facts.get(norm(m.group(2).strip()))
            proposed = m.group(3).strip()
            out.append({"id": int(m.group(1)), "supported": fact is None or norm(proposed) == norm(str(fact.truth)),
                        "reasoning_leads_to_answer": True, "note": "compared with what was seen"})
        return {"verdicts": out}


def _resolve(schema: dict, node: dict) -> dict:
    if "$ref" in node:
        return schema["$defs"][node["$ref"].split("/")[-1]]
    return node


def _questions(prompt: str) -> list[tuple[int, str, list[str]]]:
    """``(id, question, options)`` of the ``Q<id>`` blocks of a verification prompt."""
    out = []
    for m in re.finditer(r"^Q(\d+)(?: \([^)]*\))?\. (.*?)\n?(?=^Q\d+|\Z)", prompt, re.M | re.S):
        lines = m.group(2).strip().split("\n")
        options = [re.sub(r"^\s*[A-E]\. ", "", x) for x in lines[1:] if re.match(r"^\s*[A-E]\. ", x)]
        out.append((int(m.group(1)), lines[0].strip(), options))
    return out

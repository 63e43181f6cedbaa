"""Which verified items go into the dataset, per QA type over every video (rule
select_items): the verification policy, near-duplicate questions within a video and
across videos (rapidfuzz), and ``workflow.items_per_type``."""

from __future__ import annotations

from rapidfuzz import fuzz, process, utils

from video_reasoning.qa_types import QA_TYPES
from video_reasoning.records import (
    ItemCheck,
    SelectedItem,
    SelectionRecord,
    Status,
    VerificationRecord,
    read_record,
    write_record,
)
from video_reasoning.verification import fail, key_text


def _norm(text: str) -> str:
    return utils.default_process(text)


def _rank(it: ItemCheck) -> tuple:
    """Best first: items that passed every check, then those fewer blind probes answered,
    then the order the LLM wrote them in."""
    return (bool(it.failed), it.blind_hits, it.index)


def select(qa_type: str, records: list[tuple[str, VerificationRecord]], policy: str, dedupe: bool,
           similarity: float, per_video: int) -> SelectionRecord:
    """The items of ``qa_type`` that go into the dataset, over every video.

    ``records`` are ``(video id, verification record)``, taken in video-id order. Within a
    video items are taken best first (:func:`_rank`). With ``dedupe``, an item is a
    duplicate when its normalised question scores ``similarity`` or more (rapidfuzz
    ``token_sort_ratio``, 0-100) against an item already taken from the same video, or
    when both question and key do against an item taken from another video (the same
    question on two videos with different answers is two items). ``policy`` ``drop``
    leaves out items that failed a check and duplicates; ``flag`` keeps them. At most
    ``per_video`` items that passed every check are kept per video; the rest are removed
    as ``surplus``. Removed items keep the reasons in ``failed``.
    """
    kind = QA_TYPES[qa_type].verify
    kept, removed = [], []
    taken_q: list[str] = []
    taken_a: list[str] = []
    for vid, rec in sorted(records, key=lambda r: r[0]):
        if rec.status is not Status.DONE:
            continue
        own: list[str] = []
        clean = 0
        for it in sorted((i for i in rec.items if i.qa_type == qa_type), key=_rank):
            sel = SelectedItem(**it.model_dump(), vid=vid, path=rec.path, sha256=rec.sha256)
            q, a = _norm(it.item["question"]), _norm(key_text(kind, it.item))
            if dedupe:
                _mark_duplicate(sel, q, a, own, taken_q, taken_a, similarity)
            if sel.failed and policy == "drop":
                removed.append(sel)
                continue
            if not sel.failed:
                if clean >= per_video:
                    sel.failed.append("surplus")
                    sel.findings.append(f"surplus: {per_video} better items of this video were kept "
                                        "(workflow.items_per_type)")
                    removed.append(sel)
                    continue
                clean += 1
            kept.append(sel)
            own.append(q)
            taken_q.append(q)
            taken_a.append(a)
    return SelectionRecord(status=Status.DONE, qa_type=qa_type, policy=policy, kept=kept, removed=removed)


def _mark_duplicate(sel: SelectedItem, q: str, a: str, own: list[str], taken_q: list[str], taken_a: list[str],
                    similarity: float) -> None:
    same_video = process.extractOne(q, own, scorer=fuzz.token_sort_ratio, score_cutoff=similarity) if own else None
    if same_video:
        fail(sel, "duplicates", f"question repeats '{same_video[0]}' of the same video "
                                f"(similarity {same_video[1]:.0f})")
        return
    for match, score, i in process.extract(q, taken_q, scorer=fuzz.token_sort_ratio, score_cutoff=similarity,
                                           limit=None):
        if match not in own and fuzz.token_sort_ratio(a, taken_a[i]) >= similarity:
            fail(sel, "duplicates", f"question and answer repeat '{match}' of another video (similarity "
                                    f"{score:.0f})")
            return


def write_selection(qa_type: str, records: dict[str, str], output: str, policy: str, dedupe: bool,
                    similarity: float, per_video: int) -> SelectionRecord:
    """Read the verification records (``{video id: path}``), :func:`select` the items of
    ``qa_type`` and write the selection record to ``output``; returns it.

    Raises:
        RecordError: a verification record of another schema version.
    """
    recs = [(vid, read_record(path, VerificationRecord)) for vid, path in records.items()]
    sel = select(qa_type, [(v, r) for v, r in recs if r is not None], policy, dedupe, similarity, per_video)
    write_record(output, sel)
    return sel

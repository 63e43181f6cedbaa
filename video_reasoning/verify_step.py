"""The verification step (ours, between steps 3 and 4): every step-3 item of a video
checked for form, asked without the video (blind probes), re-answered from it (grounded
re-answer) and, when open-ended, judged. The checks and their scoring are
:mod:`video_reasoning.verification`'s; this module makes the calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from video_reasoning import long_video, verification
from video_reasoning.context import VideoContext
from video_reasoning.media import MediaRef
from video_reasoning.prompts import VERIFICATION_KEYS
from video_reasoning.records import Status, VerificationRecord
from video_reasoning.steps import VERIFY


def step_verify(job: VideoContext) -> VerificationRecord:
    """Check every step-3 item of the video (:mod:`video_reasoning.verification`): structure
    without a call; the two blind probes (LLM) and the grounded re-answer (VLM, whole video)
    side by side, each one call for all items; then the judge (LLM, one call) on the
    open-ended items. At most four calls per video, and on a long video one more per item
    with evidence events (its grounded re-answer over the window they span)."""
    ver = job.settings.verification
    probe = job.probe
    cands = verification.candidates(job.qa)
    checks = {c.id: verification.result(c) for c in cands}
    rec = VerificationRecord(status=Status.DONE, video_id=job.vid, path=job.video_path, sha256=probe.sha256,
                             duration=probe.duration, checks=list(ver.checks()))
    lv = job.settings.long_video
    if "structure" in rec.checks:
        for c in cands:
            for problem in long_video.item_problems(c.kind, c.item, probe.duration, lv.min_event_gap_sec):
                verification.fail(checks[c.id], "structure", problem)
    blind = verification.blind_items(cands) if ver.blind_probe else []
    grounded = cands if ver.grounded_reanswer else []
    groups = _grounded_groups(job, grounded)
    llm = job.client("llm", VERIFY)
    vlm = job.client("vlm", VERIFY)
    try:
        with ThreadPoolExecutor(max_workers=verification.BLIND_PROBES + len(groups)) as pool:  # slots bound them
            probes = [pool.submit(job.ask, llm, VERIFICATION_KEYS["blind_probe"],
                                  {"items": verification.render_blind(blind, p)}, check=verification.blind_check(blind))
                      for p in range(verification.BLIND_PROBES)] if blind else []
            seen = [(group, pool.submit(job.ask, vlm, VERIFICATION_KEYS["grounded_reanswer"],
                                        {"items": verification.render_grounded(group),
                                         "video_length": f"{probe.duration:.1f}"},
                                        media, check=verification.grounded_check(group)))
                    for media, group in groups]
            probes = [f.result() for f in probes]
            seen = [(group, f.result()) for group, f in seen]
        for p in probes:
            rec.calls.append(p.record())
        verification.score_blind_probes(blind, probes, checks)
        answers = {}
        for group, reply in seen:
            rec.calls.append(reply.record())
            answers.update(verification.score_grounded_reply(group, reply, ver.min_iou, checks))
        opened = [c for c in grounded if c.kind == "open"]
        if ver.judge and opened:
            judged = job.ask(llm, VERIFICATION_KEYS["judge"], {"items": verification.render_judge(opened, answers)},
                             check=verification.judge_check(opened))
            rec.calls.append(judged.record())
            verification.score_judge_reply(judged, checks)
    finally:
        llm.close()
        vlm.close()
    rec.items = list(checks.values())
    return rec


#: Seconds of video shown before the first and after the last evidence event of a
#: long-video item in its grounded re-answer.
EVIDENCE_PAD_S = 5.0


def _grounded_groups(job: VideoContext, grounded: list) -> list[tuple[MediaRef, list]]:
    """The grounded re-answer's calls: ``(media, items)``. Items with evidence events on a
    long video are each asked over the window their events span (padded by
    :data:`EVIDENCE_PAD_S`); every other item in one call over the whole video."""
    probe = job.probe
    long = long_video.is_long(job.settings, probe.duration)
    windowed = [c for c in grounded if long and c.item.get("evidence")]
    rest = [c for c in grounded if c not in windowed]
    groups = [(MediaRef(probe), rest)] if rest else []
    for c in windowed:
        ev = c.item["evidence"]
        start = max(0.0, min(e["start_sec"] for e in ev) - EVIDENCE_PAD_S)
        end = min(probe.duration, max(e["end_sec"] for e in ev) + EVIDENCE_PAD_S)
        groups.append((MediaRef(probe, round(start, 3), round(end, 3)) if end - start >= 2 else MediaRef(probe), [c]))
    return groups



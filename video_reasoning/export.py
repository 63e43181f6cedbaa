"""Step 4: tao-vl-reason-v1.0 task files, validated with DAFT before they are put in place.

The envelope is DAFT's ``tao-vl-reason-v1.0`` (``nvidia-tao-daft``); the tasks, their
descriptions and how a step-3 item becomes dataset items come from the QA-type registry
(:mod:`video_reasoning.qa_types`). The items are those rule select_items kept
(:class:`~video_reasoning.records.SelectionRecord`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from video_reasoning.qa_types import QA_TYPES, task
from video_reasoning.records import SelectionRecord, read_record
from video_reasoning.store import atomic_write_json

FORMAT = "tao-vl-reason-v1.0"


def video_id_of(path: str, media_root: str | None) -> str:
    """A video's ``video_id`` in the dataset: its path under ``media_root``."""
    return os.path.relpath(path, media_root) if media_root else path


def split_of(sha256: str, splits: dict[str, float]) -> str:
    """The split of a video: ``splits`` (name -> share, summing to 1) as consecutive ranges
    of [0, 1) in name order (so reordering the spec's keys moves nothing), and the video's
    place in them the first 64 bits of its content hash (hex SHA-256) over 2**64. A video's
    split depends on its content and the shares only: adding videos moves none, exact copies
    share a split, and all items of a video are in one split (VideoKR splits by video, seed
    003).

    Raises:
        ValueError: ``splits`` is empty.
    """
    if not splits:
        raise ValueError("split_of needs at least one split")
    place = int(sha256[:16], 16) / 2**64
    edge = 0.0
    for name, share in sorted(splits.items()):
        edge += share
        if place < edge:
            return name
    return name  # shares summing to 1 - 1e-6: the last split takes the rest


def video_hash(path: str, sha256: str) -> str:
    """The hex SHA-256 a video is split by: its content hash, or (no hash recorded) that of
    its path."""
    return sha256 or hashlib.sha256(path.encode()).hexdigest()


def items_for(selection: SelectionRecord, media_root: str | None, split: str | None = None,
              splits: dict[str, float] | None = None) -> dict[str, list[dict]]:
    """Dataset items of the kept items of one QA type, per output task of the type.

    Items get ``item_index`` ``<video_id>:<qa_type>:<n>`` (``n``: the item's index in its
    step-3 record). With ``split``, only the items of the videos :func:`split_of` puts in
    it. Choices that must look random (the MCQ option order) are seeded with
    the video's SHA-256 and the question, so the same video and question give the same
    dataset items wherever the dataset is built.
    """
    qa = QA_TYPES[selection.qa_type]
    out = {t.name: [] for t in qa.tasks}
    for it in kept_in(selection, split, splits):
        video_id = video_id_of(it.path, media_root)
        base = {"video_id": video_id, "reasoning": it.item["reasoning"],
                "item_index": f"{video_id}:{qa.name}:{it.index}", "content": it.sha256 or video_id}
        for name, item in qa.dataset_items(it.item, base).items():
            out[name].append(item)
    return out


def kept_in(selection: SelectionRecord, split: str | None, splits: dict[str, float] | None) -> list:
    """The kept items of ``selection`` in ``split`` (all of them without a split)."""
    if not split:
        return list(selection.kept)
    return [it for it in selection.kept if split_of(video_hash(it.path, it.sha256), splits) == split]


def envelope(task_name: str, items: list[dict], media_root: str | None, license_: str, description_extra: str) -> dict:
    """A tao-vl-reason-v1.0 annotation file for ``task_name``."""
    description = task(task_name).description + (f" {description_extra}" if description_extra else "")
    return {
        "format": FORMAT,
        "metadata": {"type": "annotation", "task": task_name, "date": date.today().isoformat(),
                     "description": description, "license": license_ or ""},
        "media_root": media_root,
        "items": items,
    }


def validate_with_daft(path: str) -> list[str]:
    """Errors DAFT's ``tao-vl-reason-v1.0`` validator finds in one annotation file
    (schema, and every item's media resolving to an existing file); empty when valid.

    DAFT validates a folder; the file is validated alone in a temporary one, with a
    relative ``media_root`` (resolved by DAFT against the annotation's folder) made
    absolute for it.
    """
    from nvidia_tao_daft.validators.tao_vl_reason_v1_0 import TaoVlReasonV1_0Validator

    folder = tempfile.mkdtemp(prefix="daft-")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        root = data.get("media_root") if isinstance(data, dict) else None
        if isinstance(root, str) and not os.path.isabs(root):
            data["media_root"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), root))
        with open(os.path.join(folder, os.path.basename(path)), "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        with contextlib.redirect_stdout(io.StringIO()):
            result = TaoVlReasonV1_0Validator().validate_dataset(Path(folder))
        if result.files_checked != 1:
            return [f"{path}: DAFT did not recognise it as a {FORMAT} file"]
        return list(result.errors)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stage_media(path: str, dest: str, mode: str) -> None:
    """Put the video ``path`` at ``dest`` by ``mode`` (``copy`` or ``link``: a hard link,
    or a copy where the filesystem cannot link), atomically; nothing when ``dest`` already
    is that (a link to ``path``; a file of its size)."""
    if os.path.isfile(dest) and (os.path.samefile(path, dest) if mode == "link" else
                                 os.path.getsize(dest) == os.path.getsize(path)):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        if mode == "link":
            try:
                os.link(path, tmp)
            except OSError:  # another filesystem, or links not allowed: copy instead
                shutil.copyfile(path, tmp)
        else:
            shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_task(task_name: str, selection_file: str, output: str, media_root: str | None,
               license_: str, description_extra: str, media_mode: str = "absolute",
               media_dir: str | None = None, split: str | None = None, splits: dict[str, float] | None = None) -> int:
    """Write the tao-vl-reason-v1.0 file of ``task_name`` from the selection record of its
    QA type; returns its item count.

    Only videos whose items were verified contribute (rejected, skipped, blocked and
    failed videos have none). ``media_mode`` (``export.media_root``) sets the file's
    ``media_root``: ``absolute`` (the videos' folder, ``media_root``), ``relative`` (that
    folder relative to the output's folder), ``copy``/``link`` (the videos staged under
    ``media_dir`` at their ``video_id``, referred to relatively). The file is written to a
    temporary path, validated with DAFT, then renamed.

    Raises:
        ValueError: DAFT rejects the file (the message lists its errors).
        RecordError: a selection record of another schema version.
    """
    selection = read_record(selection_file, SelectionRecord)
    items = items_for(selection, media_root, split, splits)[task_name]
    here = os.path.dirname(os.path.abspath(output))
    root_field = media_root
    if media_mode == "relative" and media_root:
        root_field = os.path.relpath(media_root, here)
    elif media_mode in ("copy", "link") and media_dir:
        for it in kept_in(selection, split, splits):
            stage_media(it.path, os.path.join(media_dir, video_id_of(it.path, media_root)), media_mode)
        root_field = os.path.relpath(media_dir, here)
    tmp = output + ".check.json"
    atomic_write_json(tmp, envelope(task_name, items, root_field, license_, description_extra))
    errors = validate_with_daft(tmp)
    if errors:
        os.remove(tmp)
        raise ValueError(f"{output}: DAFT validation failed: " + "; ".join(errors[:10]))
    os.replace(tmp, output)
    return len(items)

"""Video reasoning annotation: the Python side of the Snakemake workflow (see README.md).

Registries (each fact in one place): ``steps`` (steps with their function, prompts, fan-out
and the settings they read; jobs; every path), ``qa_types``
(QA types and their output tasks), ``config`` (the spec models; ``specdoc`` generates the
schema, defaults and README table from them), ``prompts`` (prompt keys, answer models,
default templates), ``providers`` (one adapter per backend).

Data: ``records`` (typed step records), ``models`` (answer models, TAO free-text parsing).
Work: ``runner`` (one per-video job for Snakemake), ``context`` (one video as its steps see
it), ``caption_steps`` (0, 1a-1c), ``qa_steps`` (2, 3), ``verify_step``, ``verification``
(checks and scoring), ``selection``, ``export`` (step 4, DAFT), ``summary``, ``keys`` (API keys),
``client`` (cache -> call slot -> adapter -> validation), ``cache``, ``retry``, ``slots``,
``media`` (ffprobe/ffmpeg), ``inputs`` (discovery, ids), ``store`` (atomic writes).
"""

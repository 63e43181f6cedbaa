"""Video reasoning annotation: the Python side of the Snakemake workflow (see README.md).

Registries (each fact in one place): ``steps`` (steps, jobs and every path), ``qa_types``
(QA types and their output tasks), ``config`` (the spec models; ``specdoc`` generates the
schema, defaults and README table from them), ``prompts`` (prompt keys, answer models,
default templates), ``providers`` (one adapter per backend).

Data: ``records`` (typed step records), ``models`` (answer models, TAO free-text parsing).
Work: ``pipeline`` (steps 0-3, the job runner), ``export`` (step 4, DAFT), ``summary``,
``client`` (cache -> call slot -> adapter -> validation), ``cache``, ``retry``, ``slots``,
``media`` (ffprobe/ffmpeg), ``inputs`` (discovery, ids), ``store`` (atomic writes).
"""

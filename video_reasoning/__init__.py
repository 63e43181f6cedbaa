"""Video reasoning annotation: the Python side of the Snakemake workflow (see README.md).

Modules: ``config`` (spec model and checks), ``inputs`` (discovery, video ids), ``media``
(ffprobe/ffmpeg), ``backends`` (Gemini and OpenAI-compatible clients, cache, retries, call
slots), ``prompts``, ``models`` (answer schemas, TAO free-text parsing), ``pipeline`` (steps
0-3), ``export`` (step 4, DAFT validation, summary), ``store`` (atomic writes).
"""

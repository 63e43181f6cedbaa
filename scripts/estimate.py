"""Snakemake script of rule estimate: estimate.json, and its gist on the terminal."""

import sys

from video_reasoning.config import settings_from_config
from video_reasoning.estimate import estimate, report
from video_reasoning.inputs import discover
from video_reasoning.steps import prompt_set
from video_reasoning.store import atomic_write_json, read_json

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
settings = settings_from_config(smk.config)
est = estimate(settings, prompt_set(settings), discover(settings.data), smk.config["results_dir"],
               read_json(smk.input[0]) or {})
atomic_write_json(smk.output[0], est)
text = f"{smk.output[0]}:\n{report(est)}\n"
with open(smk.log[0], "w", encoding="utf-8") as fh:
    fh.write(text)
print(text, file=sys.stderr)

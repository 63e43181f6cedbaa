"""Snakemake script of rule dataset_card: DATASET.md from summary.json (video_reasoning.card)."""

import logging
import os

from video_reasoning.card import card
from video_reasoning.config import settings_from_config
from video_reasoning.store import atomic_write_text, read_json

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
results_dir = smk.config["results_dir"]
name = f"Video reasoning QA: {os.path.basename(os.path.abspath(results_dir))}"
text = card(read_json(smk.input[0]), settings_from_config(smk.config), smk.params.tasks, smk.params.prompt_set,
            smk.params.prompt_hash, name)
atomic_write_text(smk.output[0], text)
logging.info("%s: %d bytes", smk.output[0], len(text.encode()))

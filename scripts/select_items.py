"""Snakemake script of rule select_items: the items of one QA type that go into the dataset."""

import logging

from video_reasoning.config import settings_from_config
from video_reasoning.selection import write_selection
from video_reasoning.steps import VERIFY, step_path

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
settings = settings_from_config(smk.config)
ver = settings.verification
records = {v: step_path(smk.config["results_dir"], VERIFY, v) for v in smk.params.vids}
sel = write_selection(smk.wildcards.qa_type, records, smk.output[0], policy=ver.policy, dedupe=ver.duplicates,
                      similarity=ver.duplicate_similarity, per_video=settings.workflow.items_per_type)
logging.info("%s: %d items kept, %d removed", smk.output[0], len(sel.kept), len(sel.removed))

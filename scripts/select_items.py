"""Snakemake script of rule select_items: the items of one QA type that go into the dataset."""

import logging

from video_reasoning.steps import VERIFY, step_path
from video_reasoning.verification import write_selection

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
records = {v: step_path(smk.config["results_dir"], VERIFY, v) for v in smk.params.vids}
sel = write_selection(smk.wildcards.qa_type, records, smk.output[0], **smk.params.selection)
logging.info("%s: %d items kept, %d removed", smk.output[0], len(sel.kept), len(sel.removed))

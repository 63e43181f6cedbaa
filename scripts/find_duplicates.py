"""Snakemake script of rule find_duplicates: duplicate videos, before any model call."""

import logging

from video_reasoning.duplicates import write_duplicates
from video_reasoning.steps import cache_path

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
found = write_duplicates([tuple(v) for v in smk.params.videos], cache_path(smk.config["results_dir"]), smk.output[0],
                         workers=smk.threads)
logging.info("%s: %d duplicates (%d exact)", smk.output[0], len(found),
             sum(m["kind"] == "exact" for m in found.values()))

"""Snakemake script of rule write_task (step 4): one DAFT-validated tao-vl-reason-v1.0 task file."""

import logging

from video_reasoning.config import settings_from_config
from video_reasoning.export import write_task

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
settings = settings_from_config(smk.config)
n = write_task(smk.wildcards.task, smk.input[0], smk.output[0], smk.params.media_root, settings.license or "",
               settings.description_extra or "", settings.export.media_root, smk.params.media_dir,
               split=smk.wildcards.get("split"), splits=settings.export.splits)
logging.info("%s: %d items, DAFT-valid", smk.output[0], n)

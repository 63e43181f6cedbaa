"""Snakemake script of step 4: one DAFT-validated tao-vl-reason-v1.0 task file."""

import logging

from video_reasoning.export import write_task

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
n = write_task(
    snakemake.wildcards.task,  # noqa: F821
    list(snakemake.input),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    snakemake.params.media_root,  # noqa: F821
    snakemake.params.license,  # noqa: F821
    snakemake.params.description_extra,  # noqa: F821
)
logging.info("%s: %d items, DAFT-valid", snakemake.output[0], n)  # noqa: F821

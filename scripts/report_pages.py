"""Snakemake script of rule report_pages: the report's figures and pages (video_reasoning.report)."""

import logging

from video_reasoning.report import write_report
from video_reasoning.store import read_json

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
summary = read_json(smk.input[0])
write_report(smk.config["results_dir"], summary, smk.params.qa_types, smk.params.tasks, smk.params.splits,
             smk.params.media_root, dict(smk.output.items()))

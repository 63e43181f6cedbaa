"""Snakemake script of rule summarize: summary.json from every record on disk."""

from video_reasoning.config import settings_from_config
from video_reasoning.summary import write_summary

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
write_summary(smk.config["results_dir"], [tuple(v) for v in smk.params.videos], smk.params.qa_types,
              smk.params.steps, settings_from_config(smk.config), log_file=smk.log[0],
              media_root=smk.params.media_root)

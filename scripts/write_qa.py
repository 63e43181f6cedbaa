"""Snakemake script of rule write_qa (steps 2, 3): see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "write_qa")  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake script of step 0: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "0")  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake script of step 1: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "1")  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake script of step 2: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "2")  # noqa: F821 (snakemake is injected by the script directive)

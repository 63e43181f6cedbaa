"""Snakemake script of step 2 and 3: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "23")  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake script of step 1c: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "1c")  # noqa: F821 (snakemake is injected by the script directive)

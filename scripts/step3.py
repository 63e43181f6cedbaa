"""Snakemake script of step 3: see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "3")  # noqa: F821 (snakemake is injected by the script directive)

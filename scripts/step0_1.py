"""Snakemake script of steps 0 and 1 (1a, 1b, 1c): see video_reasoning.pipeline."""

from video_reasoning.pipeline import run_job

run_job(snakemake, "01")  # noqa: F821 (snakemake is injected by the script directive)

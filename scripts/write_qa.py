"""Snakemake script of rule write_qa (steps 2, 3): see video_reasoning.runner."""

from video_reasoning.runner import run_job

run_job(snakemake, "write_qa")  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake script of rule verify_qa (the verification step): see video_reasoning.runner."""

from video_reasoning.runner import run_job

run_job(snakemake, "verify_qa")  # noqa: F821 (snakemake is injected by the script directive)

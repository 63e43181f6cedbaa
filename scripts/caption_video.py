"""Snakemake script of rule caption_video (steps 0, 1a, 1b, 1c): see video_reasoning.runner."""

from video_reasoning.runner import run_job

run_job(snakemake, "caption_video")  # noqa: F821 (snakemake is injected by the script directive)

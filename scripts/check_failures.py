"""Snakemake script of rule check_failures: fail the run, naming them, when videos failed."""

import sys

from video_reasoning.summary import FailedVideos, check_failures

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
try:
    check_failures(smk.input[0], smk.log[0])
except FailedVideos as exc:
    sys.exit(str(exc))

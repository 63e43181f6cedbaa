"""Snakemake script of rule shard_done: the marker that a shard's videos are all annotated."""

import logging

from video_reasoning.store import atomic_write_json

smk = snakemake  # noqa: F821 (snakemake is injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, force=True)
atomic_write_json(smk.output[0], {"shard": smk.params.shard, "shards": smk.params.shards,
                                  "videos": list(smk.params.videos)})
logging.info("%s: shard %d of %d, %d videos", smk.output[0], smk.params.shard, smk.params.shards,
             len(smk.params.videos))

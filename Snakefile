# Video reasoning annotation: a folder of videos -> a tao-vl-reason-v1.0 QA dataset.
# Steps 0-4 of the TAO "Video Reasoning Annotation" pipeline, one rule file per stage.
#
#   snakemake --cores 4 --configfile spec.yaml

from snakemake.utils import min_version

min_version("9.19")


include: "rules/common.smk"
include: "rules/find_duplicates.smk"
include: "rules/caption_video.smk"
include: "rules/write_qa.smk"
include: "rules/verify_qa.smk"
include: "rules/dataset.smk"
include: "rules/report.smk"
include: "rules/estimate.smk"


rule all:
    default_target: True
    input:
        all_targets(),

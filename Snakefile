# Video reasoning annotation: a folder of videos -> a tao-vl-reason-v1.0 QA dataset.
# Steps 0-4 of the TAO "Video Reasoning Annotation" pipeline, one rule file per stage.
#
#   snakemake --cores 4 --configfile spec.yaml

from snakemake.utils import min_version

min_version("9.19")


include: "rules/common.smk"
include: "rules/step0_1.smk"
include: "rules/step2_3.smk"
include: "rules/step4.smk"


rule all:
    input:
        all_targets(),
    default_target: True


onsuccess:
    summarize()


onerror:
    summarize()

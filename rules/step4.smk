# Step 4: one tao-vl-reason-v1.0 file per task (TAO's ten), validated with nvidia-tao-daft.
# A task reads only its QA type's step-3 files, so a prompt edit rewrites only its tasks.


def task_inputs(wildcards):
    qa = next(q for q in QA_TYPES if wildcards.task in TASKS[q])
    return [f"{R}/step_3/{qa}/{v}.json" for v in VIDEOS]


rule step4_output:
    input:
        task_inputs,
    output:
        f"{R}/step_4_output/{{task}}.json",
    params:
        media_root=MEDIA_ROOT,
        license=SETTINGS.license or "",
        description_extra=SETTINGS.description_extra or "",
    log:
        f"{R}/logs/step_4/{{task}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step4.py"

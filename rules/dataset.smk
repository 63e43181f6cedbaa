# Step 4: one tao-vl-reason-v1.0 file per task, validated with nvidia-tao-daft. A task reads
# only its QA type's step-3 records, so a prompt edit rewrites only its tasks. Then the run
# summary, from every record on disk, and a check that fails the run when a video failed
# (after the dataset of every other video and the summary are written).


localrules:
    summarize,
    check_failures,


rule write_task:
    input:
        task_inputs,
    output:
        registry.task_path(R),
    log:
        registry.log_path(R, "write_task", "{task}"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        media_root=MEDIA_ROOT,
        license=SETTINGS.license or "",
        description_extra=SETTINGS.description_extra or "",
        schema_version=SCHEMA_VERSION,
    script:
        "../scripts/write_task.py"


rule summarize:
    input:
        records_of_all_videos(),
        [registry.task_path(R, t) for t in TASKS],
    output:
        report(
            registry.summary_path(R),
            caption="../report/summary.rst",
            category="Overview",
        ),
    log:
        registry.log_path(R, "summarize", "summary"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        videos=VIDEO_LIST,
        qa_types=list(QA_TYPES),
        steps=list(STEPS),
    script:
        "../scripts/summarize.py"


rule check_failures:
    input:
        registry.summary_path(R),
    output:
        touch(registry.check_path(R)),
    log:
        registry.log_path(R, "check_failures", "check"),
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/check_failures.py"

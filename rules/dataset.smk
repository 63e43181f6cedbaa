# Which verified items go into the dataset, per QA type (verification policy, near-duplicate
# questions within a video and across videos, items_per_type); then step 4: one
# tao-vl-reason-v1.0 file per task, validated with nvidia-tao-daft. Then the run summary
# (with its quality section) and quality/rejected_items.jsonl from every record on disk, and
# a check that fails the run when a video failed (after the dataset of every other video and
# the summary are written).


localrules:
    summarize,
    check_failures,
    shard_done,


rule select_items:
    input:
        selection_inputs,
    output:
        registry.selection_path(R),
    log:
        registry.log_path(R, "select_items", "{qa_type}"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        vids=lambda w: list(VIDEOS),
        settings=settings_params("select_items"),
        schema_version=SCHEMA_VERSION,
    script:
        "../scripts/select_items.py"


rule write_task:
    input:
        task_inputs,
    output:
        registry.task_path(R, split="{split}" if SPLITS else None),
    log:
        registry.log_path(R, "write_task", "{split}/{task}" if SPLITS else "{task}"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        media_root=media_root,
        media_dir=registry.media_path(R),
        settings=settings_params("write_task"),
        schema_version=SCHEMA_VERSION,
    script:
        "../scripts/write_task.py"


rule summarize:
    input:
        records_of_all_videos,
        registry.duplicates_path(R),
        [registry.selection_path(R, q) for q in QA_TYPES if TASKS],
        task_files(),
    output:
        report(
            registry.summary_path(R),
            caption="../report/summary.rst",
            category="Overview",
        ),
        registry.rejected_items_path(R),
    log:
        registry.log_path(R, "summarize", "summary"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        videos=video_list,
        qa_types=list(QA_TYPES),
        steps=list(STEPS),
        media_root=media_root,
        settings=settings_params("summarize"),
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


# A shard run (data.shard_index): the marker that its videos' records are all written,
# listing them; the merge run reads the records of every marker's videos.
if SHARD is not None:

    rule shard_done:
        input:
            shard_inputs,
        output:
            registry.shard_path(R, SHARD, SHARDS),
        log:
            registry.log_path(R, "shard_done", f"{SHARD}-of-{SHARDS}"),
        params:
            videos=lambda w: list(VIDEOS),
            shard=SHARD,
            shards=SHARDS,
        script:
            "../scripts/shard_done.py"

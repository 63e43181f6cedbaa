# Steps 0 and 1 (VLM), one job per video. Step 0 probes the video once (rejecting bad input
# at no model cost), asks the VLM whether it is suitable and, in auto mode, classifies it as
# anomaly or normal. Step 1: 1a global + dense caption, 1b chunk captions (smallest
# chunk_duration_options entry giving at most max_chunks chunks), 1a and 1b side by side;
# then 1c for anomaly videos: the LLM's anomaly time and the VLM's highlight-clip caption.
# Each step writes its own per-video record; only the steps that run are outputs.


rule caption_video:
    input:
        video=video_file,
        duplicates=duplicates_input,
    output:
        **job_outputs("caption_video"),
    log:
        registry.log_path(R, "caption_video"),
    conda:
        "../envs/video_reasoning.yaml"
    threads: 0
    resources:
        vlm_calls=call_units("caption_video", "vlm"),
        llm_calls=call_units("caption_video", "llm"),
    params:
        **video_params("caption_video"),
        duplicate=duplicate_param,
    script:
        "../scripts/caption_video.py"

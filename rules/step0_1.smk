# Steps 0 and 1 (VLM), one job per video. Step 0 probes the video once (rejecting bad input
# at no model cost), asks the VLM whether it is suitable and, in auto mode, classifies it as
# anomaly or normal. Step 1: 1a global + dense caption, 1b chunk captions (smallest
# chunk_duration_options entry giving at most max_chunks chunks), 1a and 1b side by side;
# then 1c for anomaly videos: the LLM's anomaly time and the VLM's highlight-clip caption.
# Each step writes its own per-video file; only the steps that run are outputs.


rule step01_caption:
    input:
        video=video_file,
    output:
        step0=step_file("0"),
        **{f"step{s}": step_file(s) for s in ("1a", "1b", "1c") if s in STEPS},
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem=lambda w: VIDEOS[w.vid].problem,
        prompts=prompt_params("0", "1a", "1b", "1c"),
        vlm=VLM,
        llm=LLM if "1c" in STEPS else {},
        workflow={
            "mode": WF.mode,
            "max_video_length_sec": WF.max_video_length_sec,
            "chunk_duration_options": list(WF.chunk_duration_options),
            "max_chunks": WF.max_chunks,
            "highlight_before_sec": WF.highlight_before_sec,
            "highlight_after_sec": WF.highlight_after_sec,
            **LONG,
        },
    resources:
        vlm_calls=1,
        llm_calls=1 if "1c" in STEPS else 0,
    log:
        f"{R}/logs/step_0_1/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step0_1.py"

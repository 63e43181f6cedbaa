# Step 1 (VLM captions), one job per video: 1a global + dense caption, 1b chunk captions
# (smallest chunk_duration_options entry giving at most max_chunks chunks), and 1c, for
# anomaly videos, the LLM's anomaly time and the VLM's highlight-clip caption. Each
# sub-step writes its own per-video file; only the steps that run are outputs.


rule step1_caption:
    input:
        **upstream(),
    output:
        **{f"step{s}": step_file(s) for s in ("1a", "1b", "1c") if s in STEPS},
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("1a", "1b", "1c"),
        vlm=VLM,
        llm=LLM if "1c" in STEPS else {},
        workflow={
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
        f"{R}/logs/step_1/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step1.py"

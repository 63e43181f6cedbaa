# Step 1c (anomaly videos): the LLM finds the anomaly time in the captions, the VLM
# captions the highlight clip around it. Normal videos get a not_applicable record.


rule step1c_highlight:
    input:
        **upstream("1a", "1b"),
    output:
        step_file("1c"),
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("1c"),
        vlm=VLM,
        llm=LLM,
        workflow={"highlight_before_sec": WF.highlight_before_sec, "highlight_after_sec": WF.highlight_after_sec, **LONG},
    resources:
        vlm_calls=1,
        llm_calls=1,
    log:
        f"{R}/logs/step_1c/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step1c.py"

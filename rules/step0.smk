# Step 0: probe every video once (rejecting bad input at no model cost), then the VLM's
# suitability filter and, in auto mode, anomaly/normal classification.


rule step0_filter:
    input:
        video=video_file,
    output:
        f"{R}/step_0/{{vid}}.json",
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem=lambda w: VIDEOS[w.vid].problem,
        prompts=prompt_params("0"),
        vlm=VLM if "0" in STEPS else {},
        workflow={"mode": WF.mode, "max_video_length_sec": WF.max_video_length_sec, **LONG},
    resources:
        vlm_calls=1 if "0" in STEPS else 0,
    log:
        f"{R}/logs/step_0/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step0.py"

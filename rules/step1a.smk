# Step 1a: global caption and dense (timestamped) caption of each video by the VLM.


rule step1a_caption:
    input:
        **upstream(),
    output:
        step_file("1a"),
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("1a"),
        vlm=VLM,
        workflow=LONG,
    resources:
        vlm_calls=1,
    log:
        f"{R}/logs/step_1a/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step1a.py"

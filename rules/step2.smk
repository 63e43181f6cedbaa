# Step 2: the LLM writes each video's structured description from its captions.


rule step2_description:
    input:
        **upstream("1a", "1b", "1c"),
    output:
        step_file("2"),
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("2"),
        llm=LLM,
    resources:
        llm_calls=1,
    log:
        f"{R}/logs/step_2/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step2.py"

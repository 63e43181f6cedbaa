# Step 1b: split each video into chunks (smallest chunk_duration_options entry giving at
# most max_chunks) and caption every chunk with the VLM, one call slot per chunk.


rule step1b_chunks:
    input:
        **upstream(),
    output:
        step_file("1b"),
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("1b"),
        vlm=VLM,
        workflow={"chunk_duration_options": list(WF.chunk_duration_options), "max_chunks": WF.max_chunks, **LONG},
    resources:
        vlm_calls=chunk_slots,
    log:
        f"{R}/logs/step_1b/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step1b.py"

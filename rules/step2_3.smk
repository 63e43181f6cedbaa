# Steps 2 and 3 (LLM), one job per video: the structured description from the captions,
# then QA items with reasoning traces, one file per QA type (up to max_workers calls at
# once). The response cache makes a rerun after one prompt edit pay only for the calls
# whose prompt changed.


rule step23_qa:
    input:
        **upstream("1a", "1b", "1c"),
    output:
        **({"step2": step_file("2")} if "2" in STEPS else {}),
        **({f"qa_{q}": f"{R}/step_3/{q}/{{vid}}.json" for q in QA_TYPES} if "3" in STEPS else {}),
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("2", "3"),
        llm=LLM,
    resources:
        llm_calls=calls_cap(len(QA_TYPES)),
    log:
        f"{R}/logs/step_2_3/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step2_3.py"

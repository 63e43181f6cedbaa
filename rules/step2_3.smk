# Steps 2 and 3 (LLM), one job per video: the structured description from the captions,
# then QA items with reasoning traces, one file per QA type (the QA calls side by side).
# The response cache makes a rerun after one prompt edit pay only for the calls whose
# prompt changed. Priority 1: a video's LLM work starts as soon as its captions are done,
# so both backends stay busy.


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
    priority: 1
    resources:
        llm_calls=1,
    log:
        f"{R}/logs/step_2_3/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step2_3.py"

# Steps 2 and 3 (LLM), one job per video: the structured description from the captions,
# then QA items with reasoning, one record per QA type (the QA calls side by side). The
# response cache makes a rerun after one prompt edit pay only for the calls whose prompt
# changed. Priority 1: a video's LLM work starts as soon as its captions are done, so both
# backends stay busy.


rule write_qa:
    input:
        **job_inputs("write_qa"),
    output:
        **job_outputs("write_qa"),
    log:
        registry.log_path(R, "write_qa"),
    priority: 1
    conda:
        "../envs/video_reasoning.yaml"
    threads: 0
    resources:
        vlm_calls=call_units("write_qa", "vlm"),
        llm_calls=call_units("write_qa", "llm"),
    params:
        **video_params("write_qa"),
    script:
        "../scripts/write_qa.py"

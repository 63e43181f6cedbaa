# Step 3: QA items with reasoning traces, one file per video and QA type. One job per
# video asks the LLM once per QA type (up to max_workers at once); the response cache
# makes a job rerun after one prompt edit pay only for the edited prompt's calls.


rule step3_qa:
    input:
        **upstream("1a", "1b", "1c", "2"),
    output:
        **{q: f"{R}/step_3/{q}/{{vid}}.json" for q in QA_TYPES},
    params:
        video=lambda w: VIDEOS[w.vid].path,
        source=lambda w: VIDEOS[w.vid].source,
        problem="",
        prompts=prompt_params("3"),
        llm=LLM,
    resources:
        llm_calls=calls_cap(len(QA_TYPES)),
    log:
        f"{R}/logs/step_3/{{vid}}.log",
    conda:
        "../envs/video_reasoning.yaml"
    script:
        "../scripts/step3.py"

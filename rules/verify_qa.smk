# Verification (ours, between steps 3 and 4; runs whenever step 4 does), one job per video:
# every step-3 item is checked for form (no call), asked without the video (two blind LLM
# probes, options re-ordered) and with it (one grounded VLM call), and open-ended items are
# judged against what the VLM saw (one LLM call): at most four calls per video, all items in
# each. The record keeps every item with the checks it failed; which items go into the
# dataset is decided per QA type by rule select_items (policy, duplicates, items_per_type).


rule verify_qa:
    input:
        **job_inputs("verify_qa"),
    output:
        **job_outputs("verify_qa"),
    log:
        registry.log_path(R, "verify_qa"),
    conda:
        "../envs/video_reasoning.yaml"
    threads: 0
    resources:
        vlm_calls=call_units("verify_qa", "vlm"),
        llm_calls=call_units("verify_qa", "llm"),
    params:
        **video_params("verify_qa"),
    script:
        "../scripts/verify_qa.py"

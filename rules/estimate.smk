# What a run will cost, before it starts (target: estimate): every video probed, step 0's
# free checks applied, each accepted video's calls planned as the steps make them, tokens
# from the providers' media rates and the prompt lengths, cost from the price table and
# wall time at max_workers. No model call, no key, no server. Made anew each time it is
# asked for (the run id is a param).


localrules:
    estimate,


rule estimate:
    input:
        registry.duplicates_path(R),
    output:
        registry.estimate_path(R),
    log:
        registry.log_path(R, "estimate", "estimate"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        run=os.environ[RUN_ENV],
    script:
        "../scripts/estimate.py"

# What users look at: the pages and figures of the HTML report (snakemake --report
# report.html, built from these outputs, no model call) and the dataset card DATASET.md.
# Both are read from summary.json and the records on disk after every run.


localrules:
    report_pages,
    dataset_card,


rule report_pages:
    input:
        registry.summary_path(R),
    output:
        overview=report(
            registry.report_path(R, "overview.svg"),
            caption="../report/overview.rst",
            category="Overview",
            labels={"figure": "videos and items"},
        ),
        videos=report(
            registry.report_path(R, "videos.html"),
            caption="../report/videos.rst",
            category="Videos",
            labels={"page": "per-video table"},
        ),
        quality_checks=report(
            registry.report_path(R, "quality_checks.svg"),
            caption="../report/quality_checks.rst",
            category="Quality",
            labels={"figure": "removals per check"},
        ),
        answer_spread=report(
            registry.report_path(R, "answer_spread.svg"),
            caption="../report/answer_spread.rst",
            category="Quality",
            labels={"figure": "correct answers"},
        ),
        lengths=report(
            registry.report_path(R, "lengths.svg"),
            caption="../report/lengths.rst",
            category="Quality",
            labels={"figure": "lengths"},
        ),
        times=report(
            registry.report_path(R, "times.svg"),
            caption="../report/times.rst",
            category="Quality",
            labels={"figure": "timestamps and windows"},
        ),
        cost=report(
            registry.report_path(R, "cost.svg"),
            caption="../report/cost.rst",
            category="Cost",
            labels={"figure": "calls, tokens, USD"},
        ),
        samples=[
            report(
                registry.report_path(R, f"samples/{t}.html"),
                caption="../report/samples.rst",
                category="Samples",
                labels={"task": t},
            )
            for t in TASKS
        ],
    log:
        registry.log_path(R, "report_pages", "report"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        qa_types=list(QA_TYPES),
        tasks=TASKS,
        splits=list(SPLITS),
        media_root=media_root,
    script:
        "../scripts/report_pages.py"


rule dataset_card:
    input:
        registry.summary_path(R),
    output:
        report(
            registry.card_path(R),
            caption="../report/card.rst",
            category="Overview",
            labels={"figure": "dataset card"},
        ),
    log:
        registry.log_path(R, "dataset_card", "card"),
    conda:
        "../envs/video_reasoning.yaml"
    params:
        tasks=TASKS,
        prompt_set=prompt_set_name(SETTINGS),
        prompt_hash=PROMPT_SET_HASH,
        settings=settings_params("dataset_card"),
    script:
        "../scripts/dataset_card.py"

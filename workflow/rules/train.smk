# One job per run: results/runs/<benchmark>/<method>/m<memory>-e<epochs>[+opt=val]/s<seed>.json


rule train:
    input:
        pt=f"{RESULTS}/data/{{benchmark}}.pt",
        manifest=f"{RESULTS}/data/{{benchmark}}.json",
    output:
        f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.json",
    params:
        # the run's whole protocol (hyperparameters + benchmark definition): when it
        # changes the run is redone; edits to code that leave it alone are not
        job=lambda wc: run_of(wc).description(PLAN.data),
        device=CONFIG["device"],
    log:
        f"{RESULTS}/logs/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.log",
    threads: lambda wc: run_of(wc).resources["threads"]
    resources:
        gpu=lambda wc: int(run_of(wc).resources["gpu"]),
        mem_mb=lambda wc, attempt: run_of(wc).resources["mem_mb"] * attempt,
        runtime=lambda wc, attempt: run_of(wc).resources["runtime"] * attempt,
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/train.py"

# One job per run: results/runs/<benchmark>/<method>/m<memory>-e<epochs>[+opt=val]/s<seed>.json
# Runs are split by whether their benchmark's network wants a GPU: on a cluster the many
# tiny CPU runs can then be batched into a few allocations (see workflow/profiles/slurm)
# while every GPU run keeps an allocation of its own. Runs that keep tensors for a figure
# (GMED's edited memory) declare them as a second output (train_logged).


ruleorder: train_logged > train


# On SLURM the CPU runs are bundled (workflow/profiles/slurm): each takes one bundle slot,
# and the profile's `resources: bundle_slots` says how many of a bundle's runs go at once.
# Local scope: that limit applies to each bundle, not to the whole workflow.
resource_scopes:
    bundle_slots="local",


rule train:
    input:
        pt=f"{RESULTS}/data/{{benchmark}}.pt",
        manifest=f"{RESULTS}/data/{{benchmark}}.json",
        # the tuning runs a hyperparameter of this run is chosen from (GMED Random Edit)
        tuned=lambda wc: [str(s.path(PLAN.root)) for s in run_of(wc).needs],
    output:
        f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.json",
    wildcard_constraints:
        benchmark=CPU_BENCHMARKS,
    params:
        # the run's whole protocol (hyperparameters + benchmark definition): when it
        # changes the run is redone; edits to code that leave it alone are not
        protocol=lambda wc: run_of(wc).protocol(),
    log:
        f"{RESULTS}/logs/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.log",
    threads: lambda wc: run_of(wc).resources["threads"]
    resources:
        mem_mb=lambda wc, attempt: run_of(wc).resources["mem_mb"] * attempt,
        runtime=lambda wc, attempt: run_of(wc).resources["runtime"] * attempt,
        bundle_slots=1,
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/train.py"


use rule train as train_gpu with:
    wildcard_constraints:
        benchmark=GPU_BENCHMARKS,
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: run_of(wc).resources["mem_mb"] * attempt,
        runtime=lambda wc, attempt: run_of(wc).resources["runtime"] * attempt,


use rule train as train_logged with:
    output:
        record=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.json",
        artifacts=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.artifacts.pt",
    wildcard_constraints:
        benchmark=LOGGED_BENCHMARKS,
        method=LOGGED_METHODS,

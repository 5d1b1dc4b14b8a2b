# One job per run: results/runs/<benchmark>/<method>/m<memory>-e<epochs>[+opt=val]/s<seed>.json
# Runs are split by whether their benchmark's network wants a GPU: on a cluster the many
# tiny CPU runs can then be batched into a few allocations (see workflow/profiles/slurm)
# while every GPU run keeps an allocation of its own. Runs that keep tensors for a figure
# (GMED's edited memory) declare them as a second output (train_logged).


ruleorder: train_logged > train
ruleorder: train_logged_gpu > train_gpu


# On SLURM the CPU runs are bundled (workflow/profiles/slurm): each takes one bundle slot,
# and the profile's `resources: bundle_slots` says how many of a bundle's runs go at once.
# Local scope: that limit applies to each bundle, not to the whole workflow.
resource_scopes:
    bundle_slots="local",


# The single-run rule's inputs are `ancient`: a record is remade when its protocol (params)
# changes, not when its data or tuning records are rewritten -- the definition of both is
# part of the protocol -- so that a batch rerun never races a single-run job on one record.
rule train:
    input:
        pt=ancient(f"{RESULTS}/data/{{benchmark}}.pt"),
        manifest=ancient(f"{RESULTS}/data/{{benchmark}}.json"),
        # the tuning runs a hyperparameter of this run is chosen from (GMED Random Edit)
        tuned=lambda wc: [ancient(str(s.path(PLAN.root))) for s in run_of(wc).needs],
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
        gpu=GPUS_PER_GPU_JOB,
        mem_mb=lambda wc, attempt: run_of(wc).resources["mem_mb"] * attempt,
        runtime=lambda wc, attempt: run_of(wc).resources["runtime"] * attempt,
        **RUN_CONSTRAINT,


use rule train as train_logged with:
    output:
        record=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.json",
        artifacts=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.artifacts.pt",
    wildcard_constraints:
        benchmark=LOGGED_CPU_BENCHMARKS,
        method=LOGGED_METHODS,


use rule train_gpu as train_logged_gpu with:
    output:
        record=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.json",
        artifacts=f"{RESULTS}/runs/{{benchmark}}/{{method}}/{{setting}}/s{{seed}}.artifacts.pt",
    wildcard_constraints:
        benchmark=LOGGED_GPU_BENCHMARKS,
        method=LOGGED_METHODS,


# Many small CPU runs per job (config batch_runs; clrepro/batch.py): one process imports
# torch and loads the benchmark once, then trains the runs one by one, each writing its own
# record. The job's output is only a token, so Snakemake never deletes the records of a
# partly done batch; a rerun skips every run whose record matches its protocol. A change to
# one run's protocol changes the batch's params: the batch reruns and redoes that run only.
rule train_batch:
    input:
        pt=f"{RESULTS}/data/{{benchmark}}.pt",
        manifest=f"{RESULTS}/data/{{benchmark}}.json",
        tuned=batch_needs,
    output:
        f"{RESULTS}/batches/{{benchmark}}/{{batch}}.done",
    wildcard_constraints:
        benchmark=CPU_BENCHMARKS,
        batch=r"s\d+-\d+",
    params:
        runs=batch_runs,
    priority: batch_priority
    log:
        f"{RESULTS}/logs/batches/{{benchmark}}/{{batch}}.log",
    threads: 1
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime,
        bundle_slots=1,
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/train_batch.py"


use rule train_batch as train_batch_gpu with:
    wildcard_constraints:
        benchmark=GPU_BENCHMARKS,
        batch=r"s\d+-\d+",
    resources:
        gpu=GPUS_PER_GPU_JOB,
        mem_mb=batch_mem_mb,
        runtime=batch_runtime,
        bundle_slots=1,
        **BATCH_CONSTRAINT,

# Prepared benchmark tensors. Local: compute nodes are often offline, so data is
# prepared once where downloads work and every training job reads the checksummed cache.


localrules:
    prepare_data,


rule prepare_data:
    output:
        pt=f"{RESULTS}/data/{{benchmark}}.pt",
        manifest=f"{RESULTS}/data/{{benchmark}}.json",
    params:
        benchmark=lambda wc: PLAN.benchmarks[wc.benchmark].to_dict(),
        format=clrepro.data.definitions.FORMAT_VERSION,
    log:
        f"{RESULTS}/logs/data/{{benchmark}}.log",
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/prepare_data.py"

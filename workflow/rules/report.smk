# The report PDF: our numbers beside the paper's, with a verdict for every claim.


localrules:
    report,
    verify,


rule report:
    input:
        claims=[str(job.claims) for _, job in sorted(PLAN.artifacts.items())],
        files=[str(p) for _, job in sorted(PLAN.artifacts.items()) for p in job.outputs],
    output:
        report(REPORT, caption="../report/pdf.rst", category="Report PDF"),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/report.py"


rule verify:
    """`snakemake verify`: every verdict against the committed ones (clrepro/papers/*/verdicts.<scale>.json)."""
    input:
        claims=[str(job.claims) for _, job in sorted(PLAN.artifacts.items())],
    output:
        f"{RESULTS}/verify.txt",
    params:
        config=CONFIG,
    log:
        f"{RESULTS}/logs/verify.log",
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/verify.py"

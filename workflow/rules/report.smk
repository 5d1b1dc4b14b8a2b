# The report PDF: our numbers beside the paper's, with a verdict for every claim.


localrules:
    report,


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

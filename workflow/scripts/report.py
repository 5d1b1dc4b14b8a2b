from clrepro.workflow import report

report(snakemake)  # noqa: F821 (injected by Snakemake)

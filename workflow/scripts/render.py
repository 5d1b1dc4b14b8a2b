from clrepro.workflow import render

render(snakemake)  # noqa: F821 (injected by Snakemake)

from clrepro.workflow import verify

verify(snakemake)  # noqa: F821 (injected by Snakemake)

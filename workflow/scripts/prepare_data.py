from clrepro.workflow import prepare_data

prepare_data(snakemake)  # noqa: F821 (injected by Snakemake)

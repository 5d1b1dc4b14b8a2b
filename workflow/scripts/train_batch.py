from clrepro.workflow import train_batch

train_batch(snakemake)  # noqa: F821 (injected by Snakemake)

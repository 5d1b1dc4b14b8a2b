"""clrepro: reproduce continual-learning papers from one Snakemake workflow."""

__version__ = "0.1.0"

# clrepro: reproduce continual-learning papers.  `snakemake --cores 2` -> results/report.pdf
# What to run comes from the clrepro package (paper modules -> plan); rules never list runs.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/artifacts.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        REPORT,

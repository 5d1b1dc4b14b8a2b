# Tables (CSV/Markdown/LaTeX) and figures (PDF/PNG + plotted numbers), each with the
# verdicts of its claims in results/claims/<artifact>.json.


localrules:
    render_table,
    render_figure,


rule render_table:
    input:
        artifact_runs,
    output:
        csv=report(
            f"{RESULTS}/tables/{{artifact}}.csv",
            caption="../report/artifact.rst",
            category=paper_title,
            subcategory="{artifact}",
        ),
        md=f"{RESULTS}/tables/{{artifact}}.md",
        tex=f"{RESULTS}/tables/{{artifact}}.tex",
        claims=f"{RESULTS}/claims/{{artifact}}.json",
    wildcard_constraints:
        artifact=_alternatives(TABLES),
    params:
        config=CONFIG,
    log:
        f"{RESULTS}/logs/render/{{artifact}}.log",
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/render.py"


rule render_figure:
    input:
        artifact_runs,
    output:
        pdf=report(
            f"{RESULTS}/figures/{{artifact}}.pdf",
            caption="../report/artifact.rst",
            category=paper_title,
            subcategory="{artifact}",
        ),
        png=report(
            f"{RESULTS}/figures/{{artifact}}.png",
            caption="../report/artifact.rst",
            category=paper_title,
            subcategory="{artifact}",
        ),
        csv=f"{RESULTS}/figures/{{artifact}}.csv",
        claims=f"{RESULTS}/claims/{{artifact}}.json",
    wildcard_constraints:
        artifact=_alternatives(FIGURES),
    params:
        config=CONFIG,
    log:
        f"{RESULTS}/logs/render/{{artifact}}.log",
    conda:
        "../envs/clrepro.yaml"
    script:
        "../scripts/render.py"


rule tune:
    """`snakemake tune`: the tuning grids and their tables (the artifacts a paper marks
    `tuning`)."""
    input:
        [str(p) for job in PLAN.artifacts.values() if job.artifact.tuning
         for p in job.outputs],

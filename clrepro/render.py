"""Render one artifact: tables/figures from run records, plus its claims' verdicts."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from clrepro.analysis.collect import RunSet
from clrepro.analysis.plots import save_figure
from clrepro.analysis.yours import compare, tally
from clrepro.analysis.yours import display as compare_display
from clrepro.analysis.tables import to_markdown, write_table
from clrepro.fsutil import write_json, write_text
from clrepro.papers import get_paper
from clrepro.papers.base import ArtifactContext
from clrepro.plan import Plan

log = logging.getLogger("clrepro")
QUICK_LABEL = "quick – not comparable to paper values"


def scale_label(scale: str) -> str:
    return {"full": "full (paper protocol)", "quick": QUICK_LABEL,
            "smoke": "smoke – pipeline check only, not comparable to paper values"}[scale]


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    if df is None:
        return None
    return [{str(k): (None if pd.isna(v) else v) for k, v in row.items()}
            for row in df.astype(object).to_dict("records")]


def render_artifact(plan: Plan, artifact_id: str) -> dict[str, Any]:
    job = plan.artifacts[artifact_id]
    paper = get_paper(job.paper)
    ctx, shown = contexts(plan, job)
    runs = ctx.runs
    art = job.artifact
    rendered = art.render(shown)
    rendered.notes += [f"{name}: your method (config methods.{name}), run under this artifact's "
                       f"protocol beside {art.user.reference}; the paper has no number for it and "
                       "the claims compare the paper's methods only." for name in shown.yours]
    label = scale_label(plan.scale)
    caption = f"{art.id}: {art.title}. {art.caption} [{label}]"
    outputs = {p.suffix: p for p in job.outputs}
    if art.kind == "table":
        write_table(rendered.table, outputs[".csv"], outputs[".md"], outputs[".tex"],
                    display=rendered.display, caption=caption)
    else:
        save_figure(rendered.figure, outputs[".pdf"], outputs[".png"])
        plt.close(rendered.figure)
        write_text(outputs[".csv"], rendered.table.to_csv(index=False))

    claims = []
    for claim in art.claims:
        # Missing, corrupt or diverged runs make a verdict inconclusive inside the check; an
        # exception is a bug in the check and fails the job with its traceback.
        verdict = claim.check(ctx)
        claims.append({"id": f"{job.paper}.{claim.id}", "text": claim.text,
                       "status": verdict.status, "fragile": verdict.fragile,
                       "detail": verdict.detail, "rule": verdict.rule,
                       "evidence": verdict.evidence, "preconditions": verdict.preconditions})
        log.info("%s %s: %s — %s", art.id, claim.id, verdict.status, verdict.detail)
    yours = _yours(plan, job)
    problems = runs.problems()
    summary = {
        "artifact": art.id, "paper": job.paper, "paper_title": paper.title, "title": art.title,
        "kind": art.kind, "caption": art.caption, "scale": plan.scale, "scale_label": label,
        "display": _records(rendered.display if rendered.display is not None else rendered.table),
        "paper_table": _records(rendered.paper_table), "notes": rendered.notes,
        "claims": claims,
        "runs": {"total": len(runs.df), "ok": int((runs.df["status"] == "ok").sum()),
                 "problems": _records(problems[["path", "status"]]) if len(problems) else []},
        "provenance": _provenance_summary(runs),
        "files": [str(p) for p in job.outputs],
        **({"yours": yours} if yours else {}),
        **({"yours_skipped": skipped} if (skipped := [k for k in plan.skipped
                                                     if k["artifact"] == art.id]) else {}),
    }
    write_json(job.claims, summary)
    if art.kind == "table":  # append the paper's numbers and verdicts to the Markdown
        extra = []
        if rendered.paper_table is not None:
            extra += ["", "Paper:", "", to_markdown(rendered.paper_table)]
        extra += [f"- {n}" for n in rendered.notes]
        for name, mine in yours.items():
            extra += ["", f"Yours ({name}) vs each baseline, paired over the same seeds "
                      f"({mine['metric']}; {mine['tally']}):", "",
                      to_markdown(pd.DataFrame(compare_display(mine["rows"])))]
        extra += [f"- **{c['id']}** ({c['status']}): {c['text']}\n  "
                  + c["detail"].replace("\n", "\n  ") for c in claims]
        write_text(outputs[".md"], outputs[".md"].read_text() + "\n".join(extra) + "\n")
    return summary


def contexts(plan: Plan, job) -> tuple[ArtifactContext, ArtifactContext]:
    """(what the claims judge, what the tables and figures draw): the paper's runs only, and
    those plus the runs of the user's methods of this artifact (`yours` names them), so
    her method is one more row, column or line beside the baselines while the verdicts are
    decided on the paper's methods alone."""
    paper = get_paper(job.paper)
    options = plan.options[job.paper]
    norm = paper.transfer_norm(options)
    judged = ArtifactContext(plan.scale, RunSet(job.paper_runs, plan.root, paper.protocol_version,
                                                norm), options, paper)
    if not job.yours:
        return judged, judged
    drawn = ArtifactContext(plan.scale, RunSet(job.runs, plan.root, paper.protocol_version, norm),
                            options, paper, tuple(job.yours))
    return judged, drawn


def _yours(plan: Plan, job) -> dict[str, Any]:
    """Each user method of this artifact against every baseline (clrepro.analysis.yours)."""
    out = {}
    for name, specs in job.yours.items():
        runs = RunSet(job.runs, plan.root, get_paper(job.paper).protocol_version)
        metric = job.artifact.user.metric
        rows = compare(runs, specs, job.paper_runs, name, metric)
        out[name] = {"metric": metric, "rows": rows, "tally": tally(rows),
                     "entry": plan.config["methods"][name]["entry"]}
        log.info("%s: %s %s", job.artifact.id, name, out[name]["tally"])
    return out


def _provenance_summary(runs: RunSet) -> dict[str, Any]:
    commits, devices, dirty = set(), set(), False
    for record in runs.records.values():
        prov = record["provenance"]
        commits.add(str(prov.get("commit"))[:12])
        devices.add(prov.get("machine", {}).get("gpu") or prov.get("machine", {}).get("device"))
        dirty |= bool(prov.get("dirty"))
    return {"commits": sorted(commits), "devices": sorted(map(str, devices)), "dirty": dirty}

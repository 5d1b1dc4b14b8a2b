"""A user's method inside the papers' own tables and figures (issue 24): one more row, column
or line named by its config key in every artifact it runs in, on hand-built run sets; the
paper's numbers stay empty for it and the claims never see its runs."""

import json
import sys
import zlib

import pandas as pd
import pytest

from clrepro import plan as planning
from clrepro import render
from clrepro.papers import get_paper

from claim_worlds import record

USER = '''from clrepro.methods.base import Method
from clrepro.methods.cil import ClassIncremental


class Mine(Method):
    """L = CE (a rendering fixture)."""

    hyperparameters = {"mine.weight": ("weight", 0.5)}

    def observe(self, x, y, tasks):
        self.sgd_step(x, y, tasks)


class MineCIL(ClassIncremental):
    """L = CE over the classes seen (a rendering fixture)."""
'''
PACKAGE = "rowspkg"


@pytest.fixture
def outside(tmp_path, monkeypatch):
    pkg = tmp_path / "outside" / PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text(USER)
    for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.syspath_prepend(str(tmp_path / "outside"))


def _score(spec) -> float:
    """A deterministic accuracy in [0.3, 0.8) per (label, seed)."""
    return 0.3 + (zlib.crc32(spec.label.encode()) % 40) / 100 + 0.01 * spec.seed


def _metrics(paper: str, spec) -> dict:
    a = _score(spec)
    if paper == "gem2017":  # Fig. 1b reads the first task's curve
        return {"acc": a, "curve": {"progress": [0, 1, 2, 3, 4], "batch": [0, 1, 2, 3, 4],
                                    "acc": [[0.1] * 4, [a] * 4, [a] * 4, [a] * 4, [a] * 4]}}
    if paper == "bld2020":
        from clrepro.papers.bld2020.protocol import parse

        tasks = parse(spec.benchmark)[1]
        views = {} if spec.method == "mine" else {"augment": {"views": 3}}  # hers reads none
        return {"R": [[a] * tasks] * tasks, "hp": views,
                "memory_bytes": {"intra_batch": 8, "inter_batch": 0, "data_storage": 0},
                "benchmark": {"tasks": [{"n_train": 300}] * tasks}}
    if paper == "mnemonics2020":
        if spec.method == "joint_cil":
            return {"R": [[0.9]], "benchmark": {"tasks": [{"classes": list(range(5))}]}}
        phases = 6
        r = [[a if j <= i else None for j in range(phases)] for i in range(phases)]
        return {"R": r, "benchmark": {"tasks": [{"classes": [0] * (5 if t == 0 else 1)}
                                                for t in range(phases)]}}
    if paper == "drl2020":
        return {"R": [[a]]}
    return {"acc": a}


def _plan(tmp, paper: str, artifacts: list[str], mine: dict | None):
    config = {"scale": "quick", "results": str(tmp), "papers": [paper], "artifacts": artifacts,
              "seeds": {paper: 2}}
    if mine is not None:
        config["methods"] = {"mine": mine}
    return planning.build(config)


def _write_records(p, paper: str) -> None:
    version = get_paper(paper).protocol_version
    for job in p.artifacts.values():
        for spec in job.runs:
            path = spec.path(p.root)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record(spec, paper, version, _metrics(paper, spec))))


ONLINE = {"entry": f"{PACKAGE}.m:Mine"}
PHASES = {"entry": f"{PACKAGE}.m:MineCIL", "papers": ["mnemonics2020"]}
# per paper: (its artifacts a user's method runs in, the user method)
FITTING = {
    "gem2017": (["gem.fig1a", "gem.fig1b", "gem.table1", "gem.table2", "gem.table3"], ONLINE),
    "gmed2021": (["gmed.table2", "gmed.fig4"], ONLINE),
    "bld2020": (["bld.table1", "bld.table2", "bld.table3"], ONLINE),
    "mnemonics2020": (["mnemonics.table1", "mnemonics.fig4"], PHASES),
    "drl2020": (["drl.table1", "drl.table2", "drl.table3"], ONLINE),
}


def _rendered(tmp, paper, monkeypatch, mine=True, artifacts=None):
    """(plan, artifact -> its summary, artifact -> its figure's legend labels), rendered from
    hand-built records."""
    artifacts, conf = artifacts or FITTING[paper][0], FITTING[paper][1]
    p = _plan(tmp, paper, artifacts, conf if mine else None)
    _write_records(p, paper)
    legends = {}

    def keep_labels(fig, pdf, png):  # the figure's legend entries, instead of the files
        texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        texts += [t.get_text() for ax in fig.axes if ax.get_legend()
                  for t in ax.get_legend().get_texts()]
        texts += [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        legends[pdf.stem] = texts

    monkeypatch.setattr(render, "save_figure", keep_labels)
    out = {a: render.render_artifact(p, a) for a in artifacts}
    return p, out, legends


def _shown_rows(summary) -> list[str]:
    """Every string cell of the artifact's displayed table."""
    return [str(v) for row in summary["display"] for v in row.values()]


@pytest.mark.parametrize("paper,artifact", [(p, a) for p in sorted(FITTING) for a in FITTING[p][0]])
def test_her_method_is_a_row_or_line_in_every_artifact_it_runs_in(paper, artifact, outside,
                                                                   tmp_path, monkeypatch):
    p, out, legends = _rendered(tmp_path, paper, monkeypatch, artifacts=[artifact])
    assert "mine" in p.artifacts[artifact].yours
    for artifact, summary in out.items():
        job = p.artifacts[artifact]
        shown = _shown_rows(summary)
        assert any(cell == "mine" or cell.startswith("mine ") for cell in shown), (artifact, shown)
        data = pd.read_csv(next(f for f in job.outputs if f.suffix == ".csv"))
        assert (data.astype(str) == "mine").any().any(), (artifact, data)  # what was drawn
        if job.artifact.kind == "figure":
            assert "mine" in legends[artifact], (artifact, legends[artifact])
        else:
            assert "mine" in job.outputs[1].read_text()  # the Markdown
        # her cells carry numbers, not only her name: the runs were read
        mine_rows = [row for row in summary["display"]
                     if any(str(v) == "mine" or str(v).startswith("mine ") for v in row.values())]
        assert any(any(ch.isdigit() for k, v in row.items() for ch in str(v)
                       if k not in ("method", "curve", "strategy", "backbone", "group", "metric"))
                   for row in mine_rows), (artifact, mine_rows)
        # the paper's own numbers: none for her (her row there, if any, is empty)
        for row in summary["paper_table"] or []:
            if "mine" in row.values():
                assert not any(ch.isdigit() for v in row.values() for ch in str(v)), (artifact, row)


@pytest.mark.parametrize("paper", sorted(FITTING))
def test_her_runs_change_no_claim(paper, outside, tmp_path, monkeypatch):
    """The claims compare the paper's methods: with her runs in the same results folder and
    drawn in the same tables, every verdict, its detail and evidence are as without her."""
    _, with_her, _ = _rendered(tmp_path, paper, monkeypatch)
    _, without, _ = _rendered(tmp_path, paper, monkeypatch, mine=False)
    for artifact in with_her:
        assert with_her[artifact]["claims"] == without[artifact]["claims"], artifact
        assert "mine" not in json.dumps(without[artifact]["display"])

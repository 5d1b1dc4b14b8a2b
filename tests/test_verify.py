"""`clrepro verify`: the committed quick-preset verdicts as a regression test."""

import json

import pytest

from clrepro import cli, plan, verify


@pytest.fixture
def rendered(tmp_path, monkeypatch):
    """A quick plan whose claims files hold 'holds' everywhere, and an empty package dir."""
    monkeypatch.setattr(verify, "PAPERS_DIR", tmp_path / "papers")
    p = plan.build({"results": str(tmp_path / "results")})
    for job in p.artifacts.values():
        claims = [{"id": f"{job.paper}.{c.id}", "status": "holds"} for c in job.artifact.claims]
        job.claims.parent.mkdir(parents=True, exist_ok=True)
        job.claims.write_text(json.dumps({"claims": claims}))
    return p


def set_status(p, claim_id, status):
    for job in p.artifacts.values():
        data = json.loads(job.claims.read_text())
        for c in data["claims"]:
            if c["id"] == claim_id:
                c["status"] = status
        job.claims.write_text(json.dumps(data))


def test_update_then_compare_reports_no_change_and_names_a_flip(rendered):
    written = {p.parent.name: p for p in verify.update(rendered)}
    assert set(written) == set(rendered.config["papers"])
    assert "gem2017.C10\tholds" in written["gem2017"].read_text()
    assert verify.compare(rendered).changed == []
    set_status(rendered, "gem2017.C2", "does not hold")
    result = verify.compare(rendered)
    assert result.changed == [("gem2017.C2", "holds", "does not hold")]
    assert "gem2017.C2" in result.report() and "1 changed" in result.report()


def test_the_command_exits_non_zero_on_a_change(rendered, tmp_path, capsys):
    verify.update(rendered)
    args = ["verify", "--set", f"results={tmp_path / 'results'}"]
    assert cli.main(args) == 0
    set_status(rendered, "gmed2021.C8", "inconclusive")
    assert cli.main(args) == 1
    assert "gmed2021.C8" in capsys.readouterr().out


def test_missing_renders_and_tables_are_reported(rendered, tmp_path):
    verify.update(rendered)
    next(iter(rendered.artifacts.values())).claims.unlink()
    assert verify.compare(rendered).unrendered
    assert cli.main(["verify", "--set", "scale=smoke", "--set",
                     f"results={tmp_path / 'results'}"]) == 2  # no committed smoke verdicts


def test_the_committed_tables_cover_every_quick_claim():
    p = plan.build({})
    committed = {}
    for paper in {j.paper for j in p.artifacts.values()}:
        committed.update(verify.read_expected(verify.expected_path(paper, "quick")))
    claims = {f"{j.paper}.{c.id}" for j in p.artifacts.values() for c in j.artifact.claims}
    assert set(committed) == claims
    assert set(committed.values()) <= {"holds", "does not hold", "inconclusive", "not checkable"}

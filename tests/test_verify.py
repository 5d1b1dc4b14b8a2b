"""`clrepro verify`: the committed quick-preset evidence as a regression test that passes on
numerical noise and fails on a real change."""

import dataclasses
import json
import zlib

import numpy as np
import pytest

from clrepro import cli, plan, verify
from clrepro.analysis import verdicts as V

from claim_worlds import check
from test_claims_gem import world as gem_world


def claim_json(verdict):
    """A claim as render writes it (the parts verify reads)."""
    return {"status": verdict.status, "fragile": verdict.fragile, "evidence": verdict.evidence,
            "preconditions": verdict.preconditions}


def evidence(a, b, what="A > B"):
    return V.combine([V.paired(a, b, what)])


FIRM_A = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.71, 4: 0.73}
FIRM_B = {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.58, 4: 0.60}


def judge(before, after):
    return verify.judge("x.C1", verify._kept(claim_json(before)), verify._kept(claim_json(after)))


def test_stability_is_the_replication_chance_and_marks_near_level_p_fragile():
    firm = V.paired(FIRM_A, FIRM_B, "firm")
    assert firm.status == "holds" and firm.stability > 0.95 and not firm.fragile
    # differences whose t sits right at the one-tailed 5 % level (n = 5: t = 2.132)
    near = {s: FIRM_B[s] + d for s, d in enumerate([0.010, 0.030, 0.005, -0.004, 0.028])}
    e = V.paired(near, FIRM_B, "near")
    assert 0.04 < e.p < 0.06
    assert 0.3 < e.stability < 0.7 and e.fragile
    assert "FRAGILE" in e.text() and e.to_json()["fragile"] is True
    # nothing favours either side: a rerun stays inconclusive
    flat = V.paired({s: FIRM_B[s] + d for s, d in enumerate([0.02, -0.02, 0.01, -0.01, 0.0])},
                    FIRM_B, "flat")
    assert flat.status == "inconclusive" and not flat.fragile


def test_stability_is_calibrated_with_three_seeds():
    """Predicted stability against what reruns do: pairs of independent 3-seed samples from one
    distribution (a rerun on another machine is such a pair, README "Determinism"). A model
    that takes the observed spread as known predicted 0.83 where reruns kept the status 0.61
    of the time; with the spread's uncertainty it predicts 0.71 (measured, this seed)."""
    rng = np.random.default_rng(1)
    predicted, kept = [], []
    for _ in range(300):
        mu = rng.uniform(-4, 4) / np.sqrt(3)
        first, rerun = (V.paired(dict(enumerate(mu + rng.standard_normal(3))), 0.0, "x")
                        for _ in range(2))
        predicted.append(first.stability)
        kept.append(first.status == rerun.status)
    assert abs(np.mean(predicted) - np.mean(kept)) < 0.15


def test_a_claim_is_fragile_when_a_fragile_part_can_change_it():
    near = {s: FIRM_B[s] + d for s, d in enumerate([0.010, 0.030, 0.005, -0.004, 0.028])}
    firm, fragile = V.paired(FIRM_A, FIRM_B, "firm"), V.paired(near, FIRM_B, "near")
    assert not V.combine([firm]).fragile
    assert V.combine([firm, fragile]).fragile
    against = V.paired(FIRM_B, FIRM_A, "against")  # firmly does not hold
    assert not V.combine([against, fragile]).fragile  # one firm failure keeps it failing


def test_identical_evidence_is_the_same_and_a_reversal_is_a_change():
    before = evidence(FIRM_A, FIRM_B)
    assert judge(before, before).outcome == "same"
    j = judge(before, evidence(FIRM_B, FIRM_A))
    assert j.outcome == "changed" and "reverses" in j.reasons[0]


def test_a_fragile_flip_within_noise_is_borderline():
    base = {s: FIRM_B[s] + d for s, d in enumerate([0.010, 0.030, 0.005, -0.004, 0.028])}
    nudged = {s: v + 0.004 for s, v in base.items()}
    before, after = evidence(base, FIRM_B), evidence(nudged, FIRM_B)
    assert {before.status, after.status} == {"holds", "inconclusive"}
    j = judge(before, after)
    assert j.outcome == "borderline" and "within noise" in j.reasons[0]


def test_an_effect_far_outside_its_interval_is_a_change_even_with_the_same_status():
    far = {s: v + 0.2 for s, v in FIRM_A.items()}
    j = judge(evidence(FIRM_A, FIRM_B), evidence(far, FIRM_B))
    assert j.expected == j.current == "holds"
    assert j.outcome == "changed" and "beyond seed noise" in j.reasons[0]


def test_a_firm_status_change_within_noise_is_borderline_and_lost_seeds_are_changes():
    """The issue's rule: only a reversal or an effect beyond seed noise fails. A flip of a
    comparison that looked firm is borderline when its effect stayed within noise (measured: a
    thread-count change alone flipped comparisons committed as 0.87-1.00 stable)."""
    flat_b = {s: FIRM_B[s] + d for s, d in enumerate([0.05, -0.05, 0.04, -0.04, 0.0])}
    flat_a = {s: FIRM_B[s] + d for s, d in enumerate([0.06, -0.03, 0.05, -0.03, 0.01])}
    before, after = evidence(flat_a, FIRM_B), evidence(flat_a, flat_b)
    assert (before.status, after.status) == ("inconclusive", "holds") and not before.fragile
    j = judge(before, after)
    assert j.outcome == "borderline" and "inconclusive -> holds" in j.reasons[0]
    three = {s: FIRM_A[s] for s in (0, 1, 2)}
    j = judge(evidence(FIRM_A, FIRM_B), evidence(three, FIRM_B))
    assert j.outcome == "changed" and "n 5 -> 3" in j.reasons[0]


def test_machine_dependent_effects_are_judged_by_status_only():
    """Seconds of training halve with two threads; 'GEM trains slower' still holds."""
    slow, fast = {s: 10.0 + 0.1 * s for s in range(3)}, {s: 2.0 + 0.05 * s for s in range(3)}
    timing = lambda a, b: V.combine([V.paired(a, b, "GEM slower", machine_dependent=True)])  # noqa: E731
    halved = {s: v / 2 for s, v in slow.items()}
    assert judge(timing(slow, fast), timing(halved, fast)).outcome == "same"
    assert judge(evidence(slow, fast), evidence(halved, fast)).outcome == "changed"
    j = judge(timing(slow, fast), timing(fast, slow))
    assert j.outcome == "changed" and "reverses" in j.reasons[0]


# cross-machine noise on one run's accuracy: CPU kernels and thread counts change reduction
# order, which moves a run's final ACC by up to about a point (README, "Determinism")
MACHINE_NOISE = 0.01


def perturbed(spec, fam, metrics):
    """The same world on 'another machine': every run's metrics moved by a deterministic
    pseudo-random amount of up to MACHINE_NOISE."""
    u = (zlib.crc32(f"{spec.label}/{spec.benchmark}/{spec.seed}".encode()) % 10007) / 10007
    metrics = dict(metrics)
    metrics["acc"] += MACHINE_NOISE * (2 * u - 1)
    return metrics


@pytest.mark.parametrize("claim", ["C2", "C6"])
def test_gem_claims_survive_machine_noise_and_fail_with_gem_projection_off(tmp_path, claim):
    """GEM C2 (GEM ACC > EWC, single) and C6 (ACC rises with memory) on hand-built runs: the
    same runs perturbed at cross-machine noise verify; GEM with its projection switched off is
    plain SGD on the stream, i.e. 'single' — that must fail verify, naming the claim."""
    before = claim_json(check(tmp_path / "a", "gem2017", claim, gem_world()))
    noisy = check(tmp_path / "b", "gem2017", claim, gem_world(perturbed))
    assert verify.judge(claim, verify._kept(before), verify._kept(claim_json(noisy))).outcome \
        in ("same", "borderline")

    def gem_is_single(spec, fam, metrics):
        if spec.method == "gem":
            single = gem_world()(dataclasses.replace(spec, method="single"))
            return {**metrics, "acc": single["acc"], "bwt": single["bwt"]}
    broken = check(tmp_path / "c", "gem2017", claim, gem_world(gem_is_single))
    j = verify.judge(claim, verify._kept(before), verify._kept(claim_json(broken)))
    assert j.outcome == "changed", j


@pytest.fixture
def rendered(tmp_path, monkeypatch):
    """A quick plan whose claims files hold one firm 'holds' comparison per claim."""
    monkeypatch.setattr(verify, "PAPERS_DIR", tmp_path / "papers")
    p = plan.build({"results": str(tmp_path / "results")})
    firm = claim_json(evidence(FIRM_A, FIRM_B))
    for job in p.artifacts.values():
        claims = [{"id": f"{job.paper}.{c.id}", **firm} for c in job.artifact.claims]
        job.claims.parent.mkdir(parents=True, exist_ok=True)
        job.claims.write_text(json.dumps({"claims": claims}))
    return p


def set_claim(p, claim_id, verdict):
    for job in p.artifacts.values():
        data = json.loads(job.claims.read_text())
        for c in data["claims"]:
            if c["id"] == claim_id:
                c.update(claim_json(verdict))
        job.claims.write_text(json.dumps(data))


def test_update_then_compare_reports_no_change_and_names_a_reversal(rendered):
    written = {p.parent.name: p for p in verify.update(rendered)}
    assert set(written) == set(rendered.config["papers"])
    committed = json.loads(written["gem2017"].read_text())["claims"]["gem2017.C10"]
    assert committed["status"] == "holds" and committed["evidence"][0]["n"] == 5
    assert verify.compare(rendered).changed == []
    set_claim(rendered, "gem2017.C2", evidence(FIRM_B, FIRM_A))
    result = verify.compare(rendered)
    assert [r.claim for r in result.changed] == ["gem2017.C2"]
    assert "gem2017.C2" in result.report() and "1 changed" in result.report()


def test_the_command_exits_non_zero_on_a_change_and_zero_on_a_borderline(rendered, tmp_path,
                                                                         capsys):
    near = {s: FIRM_B[s] + d for s, d in enumerate([0.010, 0.030, 0.005, -0.004, 0.028])}
    set_claim(rendered, "gmed2021.C8", evidence(near, FIRM_B))
    verify.update(rendered)
    args = ["verify", "--set", f"results={tmp_path / 'results'}"]
    assert cli.main(args) == 0
    set_claim(rendered, "gmed2021.C8", evidence({s: v + 0.004 for s, v in near.items()}, FIRM_B))
    assert cli.main(args) == 0
    assert "1 borderline" in capsys.readouterr().out
    set_claim(rendered, "gmed2021.C8", evidence(FIRM_B, FIRM_A))
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
    assert {c["status"] for c in committed.values()} <= {
        "holds", "does not hold", "inconclusive", "not checkable"}


def test_gem_training_times_are_marked_machine_dependent(tmp_path):
    c5 = claim_json(check(tmp_path, "gem2017", "C5", gem_world()))
    assert c5["evidence"] and all(e["machine_dependent"] for e in verify._kept(c5)["evidence"])

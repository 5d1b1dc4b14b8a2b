"""Quick records of every method family, bit-identical to their pin (issue 23's guard).
About 3 minutes of training (idle machine), so not in the default run: `pytest -m pinned` after
a refactoring step runs it and the smoke half (test_workflow.py)."""

import json

import pytest

import pinned_records
from conftest import needs_fashion


@pytest.mark.pinned
@needs_fashion
def test_quick_records_are_pinned(tmp_path):
    pin = json.loads((pinned_records.PINS / "quick.json").read_text())
    pinned_records.train_quick(tmp_path / "results")
    here = pinned_records.machine(next((tmp_path / "results/runs").rglob("s*.json")))
    if here != pin["machine"]:
        pytest.skip(f"pinned on {pin['machine']}; this machine is {here}")
    assert pinned_records.differences(pin, tmp_path / "results") == []


def test_a_last_bit_change_is_caught(tmp_path):
    """The guard itself: one float changed in its last bit is named, field by field."""
    record = {"status": "ok", "R": [[0.5, 0.25]], "b": [0.1], "curve": {}, "metrics": {"acc": 0.5},
              "counters": {}, "memory_bytes": {"intra_batch": 8}, "timings": {"batches": 3},
              "provenance": {"machine": {"cpu": "x", "kernels": {
                  "cpu_capability": "AVX2", "blas": "MKL", "onednn": "3"}}}}
    path = tmp_path / "runs/b/m/s/s0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    pin = pinned_records.collect(tmp_path)
    assert pinned_records.differences(pin, tmp_path) == []
    record["R"][0][1] = 0.25000000000000006
    path.write_text(json.dumps(record))
    assert pinned_records.differences(pin, tmp_path) == ["runs/b/m/s/s0.json: R changed"]

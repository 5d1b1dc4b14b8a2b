"""bench/gpu_check.py runs in CI on the CPU at tiny size, so that the GPU check cannot rot."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import gpu_check  # noqa: E402


def test_gpu_check_runs_on_the_cpu_at_tiny_size(tmp_path):
    report = gpu_check.main(["--device", "cpu", "--tiny", "--steps", "1", "--agree-steps", "1",
                             "--pack", "2", "--papers", "gem2017", "drl2020",
                             "--out", str(tmp_path / "check.json")])
    assert (tmp_path / "check.json").is_file()
    for paper, run in report["runs"].items():
        assert "error" not in run, (paper, run)
        assert run["step_s"] > 0 and run["peak_gb"] > 0 and run["estimate_gb"] > 0
        assert run["agreement_rel"] == 0.0  # the CPU against itself: the same numbers
    packing = report["packing"]
    assert packing["processes"] == 2 and packing["runs_per_hour_alone"] > 0
    assert packing["runs_per_hour_packed"] > 0

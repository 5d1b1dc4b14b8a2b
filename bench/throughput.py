"""Workflow overhead with and without batching (issue 12).

Runs the same preset twice in fresh directories -- one job per run (batch_runs=0), then
batched -- and prints, for each, the wall time, the runs' own training + evaluation
seconds, the overhead ratio wall / ((train + eval) / cores) and the overhead per run.

    python bench/throughput.py                          # smoke preset, synthetic data
    python bench/throughput.py --config scale=quick 'papers=[gmed2021]' --cores 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(config: list[str], batch: int, cores: int, configfile: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"clrepro-bench-b{batch}-"))
    try:
        shutil.copy(ROOT / "config.yaml", work / "config.yaml")
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
               "--cores", str(cores), "--configfile", str(configfile), "--config",
               f"batch_runs={batch}", *config]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=work, check=True, capture_output=True)
        wall = time.perf_counter() - start
        work_s, n = 0.0, 0
        for path in (work / "results" / "runs").rglob("s*.json"):
            timings = json.loads(path.read_text())["timings"]
            work_s += timings["train_s"] + timings["eval_s"]
            n += 1
        return {"batch_runs": batch, "runs": n, "wall_s": wall, "train_eval_s": work_s,
                "ratio": wall / (work_s / cores), "overhead_per_run_s": (wall * cores - work_s) / n}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--batch", type=int, default=24, help="batch_runs of the batched pass")
    ap.add_argument("--configfile", default=str(ROOT / ".test" / "config.yaml"))
    ap.add_argument("--config", nargs="*", default=[], help="extra KEY=VALUE for snakemake")
    args = ap.parse_args()
    rows = [measure(args.config, b, args.cores, Path(args.configfile)) for b in (0, args.batch)]
    print(f"{'batch_runs':>10} {'runs':>5} {'wall s':>8} {'train+eval s':>13} "
          f"{'wall/(work/cores)':>18} {'overhead/run s':>15}")
    for r in rows:
        print(f"{r['batch_runs']:>10} {r['runs']:>5} {r['wall_s']:>8.1f} {r['train_eval_s']:>13.1f} "
              f"{r['ratio']:>18.2f} {r['overhead_per_run_s']:>15.2f}")
    print(f"batched / one job per run, wall time: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}")


if __name__ == "__main__":
    main()

"""Pinned records: the guard of the training-core refactoring (issue 23).

A record's numbers -- R, b, curve, metrics, counters, memory bytes, batch count, details, and
the tensors it logged for figures -- are reduced to one short hash per field. A refactoring
must leave every hash unchanged. Records are bit-identical only on one machine (CPU kernels
differ between processors, README "Determinism"), so a pin names the machine it was made on
and is compared only there; elsewhere the test is skipped, saying why.

Update a pin after a deliberate change of numbers (say so in the commit):
    python tests/pinned_records.py smoke RESULTS_DIR   # the records of a smoke workflow run
    python tests/pinned_records.py quick               # trains QUICK_RUNS (about 3 min)
Add `--paper P` to replace only paper P's records (e.g. after its protocol version changed;
RESULTS_DIR then needs only P's runs).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

PINS = Path(__file__).parent / "pinned"

# quick runs of every method family and trainer path the quick preset has (one seed each;
# ~3 minutes of training): DRL's replay strategies, Mnemonics' phase methods with one bilevel
# ("ours") run, GEM's and GMED's online methods, BLD's batch learners
QUICK_RUNS = [
    "fmnist01@drl2020.quick/replay_drl/m0-e1+drl=false+replay=none/s0.json",
    "mtnc_fmnist@drl2020.quick/replay_drl/m200-e1+drl=true+replay=er/s0.json",
    "mtnc_fmnist@drl2020.quick/replay_drl/m200-e1+drl=true+replay=ber/s0.json",
    "mtnc_fmnist@drl2020.quick/replay_drl/m200-e1+drl=true+replay=shuffle/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/bic/m20-e6/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/icarl_cil/m20-e6/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/joint_cil/m0-e6+phases.merge=1/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/lucir/m20-e6/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/lucir/m20-e6+variant=ours/s0.json",
    "fmnist_b5_n5@mnemonics2020.quick/lwf_cil/m20-e6/s0.json",
    "perm_fmnist@gem2017.quick/ewc/m0-e1/s0.json",
    "perm_fmnist@gem2017.quick/gem/m1000-e1/s0.json",
    "perm_fmnist@gem2017.quick/independent/m0-e1/s0.json",
    "perm_fmnist@gem2017.quick/multimodal/m0-e1/s0.json",
    "perm_fmnist@gem2017.quick/single/m0-e1/s0.json",
    "split_fmnist_til@gem2017.quick/icarl/m100-e1/s0.json",
    "perm_fmnist@gmed2021.quick/agem/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/er/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/er_gmed/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/er_hindsight_edit/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/er_random_edit/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/finetune/m0-e1/s0.json",
    "perm_fmnist@gmed2021.quick/iid/m0-e1/s0.json",
    "perm_fmnist@gmed2021.quick/mir/m500-e1/s0.json",
    "perm_fmnist@gmed2021.quick/mir_gmed/m500-e1/s0.json",
    "split_digits_2t@bld2020.quick/batch_l2/m0-e1/s0.json",
    "split_digits_2t@bld2020.quick/bld/m0-e1/s0.json",
    "split_digits_2t@bld2020.quick/lwf/m0-e1/s0.json",
    "split_digits_2t@bld2020.quick/mc_finetune/m0-e1/s0.json",
    "split_fmnist_2t@bld2020.quick/bld_alternated/m0-e1/s0.json",
    "split_fmnist_2t@bld2020.quick/bld_no_balancing/m0-e1/s0.json",
]


def _of(key: str, paper: str | None) -> bool:
    return paper is None or f"@{paper}." in key


def train_quick(results: Path, paper: str | None = None) -> None:
    """Train QUICK_RUNS (of `paper`, or all) into `results` the way a batch job does (and the
    tuning runs they need first, so that a tuned hyperparameter resolves)."""
    from clrepro import plan
    from clrepro.batch import run_batch

    p = plan.build({"scale": "quick", "results": str(results)})
    wanted = [p.run_job(str(results / "runs" / key)) for key in QUICK_RUNS if _of(key, paper)]
    jobs = {j.spec.path(p.root): j for j in wanted}
    for job in wanted:  # tuning runs before the runs that read them
        jobs = {**{s.path(p.root): p.run_job(str(s.path(p.root))) for s in job.needs}, **jobs}
    by_bench: dict[str, dict] = {}
    for out, job in jobs.items():
        art = p.artifact_path(str(out)) if p.logs_artifacts(job) else None
        by_bench.setdefault(job.spec.benchmark, {})[str(out)] = {
            "protocol": job.protocol(), "artifacts": str(art) if art else None}
    for bench, runs in by_bench.items():
        outcome = run_batch(runs, p.data.to_dict(), p.benchmark_path(bench), device="cpu")
        failed = {k: v for k, v in outcome.items() if v.startswith("failed")}
        assert not failed, failed

FIELDS = ("status", "R", "b", "curve", "metrics", "counters", "memory_bytes", "details")


def _hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tensor_hash(obj, h) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _tensor_hash(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tensor_hash(v, h)
    else:
        h.update(repr(obj).encode())


def digest(record_path: Path) -> dict[str, str]:
    record = json.loads(record_path.read_text())
    out = {f: _hash(record.get(f)) for f in FIELDS}
    out["batches"] = _hash(record["timings"]["batches"])
    artifacts = record_path.with_name(record_path.stem + ".artifacts.pt")
    if artifacts.exists():
        h = hashlib.sha256()
        _tensor_hash(torch.load(artifacts, weights_only=True, map_location="cpu"), h)
        out["artifacts"] = h.hexdigest()[:12]
    return out


def machine(record_path: Path) -> str:
    m = json.loads(record_path.read_text())["provenance"]["machine"]
    k = m["kernels"]
    return f"{m['cpu']} | {k['cpu_capability']} | {k['blas']} | oneDNN {k['onednn']}"


def collect(results: Path) -> dict:
    runs = sorted(p for p in (results / "runs").rglob("s*.json"))
    return {"machine": machine(runs[0]),
            "records": {str(p.relative_to(results)): digest(p) for p in runs}}


def differences(pinned: dict, results: Path) -> list[str]:
    """What differs between the pin and the records under `results` (empty: identical)."""
    now = collect(results)
    problems = []
    for key in sorted(set(pinned["records"]) | set(now["records"])):
        a, b = pinned["records"].get(key), now["records"].get(key)
        if a is None or b is None:
            problems.append(f"{key}: {'new' if a is None else 'missing'}")
        elif a != b:
            problems.append(f"{key}: {', '.join(f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f))} changed")
    return problems


def write_pin(results: Path, name: str, paper: str | None = None) -> None:
    pin, now = PINS / f"{name}.json", collect(results)
    if paper is not None:  # keep the other papers' records as pinned
        old = json.loads(pin.read_text())
        assert old["machine"] == now["machine"], f"pinned on {old['machine']}, not here"
        now["records"] = {**{k: v for k, v in old["records"].items() if not _of(k, paper)},
                          **{k: v for k, v in now["records"].items() if _of(k, paper)}}
    pin.write_text(json.dumps(now, indent=0, sort_keys=True) + "\n")
    print(f"pinned {len(now['records'])} records to {pin}")


if __name__ == "__main__":
    args = sys.argv[1:]
    only = args[args.index("--paper") + 1] if "--paper" in args else None
    if args[0] == "smoke":
        write_pin(Path(args[1]), "smoke", only)
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            train_quick(Path(tmp) / "results", only)
            write_pin(Path(tmp) / "results", "quick", only)

"""One training job: job description (from the plan) -> verified data -> loop -> record."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clrepro import metrics
from clrepro.data import store
from clrepro.data.definitions import BenchmarkDef
from clrepro.data.definitions import DataSettings
from clrepro.data.kinds import data_kind
from clrepro.devices import choose_device
from clrepro.fsutil import atomic_path, remove_stale_temporaries, stable_hash
from clrepro.locks import run_lock
from clrepro.methods import get_method
from clrepro.models.pretrained import weights_loader
from clrepro.papers import strategies
from clrepro.provenance import provenance
from clrepro.results import RECORD_VERSION, write_record
from clrepro.spec import RunSpec, protocol_hash
from clrepro.phases import train_phases
from clrepro.train import train_run
from clrepro.tuning import resolve as resolve_tuned

log = logging.getLogger("clrepro")


# fp32: IEEE float32 everywhere (the papers' protocols); tf32: TensorFloat-32 for CUDA
# convolutions and matmuls; bf16: fp32 (IEEE) plus bfloat16 autocast in the phase trainer's
# steps (the online trainer has no autocast: its runs stay fp32, and their provenance says so)
PRECISIONS = ("fp32", "tf32", "bf16")


def make_deterministic(device: torch.device, precision: str = "fp32") -> None:
    """Deterministic kernels and the float32 numerics `precision` asks for. PyTorch's default
    lets cuDNN convolve in TF32 (torch.backends.cudnn.conv.fp32_precision == "tf32"), i.e.
    with a 10-bit mantissa on Ampere and later GPUs: every flag is set here, both ways, so
    that a job never inherits an earlier job's choice in the same process (clrepro.batch).
    Only the new fp32_precision API is used: mixing it with the legacy allow_tf32 flags is
    an error in torch >= 2.9."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    # MKL's conditional numerical reproducibility: the same matrix products whatever the
    # thread count (measured: 1 vs 2 threads differ in the last bits without it). MKL reads it
    # at its first call, which comes after this in a job. oneDNN's convolution weight
    # gradients still depend on the thread count; turning oneDNN off would fix that at about
    # twice the convolution time, so it stays on (README, "Determinism").
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    mode = "tf32" if precision == "tf32" else "ieee"
    torch.backends.cudnn.conv.fp32_precision = mode
    torch.backends.cudnn.rnn.fp32_precision = mode
    torch.backends.cuda.matmul.fp32_precision = mode


def run_precision(requested: str, hp: dict[str, Any], trainer: str) -> str:
    """The precision a run trains in: a paper protocol's own `precision: bf16` (Mnemonics'
    option, part of the run's protocol) wins; bf16 asked by the config applies to the phase
    trainer only (the one with autocast); otherwise what the config asks (fp32 | tf32)."""
    if hp.get("precision") == "bf16":
        return "bf16"
    if requested == "bf16":
        return "bf16" if trainer == "phases" else "fp32"
    return requested


def precision_flags() -> dict[str, str]:
    """What the job's float32 numerics were, for the record's provenance."""
    return {"cudnn_conv": torch.backends.cudnn.conv.fp32_precision,
            "cuda_matmul": torch.backends.cuda.matmul.fp32_precision}


def checkpoint_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.ckpt.pt")


def run_job(desc: dict[str, Any], out: str | Path, *args, **kwargs) -> dict[str, Any]:
    """`train_job` holding the run's lock (clrepro.locks): a second process that reaches the
    same record -- another working directory sharing the results -- is refused."""
    out = Path(out)
    with run_lock(out):
        # a process killed with SIGKILL while writing leaves its temporary file behind
        artifacts = kwargs.get("artifacts_out")
        for path in [out, checkpoint_path(out)] + ([Path(artifacts)] if artifacts else []):
            for tmp in remove_stale_temporaries(path):
                log.info("removed %s, left by a killed run", tmp.name)
        return train_job(desc, out, *args, **kwargs)


def train_job(desc: dict[str, Any], out: str | Path, prepared: str | Path, device: str = "auto",
            threads: int = 1, artifacts_out: str | Path | None = None,
            tensors: dict[str, torch.Tensor] | None = None,
            rebuild_data: bool = True, precision: str = "fp32",
            gpu_slots: int = 1) -> dict[str, Any]:
    """Train the run `desc` describes and write its record to `out` (and, if asked, the
    tensors the method keeps for figures to `artifacts_out`, written first). `tensors`: the
    prepared benchmark already loaded and verified (clrepro.batch), else read from
    `prepared` (rebuilt there when stale, unless `rebuild_data` is false: a file the user
    handed over is only read). `precision`: the config's fp32 | tf32 | bf16 (not part of
    the protocol, like the device; recorded in the provenance). `gpu_slots`: processes
    sharing one GPU."""
    out = Path(out)
    spec = RunSpec.from_dict(desc["spec"])
    if RunSpec.from_path(out) != spec:
        raise ValueError(f"output {out} does not name the run {spec}")
    hp, tuned = resolve_tuned(desc["hp"], out.parents[4])
    if tuned:
        log.info("tuned hyperparameters: %s", {k: v["value"] for k, v in tuned.items()})
    defn = BenchmarkDef.from_dict(desc["benchmark"])
    settings = DataSettings.from_config(desc["data"])
    torch.set_num_threads(threads)
    dev = choose_device(device, desc.get("gpu", False), gpu_slots)
    method = get_method(spec.method, hp.get("entry"))  # entry: a method from outside clrepro
    used = run_precision(precision, hp, method.trainer)
    make_deterministic(dev, "tf32" if used == "tf32" else "fp32")
    if used != precision:
        log.info("precision %s asked; this run trains in %s", precision, used)
    log.info("run %s on %s, seed %d, memory %d, epochs %d (%s, %d thread%s)", spec.label,
             spec.benchmark, spec.seed, spec.memory, spec.epochs, dev, threads,
             "" if threads == 1 else "s")
    log.info("hyperparameters: %s", hp)
    if tensors is None:
        tensors = store.load_or_rebuild(defn, settings, Path(prepared), rebuild=rebuild_data)
    kind = data_kind(defn)
    bench = kind.materialize(tensors, defn, settings, spec.seed)
    ckpt = checkpoint_path(out)
    weights_used: dict[str, dict[str, str]] = {}
    desc_ = f"{spec.label} {spec.benchmark} s{spec.seed}"
    if method.trainer == "phases":
        # a file-backed benchmark's images are decoded by one DataLoader worker per thread
        workers = threads if kind.file_backed else 0
        if used == "bf16":  # the phase trainer's autocast switch
            hp = {**hp, "precision": "bf16"}
        measured = train_phases(bench, method, hp, spec.seed, spec.epochs, dev, checkpoint=ckpt,
                                desc=desc_, workers=workers)
    else:
        measured = train_run(bench, method, hp, spec.seed, spec.epochs, dev, checkpoint=ckpt,
                             desc=desc_, weights=weights_loader(settings, weights_used),
                             **strategies.for_run(hp))
    artifacts = measured.pop("artifacts")
    if artifacts_out is not None:
        with atomic_path(artifacts_out) as tmp:
            torch.save(artifacts, tmp)
    summary = None
    if measured["status"] == "ok":
        summary = metrics.summary(np.array(measured["R"]), np.array(measured["b"]),
                                  measured["test_sizes"])
        log.info("done: ACC %.4f  BWT %+.4f  FWT %+.4f  (train %.1fs, eval %.1fs)", summary["acc"],
                 summary["bwt"], summary["fwt"], measured["timings"]["train_s"],
                 measured["timings"]["eval_s"])
    record = {
        "record_version": RECORD_VERSION,
        "run": {**spec.to_dict(), "path": str(out), "label": spec.label},
        "paper": desc["paper"],
        "status": measured.pop("status"),
        "hp": desc["hp"],  # the protocol as planned (tuned values are markers there)
        "hp_hash": stable_hash(desc["hp"]),
        "protocol_hash": protocol_hash(desc["hp"], desc["benchmark"]),
        "tuned": tuned,  # how each tuned hyperparameter was chosen, and its value
        "benchmark": bench.manifest(),
        "metrics": summary,
        **measured,
        "provenance": {**provenance(str(dev), threads), "weights": weights_used,
                       "precision": {"mode": used, **precision_flags()}},
    }
    write_record(out, record)
    ckpt.unlink(missing_ok=True)
    return record

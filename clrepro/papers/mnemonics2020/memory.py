"""Peak GPU memory of the mnemonics bilevel step at full scale, and the inner mini-batch
that keeps it under `gpu_memory_gb` (spec §4.5, Amended 2026-12-07: exact meta-gradients,
recomputed through the unrolled steps, inner steps on mini-batches where a full batch of
activations does not fit).

An estimate, printable before launch (`python -m clrepro.papers.mnemonics2020.memory`):

  fixed    network, its gradient and SGD momentum, the previous network (4 copies), the
           stored parameters Theta_0..Theta_K of the unroll (K + 1 copies), the adjoint and
           its update (3 copies); every stored exemplar (20 per seen class, float32), the
           optimised set three times (pixels, normalised copy, gradient) and, when old
           exemplars are adjusted (Eq. 10), the other half as validation data (a fourth);
           the phase's training images when they live on the GPU (CIFAR-100, uint8). The
           memory pre-flight measures the same copies (tests/test_preflight.py)
  working  the larger of: one recomputed inner step on a chunk of exemplars (what autograd
           saves for a forward + create_graph backward, plus the forward's saved tensors
           again for the transient gradients of the second backward), and the validation
           mini-batch's forward + backward (its saved tensors x 1.5)
  margin   + 10 % and 2 GB (CUDA context, allocator fragmentation)

The per-image saved bytes are counted by clrepro.bilevel.saved_bytes_per_image on the meta
device (ResNet-32 at 32x32: 4.95 MB per image per unrolled step with the graph, 2.47 MB
without). Planning must not import torch, so the counts are kept in NETWORK_BYTES; a test
recounts them from the networks' code (`measure_network_bytes`).
"""

from __future__ import annotations

import math

from clrepro.papers.mnemonics2020 import sizes as P

GB = 1e9
SHAPES = {"cifar100": (3, 32, 32), "imagenet_subset": (3, 224, 224), "imagenet": (3, 224, 224)}
CLASSES = {"cifar100": (100, 50), "imagenet_subset": (100, 50), "imagenet": (1000, 500)}
FULL_BATCH_FACTOR = 1.5  # transient gradients of a plain backward, relative to its saved tensors
OPTIMISED_COPIES = 3  # of the set being optimised: its normalised copy z, its pixels, its gradient
VALIDATION_COPIES = {"new": 0, "adjusted": 1}  # adjusted: the other half of the old exemplars


# (parameter bytes, saved bytes per image with the step's graph, without), as counted by
# measure_network_bytes (tests/test_mnemonics.py checks they still agree)
NETWORK_BYTES = {"cifar100": (1891024, 4945336, 2470552),
                 "imagenet_subset": (44911248, 41247928, 22079896),
                 "imagenet": (46758048, 41258728, 22083496)}


def measure_network_bytes(dataset: str) -> tuple[int, int, int]:
    """(parameter bytes, saved bytes per image with the step's graph, without) of the
    dataset's full-scale network, counted on the meta device."""
    import torch

    from clrepro.bilevel import saved_bytes_per_image
    from clrepro.models import build_model

    total, _ = CLASSES[dataset]
    with torch.device("meta"):
        model = build_model({**P.model_spec(dataset, "full"), "head": "linear", "normalize": False},
                            SHAPES[dataset], total)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return (params, saved_bytes_per_image(model, SHAPES[dataset], total, True),
            saved_bytes_per_image(model, SHAPES[dataset], total, False))


def bilevel_peak_bytes(dataset: str, n_phases: int, exemplar_set: str, inner_batch: int | None,
                       steps: int | None = None, val_batch: int = P.BATCH) -> dict[str, float]:
    """The estimate (module docstring) for the worst phase of a full-scale run: "new"
    exemplars peak in phase 0 (20 per base class), "adjusted" ones in the last phase
    (half of every old class's 20, the other half the validation set)."""
    steps = steps or P.MNEMONICS["full"][1]
    total, base = CLASSES[dataset]
    step_classes = (total - base) // n_phases
    image = 4 * math.prod(SHAPES[dataset])
    if exemplar_set == "new":
        n_opt, seen, train_images = P.PER_CLASS * base, base, 500 * base if dataset == "cifar100" else 0
    else:
        old = total - step_classes
        n_opt, seen = P.PER_CLASS // 2 * old, total
        train_images = 500 * step_classes if dataset == "cifar100" else 0
    params, with_graph, plain = NETWORK_BYTES[dataset]
    chunk = min(inner_batch or n_opt, n_opt)
    copies = OPTIMISED_COPIES + VALIDATION_COPIES[exemplar_set]
    fixed = (4 + steps + 1 + 3) * params + P.PER_CLASS * seen * image + copies * n_opt * image \
        + train_images * image // 4
    working = max(chunk * (with_graph + plain), val_batch * plain * FULL_BATCH_FACTOR)
    peak = (fixed + working) * 1.1 + 2 * GB
    return {"exemplars": n_opt, "inner_batch": chunk, "fixed_gb": fixed / GB,
            "working_gb": working / GB, "peak_gb": peak / GB,
            "plain_unroll_gb": (fixed + steps * n_opt * with_graph) / GB}


HEADROOM = 0.85  # plan to at most this share of the GPU: the estimate is not a measurement


def inner_batch_plan(dataset: str, n_phases: int, gpu_memory_gb: float = 80.0) -> int | None:
    """The inner mini-batch of a full-scale run: None (full batch) when every exemplar set's
    estimate stays under HEADROOM x the GPU, else the largest power of two that does."""
    limit = HEADROOM * gpu_memory_gb
    if all(bilevel_peak_bytes(dataset, n_phases, s, None)["peak_gb"] <= limit
           for s in ("new", "adjusted")):
        return None
    chunk = 1
    while all(bilevel_peak_bytes(dataset, n_phases, s, chunk * 2)["peak_gb"] <= limit
              for s in ("new", "adjusted")):
        chunk *= 2
    if any(bilevel_peak_bytes(dataset, n_phases, s, chunk)["peak_gb"] > limit
           for s in ("new", "adjusted")):
        raise MemoryError(f"mnemonics bilevel step of {dataset} N={n_phases} does not fit "
                          f"{gpu_memory_gb} GB even with one exemplar per inner mini-batch")
    return chunk


def bilevel_plan(dataset: str, n_phases: int, gpu_memory_gb: float = 80.0) -> dict:
    """The hyperparameters of a full-scale run's memory plan: keep the whole unroll (plain
    autograd, fastest) where it fits, else recompute it, on inner mini-batches if needed."""
    limit = HEADROOM * gpu_memory_gb
    if all(bilevel_peak_bytes(dataset, n_phases, s, None)["plain_unroll_gb"] * 1.1 + 2 <= limit
           for s in ("new", "adjusted")):
        return {"mnemonics.recompute": False, "mnemonics.inner_batch": None}
    return {"mnemonics.recompute": True,
            "mnemonics.inner_batch": inner_batch_plan(dataset, n_phases, gpu_memory_gb)}


def table(gpu_memory_gb: float = 80.0) -> list[dict]:
    rows = []
    for dataset in P.DATASETS:
        for n in P.PHASES:
            chunk = inner_batch_plan(dataset, n, gpu_memory_gb)
            for s in ("new", "adjusted"):
                rows.append({"dataset": dataset, "N": n, "set": s,
                             **bilevel_peak_bytes(dataset, n, s, chunk)})
    return rows


def main() -> None:
    print("| dataset | N | exemplar set | exemplars | inner mini-batch | estimated peak (GB) "
          "| whole unroll kept (GB) |")
    print("|---|---|---|---|---|---|---|")
    for r in table():
        print(f"| {r['dataset']} | {r['N']} | {r['set']} | {r['exemplars']} | {r['inner_batch']} "
              f"| {r['peak_gb']:.1f} | {r['plain_unroll_gb']:.0f} |")


if __name__ == "__main__":
    main()

"""The timed part shared by the per-step cost benchmarks: best-of-`repeats` seconds for one
freshly built method to observe every batch once (set-up, such as filling a memory, is not
timed; a CUDA device is synchronised before the clock stops)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def best_observe_seconds(make_method: Callable[[], object], batches: list, task: int,
                         device: torch.device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        method = make_method()
        start = time.perf_counter()
        for step, (x, y) in enumerate(batches):
            method.step = step
            method.observe(x, y, torch.full_like(y, task))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best

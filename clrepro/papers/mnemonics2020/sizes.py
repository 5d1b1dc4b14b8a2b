"""The sizes of the Mnemonics protocol that both its hyperparameters (protocol.py) and the
memory plan of its bilevel step (memory.py) read: exemplars per class, mini-batch, the
bilevel schedule, phase counts, datasets and networks (spec §4.3, §4.5, §6)."""

from __future__ import annotations

from typing import Any

BATCH = 128
PER_CLASS, FIXED_TOTAL = 20, 2000
# §4.5 exemplar level (paper; quick: 1 outer epoch of 10 inner steps, shrunk from spec §6's 5
# to fit the quick budget: with one meta-update per validation mini-batch (amended §4.5) that
# is 10 meta-updates in phase 0, where the old schedule's 3 epochs made 3)
MNEMONICS = {"full": (50, 50), "quick": (1, 10), "smoke": (1, 2)}  # outer epochs, inner steps
PHASES = (5, 10, 25)
DATASETS = ("cifar100", "imagenet_subset", "imagenet")


def model_spec(dataset: str, scale: str) -> dict[str, Any]:
    if scale != "full":  # LUCIR ResNet-32 with one block per stage (spec §6), 1x14x14 input
        return {"name": "resnet32_lucir", "blocks_per_stage": 1, "normalize": True}
    if dataset == "cifar100":
        return {"name": "resnet32_lucir", "normalize": True}
    return {"name": "resnet18_lucir", "normalize": True}

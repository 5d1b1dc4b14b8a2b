"""Seeds of a run's separate random streams (data draws, model initialisation, stream order,
the method's own sampling, augmentation, studies), each derived from the run seed and the
stream's purpose, so that one stream's use never shifts another's."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, purpose: str) -> int:
    """Independent, reproducible seeds for the separate random streams of one run."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:7], "big")

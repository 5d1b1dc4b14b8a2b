"""A tiny CORe50-shaped tree for the tests: a few sessions and objects, 8x8 RGB PNGs, and
batch filelists in the official layout and line format for the three challenge tracks.

  ni:   one batch per training session, every object, labels = object index - 1
  mtnc: one task per pair of objects, labels renumbered in order of appearance (as the
        official NC lists do)
  nic:  one batch per (training session, object) clip, in a seeded random order
Sessions 3 and 7 play the test sessions (the real ones are 3, 7 and 10).
"""

from __future__ import annotations

import hashlib
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_SESSIONS = (1, 2, 4)
TEST_SESSIONS = (3, 7)
N_OBJECTS = 6
FRAMES = 2
SIDE = 8
MTNC_TASKS = ((1, 4), (2, 5), (3, 6))  # objects of each task
LIST_DIRS = {"ni": "batches_filelists/NI_inc", "mtnc": "batches_filelists/NC_inc",
             "nic": "NIC_v2_391"}

Entry = tuple[str, int]


def image_rel(session: int, obj: int, frame: int) -> str:
    """Path relative to core50_128x128/, named like the real files."""
    return f"s{session}/o{obj}/C_{session:02d}_{obj:02d}_{frame:03d}.png"


def pixels(session: int, obj: int, frame: int) -> np.ndarray:
    return np.random.default_rng([session, obj, frame]).integers(0, 256, (SIDE, SIDE, 3),
                                                                 dtype=np.uint8)


def _clip(session: int, obj: int, label: int) -> list[Entry]:
    return [(image_rel(session, obj, f), label) for f in range(FRAMES)]


def _write_lists(directory: Path, batches: list[list[Entry]], test: list[Entry]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, entries in enumerate(batches):
        text = "".join(f"{p} {y}\n" for p, y in entries)
        (directory / f"train_batch_{i:02d}_filelist.txt").write_text(text)
    (directory / "test_filelist.txt").write_text("".join(f"{p} {y}\n" for p, y in test))


def build_core50_tree(root: Path, run: int = 0) -> dict[str, dict]:
    """Write the tree under root; return per track the expected batches and evaluation set
    (paths relative to root, i.e. with the core50_128x128/ prefix)."""
    objects = range(1, N_OBJECTS + 1)
    for s in (*TRAIN_SESSIONS, *TEST_SESSIONS):
        for o in objects:
            for f in range(FRAMES):
                path = root / "core50_128x128" / image_rel(s, o, f)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels(s, o, f)).save(path)

    plain_test = [e for s in TEST_SESSIONS for o in objects for e in _clip(s, o, o - 1)]
    ni = [[e for o in objects for e in _clip(s, o, o - 1)] for s in TRAIN_SESSIONS]

    nc_label = {o: i for i, o in enumerate(o for task in MTNC_TASKS for o in task)}
    mtnc = [[e for s in TRAIN_SESSIONS for o in task for e in _clip(s, o, nc_label[o])]
            for task in MTNC_TASKS]
    mtnc_test = [e for s in TEST_SESSIONS for o in objects for e in _clip(s, o, nc_label[o])]

    clips = [(s, o) for s in TRAIN_SESSIONS for o in objects]
    random.Random(0).shuffle(clips)
    nic = [_clip(s, o, o - 1) for s, o in clips]

    lists = {"ni": (ni, plain_test), "mtnc": (mtnc, mtnc_test), "nic": (nic, plain_test)}
    expected = {}
    for track, (batches, test) in lists.items():
        _write_lists(root / LIST_DIRS[track] / f"run{run}", batches, test)
        task_of = {y: t for t, b in enumerate(batches) for _, y in b}
        expected[track] = {
            "batches": [[(f"core50_128x128/{p}", y) for p, y in b] for b in batches],
            "tasks": list(range(len(batches))) if track == "mtnc" else None,
            "eval": [(f"core50_128x128/{p}", y) for p, y in test],
            "eval_tasks": [task_of[y] for _, y in test] if track == "mtnc" else None,
        }
    return expected


def zip_tree(root: Path, out_dir: Path) -> dict[str, tuple[Path, str]]:
    """The three official archives of a built tree: ARCHIVES key -> (zip path, md5)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {"images": ("core50_128x128.zip", ["core50_128x128"]),
                "lists": ("batches_filelists.zip", ["batches_filelists"]),
                "lists_nicv2": ("batches_filelists_NICv2.zip", ["NIC_v2_391"])}
    result = {}
    for key, (name, tops) in contents.items():
        path = out_dir / name
        with zipfile.ZipFile(path, "w") as zf:
            for top in tops:
                for f in sorted((root / top).rglob("*")):
                    zf.write(f, f.relative_to(root).as_posix())
        result[key] = (path, hashlib.md5(path.read_bytes()).hexdigest())
    return result
